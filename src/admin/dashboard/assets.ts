// The dashboard's static files, served by the admin server at / and /dashboard/* without the
// token (they hold no data; the page asks for the token and sends it with every API call). One
// page, one stylesheet, one script built from the view modules, one icon: nothing from another
// origin, and a Content-Security-Policy that allows nothing but this server (no inline code).

import { CLIENT_JS } from './client.js';
import { CHARTS_JS } from './charts.js';
import { CONFIG_VIEWS_JS } from './config_views.js';
import { ICON_SVG, PAGE_HTML } from './page.js';
import { STYLE_CSS } from './style.js';
import { TRAFFIC_VIEWS_JS } from './traffic_views.js';

export interface Asset {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** Only this server, for everything; no inline script or style, no forms posted, no framing. */
export const DASHBOARD_CSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function asset(contentType: string, text: string): Asset {
  const body = Buffer.from(text);
  return {
    headers: {
      'content-type': contentType,
      'content-length': String(body.length),
      'content-security-policy': DASHBOARD_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    },
    body,
  };
}

/** The script: the shared client first (token, API, DOM helpers), then the charts and views, in one strict-mode scope. */
const APP_JS = ['(function () {', "'use strict';", CLIENT_JS, CHARTS_JS, TRAFFIC_VIEWS_JS, CONFIG_VIEWS_JS, 'start();', '})();', ''].join('\n');

/** Path → file, built once at start-up. */
export const DASHBOARD_ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/', asset('text/html; charset=utf-8', PAGE_HTML)],
  ['/dashboard/style.css', asset('text/css; charset=utf-8', STYLE_CSS)],
  ['/dashboard/app.js', asset('text/javascript; charset=utf-8', APP_JS)],
  ['/dashboard/icon.svg', asset('image/svg+xml', ICON_SVG)],
]);

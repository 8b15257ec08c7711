// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core opens the
// admin page of a sidecar under load from a real upstream, is asked for the token once (a reload
// keeps it for the session), sees the charts gain samples over two refreshes, opens a cluster and
// its endpoints and the certificate with the time to its rotation, diffs two config versions and
// rolls back to the first one through the confirmation, after which the sidecar runs a new
// version with the first version's config. A screenshot goes to .ci/artifacts/dashboard.png. No
// console error, and no request to an origin other than the admin API's.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  WEB,
  adminCall,
  closeAll,
  newCa,
  proxyConfig,
  startSidecar,
  startLoad,
  startUpstream,
  stopWithoutFailures,
  type Config,
  type Load,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.join(ROOT, '.ci', 'artifacts', 'dashboard.png');

let app: Upstream;
let sc: Sidecar;
let load: Load;
let browser: Browser;

afterAll(async () => {
  await load?.stop();
  await browser?.close();
  await closeAll();
});

beforeAll(async () => {
  app = await startUpstream('app');
  // An identity and a certificate from the embedded CA, for the certificates view.
  const ca = await newCa();
  const withCertificate = (c: Config): Config => ({ ...c, node: { ...(c['node'] as Config), identity: WEB }, tls: { ca: { dir: ca.dir } } });
  sc = await startSidecar(withCertificate(proxyConfig([app.address])));
  // Version 2 adds a route: the rollback to version 1 takes it away again.
  const v2 = proxyConfig([app.address], { routes: [{ name: 'extra', match: { path_prefix: '/extra' }, cluster: 'app' }] });
  const put = await adminCall(sc, 'PUT', '/config', { ...withCertificate(v2), admin: { address: '127.0.0.1:0' } });
  expect(put.json).toMatchObject({ version: 2 });
  // A request every 20 ms or so on one connection: enough to chart, light on a shared machine.
  load = startLoad(sc.port(), { connections: 1, path: () => '/load', pauseMs: 20 });
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 20_000 });
});

/** The most samples any chart of the page shows (data-samples). */
async function chartSamples(page: Page): Promise<number> {
  const counts = await page.locator('svg.chart').evaluateAll((charts) => charts.map((c) => Number(c.getAttribute('data-samples'))));
  return Math.max(0, ...counts);
}

describe('dashboard in headless Chromium', () => {
  it('token once, live charts, a cluster, a diff, a rollback with confirmation; no console error, no foreign request', async () => {
    const adminOrigin = new URL(sc.admin).origin;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(15_000);
    const consoleErrors: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => {
      if (new URL(r.url()).origin !== adminOrigin) foreign.push(r.url());
    });

    await page.goto(`${sc.admin}/`);
    await page.locator('#token-input').fill(sc.token);
    await page.locator('#token-form button').click();

    // The overview: a card per listener, route and cluster; the charts gain samples at each refresh.
    await expect.poll(() => chartSamples(page), { timeout: 15_000 }).toBeGreaterThan(0);
    const first = await chartSamples(page);
    await expect.poll(() => chartSamples(page), { timeout: 15_000 }).toBeGreaterThan(first);
    const second = await chartSamples(page);
    await expect.poll(() => chartSamples(page), { timeout: 15_000 }).toBeGreaterThan(second);
    const ratePoints = page.locator('svg.chart[aria-label="requests / s"]').first();
    expect(Number(await ratePoints.getAttribute('data-points'))).toBeGreaterThan(0);

    // The token is kept for the session: a reload does not ask again.
    await page.reload();
    await page.locator('a[data-cluster="app"]').waitFor();
    expect(await page.locator('#token-dialog').evaluate((d) => d.hasAttribute('open'))).toBe(false);

    // A cluster: its endpoints with health, ejection and active requests.
    await page.locator('a[data-cluster="app"]').click();
    const endpoint = page.locator('#endpoints tr', { hasText: app.address });
    await endpoint.waitFor();
    await expect
      .poll(() => endpoint.locator('td').allTextContents())
      .toEqual([app.address, '1', 'healthy', 'no', expect.any(String), expect.any(String), expect.any(String)]);

    // Certificates: this sidecar's, with the time to its next rotation.
    await page.locator('nav a[data-view="certs"]').click();
    const cert = page.locator('#certs tr', { hasText: WEB });
    await cert.waitFor();
    const cells = await cert.locator('td').allTextContents();
    expect(cells[1]).toBe('ca');
    expect(cells[4]).toMatch(/^in \d+ h \d+ min \(/); // the CA's default lifetime: renewed at half of it

    // Config: history, the diff of v1 → v2 (the route v2 added), then the rollback to v1.
    await page.locator('nav a[data-view="config"]').click();
    await expect.poll(() => page.locator('#current-version').textContent()).toBe('2');
    await expect.poll(async () => (await page.locator('#diff .add').allTextContents()).filter((line) => line.includes('"name": "extra"'))).toHaveLength(1);
    await page.locator('button[data-rollback="1"]').click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    await page.locator('#confirm-ok').click();
    await expect.poll(() => page.locator('#current-version').textContent()).toBe('3');
    const running = await adminCall(sc, 'GET', '/config');
    expect(running.json.version).toBe(3);
    expect(running.json.config.listeners[0].routes.map((r: { name?: string }) => r.name)).toEqual(['all']);

    await page.locator('nav a[data-view="overview"]').click();
    await page.locator('svg.chart').first().waitFor();
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    expect(consoleErrors).toEqual([]);
    expect(foreign).toEqual([]);
    await stopWithoutFailures(load);
  }, 55_000);
});

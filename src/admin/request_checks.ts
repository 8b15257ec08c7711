// Checks on every admin request before any endpoint runs (DESIGN.md §8): the Host header names
// a loopback host, this server's own address or a name listed in admin.hosts (defeats DNS rebinding: a page on evil.example
// whose name now resolves to 127.0.0.1 still sends `Host: evil.example`), and the request is not
// cross-site (an Origin other than this server's, `Origin: null`, or a Sec-Fetch-Site other than
// same-origin/none). Bodies must carry a config content type, which a cross-site HTML form or a
// no-CORS fetch cannot send. Pure functions of the request's headers and socket addresses.

import { isIP } from 'node:net';

/** Content types accepted on requests with a body. */
export const BODY_TYPES: readonly string[] = ['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml'];

/** `host[:port]` of a Host header or URL authority → lower-case host without brackets, or null. */
function hostOf(authority: string): { host: string; port: string } | null {
  if (authority === '' || /[\s/\\?#@]/.test(authority)) return null;
  let url: URL;
  try {
    url = new URL(`http://${authority}`);
  } catch {
    return null;
  }
  const h = url.hostname.toLowerCase();
  return { host: h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h, port: url.port };
}

function unmapped(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

/** Loopback names and literals: localhost, 127.0.0.0/8, ::1. */
function isLoopbackName(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * Null when the Host header is acceptable: a loopback name or IP literal (any port), the address
 * this server is bound to / was reached at (an IP literal), or one of `names` (admin.hosts, lower
 * case; exact match, any port). Otherwise the reason.
 */
export function checkHost(hostHeader: string | undefined, localAddress: string | undefined, boundHost: string, names: readonly string[] = []): string | null {
  if (hostHeader === undefined || hostHeader === '') return 'a Host header is required';
  const h = hostOf(hostHeader);
  if (h === null) return `Host "${hostHeader}" is not host[:port]`;
  if (isLoopbackName(h.host)) return null;
  if (isIP(h.host) === 0 && names.includes(h.host)) return null;
  if (isIP(h.host) !== 0) {
    // The unspecified address (0.0.0.0, ::) is never a name for this server: browsers have let
    // pages send requests to http://0.0.0.0:PORT.
    const own = [boundHost, localAddress ?? ''].map(unmapped).filter((a) => a !== '' && a !== '0.0.0.0' && a !== '::');
    if (own.includes(unmapped(h.host))) return null;
  }
  return `Host "${hostHeader}" is not a loopback name or this server's address`;
}

/** Null unless the request comes from another site (a browser page that is not this server). */
export function checkSameOrigin(origin: string | undefined, secFetchSite: string | undefined, hostHeader: string | undefined): string | null {
  if (secFetchSite !== undefined && secFetchSite !== 'same-origin' && secFetchSite !== 'none') {
    return `cross-site request refused (Sec-Fetch-Site: ${secFetchSite})`;
  }
  if (origin === undefined) return null;
  if (origin === 'null') return 'cross-site request refused (Origin: null)';
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return `cross-site request refused (Origin: ${origin})`;
  }
  const h = hostHeader === undefined ? null : hostOf(hostHeader);
  const oh = o.hostname.toLowerCase();
  const oHost = oh.startsWith('[') && oh.endsWith(']') ? oh.slice(1, -1) : oh;
  if (o.protocol !== 'http:' || h === null || oHost !== h.host || o.port !== h.port) {
    return `cross-site request refused (Origin: ${origin})`;
  }
  return null;
}

/** Null when the Content-Type is one of BODY_TYPES (parameters such as charset allowed). */
export function checkBodyType(contentType: string | undefined): string | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (BODY_TYPES.includes(type)) return null;
  return `Content-Type must be one of ${BODY_TYPES.join(', ')} (got ${type === '' ? 'none' : `"${type}"`})`;
}

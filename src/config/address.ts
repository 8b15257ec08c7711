// Parses the `host:port` addresses of listeners, endpoints and the admin server. Hosts are IP
// literals (IPv6 in brackets: `[::1]:80`) or `localhost` (→ 127.0.0.1): the config layer never
// resolves DNS names. Pure functions; used by the schema, the cross checks and compile.
import { isIPv4, isIPv6 } from 'node:net';

export interface HostPort {
  /** IP literal, IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

export type AddressResult = { readonly ok: true; readonly value: HostPort } | { readonly ok: false; readonly message: string };

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

/** Parse `host:port`; `allowPortZero` for listeners (0 = pick a free port), not for endpoints. */
export function parseHostPort(text: string, allowPortZero: boolean): AddressResult {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') {
      return fail(`"${text}" must be "[ipv6]:port", e.g. "[::1]:15001"`);
    }
    host = text.slice(1, close).toLowerCase();
    portText = text.slice(close + 2);
    if (!isIPv6(host)) return fail(`"${host}" in "${text}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail(`"${text}" must be "host:port", e.g. "127.0.0.1:15001"`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return fail(`"${text}": an IPv6 address needs brackets, e.g. "[::1]:15001"`);
    if (host.toLowerCase() === 'localhost') host = '127.0.0.1';
    else if (!isIPv4(host)) {
      return fail(`host "${host}" in "${text}" must be an IP address or localhost (DNS names are not resolved here)`);
    }
  }
  if (!PORT.test(portText) || Number(portText) > 65535) {
    return fail(`port "${portText}" in "${text}" must be an integer 0-65535`);
  }
  const port = Number(portText);
  if (port === 0 && !allowPortZero) return fail(`port 0 in "${text}" is not allowed here (1-65535)`);
  return { ok: true, value: { host, port } };
}

/** `host:port` with IPv6 hosts bracketed, for messages and comparisons. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

function fail(message: string): AddressResult {
  return { ok: false, message };
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127/8 (the config layer turns `localhost` into 127.0.0.1). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h.startsWith('127.') || h === '::1' || h.startsWith('::ffff:127.');
}

// `tcp_fallback` in the config: what compiles (the 1 s detection timeout by default), and each
// combination that could not mean what it says refused at validation with its precise path; and
// how the first bytes of a plaintext connection are classified.

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { classify } from '../../src/dataplane/detect.js';
import { listed, ok, OPTS } from '../config/helpers.js';

function parse(cfg: Record<string, unknown>): ReturnType<typeof parseConfigText> {
  return parseConfigText(JSON.stringify(cfg), OPTS);
}

const clusters = [
  { name: 'web', endpoints: [{ address: '127.0.0.1:8080' }] },
  { name: 'db', endpoints: [{ address: '127.0.0.1:6379' }] },
];
const routes = [{ name: 'all', match: { path_prefix: '/' }, cluster: 'web' }];
const listener = (extra: Record<string, unknown>): Record<string, unknown> => ({ name: 'in', address: '127.0.0.1:0', routes, ...extra });
const mtls = { node: { identity: 'spiffe://cluster.local/ns/default/sa/api' }, tls: { ca: { dir: './ca' } } };

describe('tcp_fallback in the config', () => {
  it('compiles on an auto listener: detect_timeout_ms 1000 and idle_timeout_ms 1 h by default', () => {
    const s = ok(parse({ listeners: [listener({ tcp_fallback: { cluster: 'db' } })], clusters })).snapshot;
    expect(s.listeners[0]).toMatchObject({ protocol: 'auto', tcp: null, tcpFallback: { cluster: 'db', detectTimeoutMs: 1000, idleTimeoutMs: 3_600_000 } });
    const t = ok(
      parse({
        listeners: [listener({ tcp_fallback: { cluster: 'db', detect_timeout_ms: 250, idle_timeout_ms: 0, opaque_ports: [3306, 25, 3306] } })],
        clusters,
      }),
    ).snapshot;
    expect(t.listeners[0]?.tcpFallback).toEqual({ cluster: 'db', detectTimeoutMs: 250, idleTimeoutMs: 0, opaquePorts: [3306, 25] });
    expect(ok(parse({ listeners: [listener({})], clusters })).snapshot.listeners[0]?.tcpFallback).toBeNull();
  });

  it('compiles on an mTLS auto listener without detect_timeout_ms', () => {
    const s = ok(parse({ ...mtls, listeners: [listener({ tls: { mode: 'mtls' }, tcp_fallback: { cluster: 'db' } })], clusters })).snapshot;
    expect(s.listeners[0]).toMatchObject({ tls: 'mtls', tcpFallback: { cluster: 'db' } });
  });

  it('refuses another protocol (given, or uws’s http1), an unknown cluster, and a detection timeout on a tls listener, each at its path', () => {
    expect(listed(parse({ listeners: [listener({ protocol: 'http1', tcp_fallback: { cluster: 'db' } })], clusters }))).toEqual([
      'listeners[0].tcp_fallback: protocol detection needs protocol: auto (this listener is http1)',
    ]);
    expect(listed(parse({ listeners: [listener({ engine: 'uws', tcp_fallback: { cluster: 'db' } })], clusters }))).toEqual([
      'listeners[0].tcp_fallback: protocol detection needs protocol: auto (this listener is http1)',
    ]);
    expect(listed(parse({ listeners: [listener({ tcp_fallback: { cluster: 'dbb' } })], clusters }))).toEqual([
      'listeners[0].tcp_fallback.cluster: unknown cluster "dbb" (did you mean "db"?)',
    ]);
    expect(
      listed(parse({ ...mtls, listeners: [listener({ tls: { mode: 'mtls' }, tcp_fallback: { cluster: 'db', detect_timeout_ms: 500 } })], clusters })),
    ).toEqual([
      'listeners[0].tcp_fallback.detect_timeout_ms: a tls listener accepts only TLS (ALPN outrigger-tcp/<port> selects the fallback): there are no plaintext first bytes to wait for',
    ]);
    expect(
      listed(parse({ ...mtls, listeners: [listener({ tls: { mode: 'mtls' }, tcp_fallback: { cluster: 'db', opaque_ports: [3306] } })], clusters })),
    ).toEqual([
      'listeners[0].tcp_fallback.opaque_ports: a tls listener accepts only TLS (ALPN outrigger-tcp/<port> selects the fallback): there are no plaintext first bytes to wait for',
    ]);
    expect(listed(parse({ listeners: [listener({ tcp_fallback: { cluster: 'db', opaque_ports: [0, 70000] } })], clusters }))).toHaveLength(2);
    expect(
      listed(parse({ listeners: [{ name: 'db-in', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'db', tcp_fallback: { cluster: 'db' } }], clusters })),
    ).toEqual(['listeners[0].tcp_fallback: protocol detection needs protocol: auto (this listener is tcp)']);
  });
});

describe('classify: the first bytes of a plaintext connection', () => {
  const c = (s: string | number[]): string | null => classify(Buffer.from(s as string));
  it('tells HTTP/2, HTTP/1 and opaque bytes apart, and waits while it cannot yet', () => {
    expect(c('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toBe('http2');
    expect(c('PRI * HTTP/2')).toBeNull();
    expect(c('GET / HTTP/1.1\r\n')).toBe('http1');
    expect(c('M-SEARCH * HTTP/1.1')).toBe('http1');
    expect(c('GET http://example.com/ HTTP/1.1')).toBe('http1');
    expect(c('OPTIONS https:/')).toBeNull();
    expect(c('GE')).toBeNull();
    expect(c('GET ')).toBeNull();
    // Text protocols whose commands are a token and a space: not HTTP.
    expect(c('GET key\r\n')).toBe('opaque');
    expect(c('get key 0\r\n')).toBe('opaque');
    expect(c('GET htt:')).toBe('opaque');
    expect(c('*1\r\n$4\r\nPING\r\n')).toBe('opaque');
    expect(c([0x16, 0x03, 0x01])).toBe('opaque');
    expect(c(' GET')).toBe('opaque');
    expect(c('A'.repeat(25))).toBe('opaque');
    expect(c('A'.repeat(24))).toBeNull();
  });
});

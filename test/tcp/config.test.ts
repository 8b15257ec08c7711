// `protocol: tcp` listeners and `health_check.tcp` in the config: what compiles, and each
// misconfiguration refused at validation with its precise problem path.

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { listed, ok, OPTS } from '../config/helpers.js';

function parse(cfg: Record<string, unknown>): ReturnType<typeof parseConfigText> {
  return parseConfigText(JSON.stringify(cfg), OPTS);
}

const clusters = [{ name: 'db', endpoints: [{ address: '127.0.0.1:6379' }], health_check: { tcp: {} } }];
const tcpListener = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'db-out',
  address: '127.0.0.1:0',
  protocol: 'tcp',
  cluster: 'db',
  ...extra,
});

describe('tcp listeners in the config', () => {
  it('compiles a tcp listener (1 h idle timeout by default) and a TCP health check', () => {
    const s = ok(parse({ listeners: [tcpListener()], clusters })).snapshot;
    expect(s.listeners[0]).toMatchObject({ protocol: 'tcp', tcp: { cluster: 'db', idleTimeoutMs: 3_600_000 }, routes: [] });
    expect(s.clusters[0]?.healthCheck).toMatchObject({ tcp: true, path: '' });
    const t = ok(parse({ listeners: [tcpListener({ tcp: { idle_timeout_ms: 0 } })], clusters })).snapshot;
    expect(t.listeners[0]?.tcp).toEqual({ cluster: 'db', idleTimeoutMs: 0 });
  });

  it('an mTLS tcp listener authorizes by `from`', () => {
    const tls = { ca: { dir: './ca' } };
    const r = parse({
      node: { identity: 'spiffe://cluster.local/ns/default/sa/db' },
      tls,
      listeners: [tcpListener({ tls: { mode: 'mtls' }, authorization: [{ from: ['spiffe://cluster.local/ns/default/sa/web'] }] })],
      clusters,
    });
    expect(ok(r).snapshot.listeners[0]?.authorization).toEqual([{ from: ['spiffe://cluster.local/ns/default/sa/web'], paths: null, methods: null }]);
  });

  it('refuses routes, an engine, a missing or unknown cluster, and HTTP fields in authorization, each at its path', () => {
    expect(listed(parse({ listeners: [tcpListener({ routes: [{ cluster: 'db' }] })], clusters }))).toEqual([
      'listeners[0].routes: a tcp listener has no routes: every connection goes to its cluster',
    ]);
    expect(listed(parse({ listeners: [tcpListener({ engine: 'uws' })], clusters }))).toEqual([
      'listeners[0].engine: a tcp listener has no HTTP engine (its connections are forwarded as bytes by node:net/tls): remove engine',
    ]);
    expect(listed(parse({ listeners: [tcpListener({ cluster: undefined })], clusters }))).toEqual([
      'listeners[0].cluster: required on a tcp listener: the cluster every connection goes to',
    ]);
    expect(listed(parse({ listeners: [tcpListener({ cluster: 'dbb' })], clusters }))).toEqual([
      'listeners[0].cluster: unknown cluster "dbb" (did you mean "db"?)',
    ]);
    const authz = listed(
      parse({
        node: { identity: 'spiffe://cluster.local/ns/default/sa/db' },
        tls: { ca: { dir: './ca' } },
        listeners: [
          tcpListener({ tls: {}, authorization: [{ from: ['spiffe://cluster.local/*'], paths: ['/x'], methods: ['GET'] }, { grpc: [{ service: 'a.B' }] }] }),
        ],
        clusters,
      }),
    );
    expect(authz).toEqual([
      'listeners[0].authorization[0].paths: a tcp listener authorizes by peer identity only: paths does not apply (use from)',
      'listeners[0].authorization[0].methods: a tcp listener authorizes by peer identity only: methods does not apply (use from)',
      'listeners[0].authorization[1].grpc: a tcp listener authorizes by peer identity only: grpc does not apply (use from)',
    ]);
  });

  it('refuses the HTTP-only listener settings on a tcp listener (they would be accepted and do nothing), each at its path', () => {
    const r = parse({
      listeners: [
        tcpListener({
          rate_limit: { requests_per_second: 10 },
          x_forwarded_for: 'off',
          max_request_headers_bytes: 4096,
          headers_with_underscores: 'allow',
          http2: { max_concurrent_streams: 10 },
          timeouts: { headers_ms: 1000, body_idle_ms: 1000, keepalive_idle_ms: 1000, handshake_ms: 1000 },
        }),
      ],
      clusters,
    });
    expect(listed(r)).toEqual([
      'listeners[0].rate_limit: a tcp listener forwards bytes, not HTTP requests: rate_limit does not apply',
      'listeners[0].x_forwarded_for: a tcp listener forwards bytes, not HTTP requests: x_forwarded_for does not apply',
      'listeners[0].max_request_headers_bytes: a tcp listener forwards bytes, not HTTP requests: max_request_headers_bytes does not apply',
      'listeners[0].headers_with_underscores: a tcp listener forwards bytes, not HTTP requests: headers_with_underscores does not apply',
      'listeners[0].http2: a tcp listener forwards bytes, not HTTP requests: http2 does not apply',
      'listeners[0].timeouts.headers_ms: a tcp listener has no HTTP requests: headers_ms does not apply (tcp.idle_timeout_ms closes an idle connection; timeouts.handshake_ms applies to tls)',
      'listeners[0].timeouts.body_idle_ms: a tcp listener has no HTTP requests: body_idle_ms does not apply (tcp.idle_timeout_ms closes an idle connection; timeouts.handshake_ms applies to tls)',
      'listeners[0].timeouts.keepalive_idle_ms: a tcp listener has no HTTP requests: keepalive_idle_ms does not apply (tcp.idle_timeout_ms closes an idle connection; timeouts.handshake_ms applies to tls)',
    ]);
    // What does apply still compiles: the TLS handshake timeout and the connection limit.
    expect(ok(parse({ listeners: [tcpListener({ timeouts: { handshake_ms: 1000 }, max_connections: 5 })], clusters })).snapshot.listeners[0]).toMatchObject({
      maxConnections: 5,
      timeouts: { handshakeMs: 1000 },
    });
  });

  it('refuses cluster or tcp on an HTTP listener, and an HTTP listener without routes', () => {
    expect(listed(parse({ listeners: [{ name: 'h', address: '127.0.0.1:0', cluster: 'db', tcp: {} }], clusters }))).toEqual([
      'listeners[0].routes: required (at least one route), unless protocol is tcp or the listener routes by original_destination',
      'listeners[0].cluster: only for protocol: tcp listeners (an HTTP listener names clusters in its routes)',
      'listeners[0].tcp: only for protocol: tcp listeners (an HTTP listener names clusters in its routes)',
    ]);
  });

  it('refuses a TCP health check together with path or grpc', () => {
    const c = [{ name: 'db', endpoints: [{ address: '127.0.0.1:6379' }], health_check: { tcp: {}, path: '/h' } }];
    expect(listed(parse({ listeners: [tcpListener()], clusters: c }))).toEqual([
      'clusters[0].health_check.path: give tcp (a connect) or an HTTP check, not both',
    ]);
  });
});

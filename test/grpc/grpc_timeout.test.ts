// grpc-timeout (issue 14): the route deadline is the shorter of the route's timeout_ms and the
// call's grpc-timeout; a call that exceeds it gets DEADLINE_EXCEEDED from the proxy, and the
// upstream stream carries what is left of the timeout.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http2, { type ClientHttp2Session } from 'node:http2';
import { closeAll, listenTracked, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';
import { h2connect, h2request } from '../h2/h2_client.js';
import { formatGrpcTimeout, parseGrpcTimeout } from '../../src/grpc/wire.js';
import { echoClient, grpcFrame, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

function listener(name: string, route: Record<string, unknown> = {}, cluster = 'grpc'): Record<string, unknown> {
  return { name, address: '127.0.0.1:0', engine: 'strict', protocol: 'http2', routes: [{ match: { path_prefix: '/test.Echo/' }, cluster, ...route }] };
}

/**
 * A node:http2 server that ignores grpc-timeout (so the proxy's own deadline shows): with
 * `x-delay-ms` it never answers, else at once with the grpc-timeout it received in `x-seen-timeout`.
 */
async function startDeafUpstream(): Promise<string> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (ss) => sessions.add(ss));
  server.on('stream', (stream, headers) => {
    stream.resume();
    if (Number(headers['x-delay-ms'] ?? 0) > 0) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-seen-timeout': String(headers['grpc-timeout'] ?? '') }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(grpcFrame('ok'));
  });
  return listenTracked(server, sessions);
}

describe('grpc-timeout', () => {
  let up: EchoServer;
  let sc: Sidecar;
  let client: EchoClient;
  let s: ClientHttp2Session;
  const unaryRaw = (session: ClientHttp2Session, timeout: string | null, delayMs: number) =>
    h2request(
      session,
      {
        ':method': 'POST',
        ':path': '/test.Echo/Unary',
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-delay-ms': String(delayMs),
        ...(timeout !== null ? { 'grpc-timeout': timeout } : {}),
      },
      grpcFrame('hi'),
    );
  beforeAll(async () => {
    up = await startEchoServer();
    track(up);
    const deaf = await startDeafUpstream();
    sc = await startSidecar({
      node: { workers: 1, drain_timeout_ms: 2000, error_detail: 'full' },
      admin: { address: '127.0.0.1:0' },
      listeners: [listener('main'), listener('short', { timeout_ms: 200 }), listener('deaf', {}, 'deaf')],
      clusters: [
        { name: 'grpc', protocol: 'http2', endpoints: [{ address: up.address }] },
        { name: 'deaf', protocol: 'http2', endpoints: [{ address: deaf }] },
      ],
    });
    client = echoClient(`127.0.0.1:${sc.port()}`);
    track({ close: () => Promise.resolve(client.close()) });
    s = await h2connect(`http://127.0.0.1:${sc.port()}`);
  }, 60_000);
  afterAll(closeAll);

  it('parse and format', () => {
    expect([
      parseGrpcTimeout('1H'),
      parseGrpcTimeout('2M'),
      parseGrpcTimeout('3S'),
      parseGrpcTimeout('4m'),
      parseGrpcTimeout('5000u'),
      parseGrpcTimeout('6000000n'),
    ]).toEqual([3_600_000, 120_000, 3000, 4, 5, 6]);
    for (const bad of ['', 'm', '5', '5x', '123456789m', '-5m', '1.5S']) expect(parseGrpcTimeout(bad), bad).toBe(-1);
    expect([formatGrpcTimeout(1234.9), formatGrpcTimeout(-3), formatGrpcTimeout(200_000_000)]).toEqual(['1234m', '0m', '200000S']);
  });

  it('a grpc-timeout shorter than the route timeout: DEADLINE_EXCEEDED from the proxy at the grpc-timeout', async () => {
    const sd = await h2connect(`http://127.0.0.1:${sc.port('deaf')}`);
    const t0 = performance.now();
    const r = await unaryRaw(sd, '150m', 2000);
    const took = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('4');
    expect(r.headers['x-outrigger-error']).toBe('timeout');
    expect(decodeURIComponent(String(r.headers['grpc-message']))).toContain('grpc-timeout (150 ms)');
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(1500);
  });

  it('a route timeout shorter than the grpc-timeout wins', async () => {
    const s2 = await h2connect(`http://127.0.0.1:${sc.port('short')}`);
    const t0 = performance.now();
    const r = await unaryRaw(s2, '10S', 2000);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(r.headers['grpc-status']).toBe('4');
    expect(decodeURIComponent(String(r.headers['grpc-message']))).toContain('route timeout (200 ms)');
  });

  it('a malformed grpc-timeout is no deadline for the proxy and goes upstream as it is (grpc-js refuses it)', async () => {
    const r = await unaryRaw(s, 'soon', 0);
    expect(r.headers['grpc-status']).toBe('13');
    expect(decodeURIComponent(String(r.headers['grpc-message']))).toBe('Invalid grpc-timeout value "soon"');
    expect(r.headers['x-outrigger-error']).toBeUndefined();
  });

  it('grpc-js client deadline: DEADLINE_EXCEEDED', async () => {
    const md = new grpc.Metadata();
    md.set('x-delay-ms', '2000');
    const t0 = performance.now();
    const code = await new Promise<grpc.status>((resolve) => {
      client.unary(Buffer.from('x'), md, { deadline: Date.now() + 300 }, (e) => resolve(e?.code ?? grpc.status.OK));
    });
    expect(code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('the upstream gets what is left of the grpc-timeout', async () => {
    const sd = await h2connect(`http://127.0.0.1:${sc.port('deaf')}`);
    const r = await unaryRaw(sd, '5S', 0);
    expect(r.trailers?.['grpc-status']).toBe('0');
    const seen = String(r.headers['x-seen-timeout']);
    expect(seen).toMatch(/^\d+m$/);
    const ms = parseGrpcTimeout(seen);
    expect(ms).toBeGreaterThan(4000);
    expect(ms).toBeLessThanOrEqual(5000);
    // Without one, none is added.
    const n = await unaryRaw(sd, null, 0);
    expect(n.headers['x-seen-timeout']).toBe('');
    // grpc-js sees the deadline through the proxy.
    const left = await new Promise<string>((resolve) => {
      const c = client.unary(Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 3000 }, () => {});
      c.on('status', (st: grpc.StatusObject) => resolve(String(st.metadata.get('x-deadline-left-ms')[0])));
    });
    expect(Number(left)).toBeGreaterThan(2000);
    expect(Number(left)).toBeLessThanOrEqual(3000);
  });
});

// HTTP/2 on plaintext listeners (src/dataplane/h2/): h2c with prior knowledge through `protocol:
// auto` (the preface decides) and `protocol: http2`, on the strict and node engines, proxied to
// the same HTTP/1.1 upstream pools; HTTP/1.1 on the same auto listener; a `protocol: http1`
// listener refuses the preface as before; HTTP/1.1 `Upgrade: h2c` is served as HTTP/1.1.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  eventually,
  headerValues,
  httpGet,
  rawRequest,
  startSidecar,
  startUpstream,
  echoHandler,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { h2connect, h2request } from './h2_client.js';

function h2Config(app: string, listener: Record<string, unknown>, more: Array<Record<string, unknown>> = []): Record<string, unknown> {
  const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
  return {
    node: { workers: 1, drain_timeout_ms: 2000 },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes, ...listener }, ...more.map((l) => ({ address: '127.0.0.1:0', routes, ...l }))],
    clusters: [{ name: 'app', endpoints: [{ address: app }] }],
  };
}

describe.each(['strict', 'node'] as const)('h2c on the %s engine', (engine) => {
  let app: Upstream;
  let auto: Sidecar;
  let only: Sidecar;
  let h1: Sidecar;
  beforeAll(async () => {
    app = await startUpstream({ name: 'app', handler: echoHandler });
    [auto, only, h1] = await Promise.all([
      // `limits`: the listener's max_connections and headers_ms apply to HTTP/2 connections too.
      startSidecar(h2Config(app.address, { engine }, [{ name: 'limits', engine, max_connections: 1, timeouts: { headers_ms: 300 } }])),
      startSidecar(h2Config(app.address, { engine, protocol: 'http2' })),
      startSidecar(h2Config(app.address, { engine, protocol: 'http1' })),
    ]);
  }, 60_000);
  afterAll(closeAll);

  it('auto: h2 with prior knowledge is proxied to the HTTP/1.1 upstream', async () => {
    const s = await h2connect(`http://127.0.0.1:${auto.port()}`);
    const r = await h2request(s, { ':method': 'POST', ':path': '/a/b?q=1', 'x-one': 'v', cookie: 'a=1', 'content-length': '5' }, 'hello');
    expect(r.error).toBeNull();
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body.toString()) as { method: string; url: string; rawHeaders: string[]; bodyLength: number };
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/a/b?q=1');
    expect(seen.bodyLength).toBe(5);
    expect(headerValues(seen.rawHeaders, 'host')).toEqual([`127.0.0.1:${auto.port()}`]);
    expect(headerValues(seen.rawHeaders, 'x-one')).toEqual(['v']);
    expect(headerValues(seen.rawHeaders, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(seen.rawHeaders, 'x-request-id')).toHaveLength(1);
    s.close();
  });

  it('auto: HTTP/1.1 on the same listener still works', async () => {
    const r = await httpGet(auto.url('/h1'));
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as { url: string }).url).toBe('/h1');
  });

  it('max_connections counts h2 connections; headers_ms closes an h2 connection that sends no request', async () => {
    const origin = `http://127.0.0.1:${auto.port('limits')}`;
    const a = await h2connect(origin);
    expect((await h2request(a, { ':path': '/first' })).status).toBe(200);
    // A second connection while the first is open: closed at accept (it may or may not see its 'connect').
    const second = await h2connect(origin).then(
      (b) => new Promise<string>((resolve) => (b.closed || b.destroyed ? resolve('closed') : b.once('close', () => resolve('closed')))),
      () => 'refused',
    );
    expect(['closed', 'refused']).toContain(second);
    expect((await h2request(a, { ':path': '/still' })).status).toBe(200);
    a.close();
    await new Promise<void>((resolve) => a.once('close', () => resolve()));
    // Idle from the start: no HEADERS within headers_ms → GOAWAY and close.
    // A connection the server accepted (it answers a PING; one refused by max_connections would not).
    const c = await eventually(
      () =>
        h2connect(origin).then(
          (x) => new Promise<typeof x | undefined>((resolve) => x.ping((err) => resolve(err === null ? x : (x.destroy(), undefined)))),
          () => undefined,
        ),
      'a connection once the first is gone',
    );
    await new Promise<void>((resolve) => (c.closed || c.destroyed ? resolve() : c.once('close', () => resolve())));
  });

  it('http2: prior knowledge is served', async () => {
    const s = await h2connect(`http://127.0.0.1:${only.port()}`);
    const r = await h2request(s, { ':path': '/only' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString()).url).toBe('/only');
    s.close();
  });

  it('http1: the preface is refused as before, and what follows it is never forwarded', async () => {
    const before = app.requests.length;
    const r = await rawRequest(h1.port(), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(r.response?.status).toBe(400);
    expect(app.requests.slice(before).some((x) => x.url === '/smuggled')).toBe(false);
  });
});

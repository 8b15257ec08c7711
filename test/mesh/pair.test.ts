// Two real sidecars talking mTLS: client side (web) → server side (api) → app. The server side
// authorizes by identity, path and method and tells the app who called through
// x-forwarded-client-cert; the client side refuses a server with the wrong SPIFFE ID; pooled
// connections keep the number of TLS handshakes at the pool size, whatever the request count.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  clientSideConfig,
  closeAll,
  directRequest,
  endpointCounters,
  get,
  headerValues,
  leaf,
  rawRequest,
  serverSideConfig,
  spiffe,
  startLoad,
  startMeshServer,
  startSidecar,
  WEB,
  type Sidecar,
  type Upstream as App,
} from '../helpers/sidecar.js';

const POOL_SIZE = 4;
const CLIENT_WORKERS = 2;

let ca: Ca;
let app: App;
/** Server side with authorization rules. */
let server: Sidecar;
/** Client side: cluster `api` → server (expects API), cluster `wrong` → server (expects sa/other). */
let client: Sidecar;
let out: number;

beforeAll(async () => {
  ({ ca, app, server } = await startMeshServer({
    authorization: [
      { from: [WEB], paths: ['/v1/*'], methods: ['GET'] },
      { from: ['spiffe://cluster.local/ns/ops/*'], paths: ['/admin/exact'], methods: ['POST'] },
    ],
  }));
  const upstream = `127.0.0.1:${server.port('inbound')}`;
  const cfg = clientSideConfig({ tls: caSource(ca), upstream, workers: CLIENT_WORKERS, pool: { connections_per_worker: POOL_SIZE } });
  // A second cluster to the same server, expecting another identity.
  (cfg['clusters'] as unknown[]).push({ name: 'wrong', tls: { mode: 'mtls', identity: spiffe('other') }, endpoints: [{ address: upstream }] });
  const listener = (cfg['listeners'] as Array<{ routes: unknown[] }>)[0]!;
  listener.routes.unshift({ match: { path_prefix: '/v1/wrong/' }, cluster: 'wrong' });
  client = await startSidecar(cfg);
  out = client.port('outbound');
});
afterAll(closeAll);

function directCreds(identity: string): { ca: string; cert: string; key: string } {
  const l = leaf(ca, identity);
  return { ca: ca.certPem, cert: l.certPem, key: l.keyPem };
}

describe('end to end through both sidecars', () => {
  it('GET /v1/... from web reaches the app over mTLS', async () => {
    const r = await get(out, '/v1/hello?x=1');
    expect(r.status).toBe(200);
    expect(r.body).toBe('app GET /v1/hello?x=1');
  });
});

describe('server identity check on the client side', () => {
  it('a server that is not the expected SPIFFE ID → 502 upstream_identity_mismatch, and the app receives nothing', async () => {
    const before = app.requests.length;
    const r = await get(out, '/v1/wrong/secret', { method: 'GET' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('upstream_identity_mismatch');
    // Repeated: never a pooled connection that skips the check.
    const again = await Promise.all([1, 2, 3].map(() => get(out, '/v1/wrong/secret')));
    expect(again.map((a) => [a.status, a.headers['x-outrigger-error']])).toEqual(Array(3).fill([502, 'upstream_identity_mismatch']));
    expect(app.requests.length).toBe(before);
    expect(app.requests.some((s) => s.url.startsWith('/v1/wrong/'))).toBe(false);
    const wrong = await endpointCounters(client, 'wrong');
    expect(wrong.connectionsOpen).toBe(0); // no connection to an impostor stays in the pool
    expect(wrong.tlsHandshakes + wrong.tlsResumed).toBe(0);
  });
});

describe('authorization on the server side (identity, path, method)', () => {
  it('allows web to GET /v1/*', async () => {
    const r = await get(out, '/v1/items/7');
    expect(r.status).toBe(200);
    expect(r.body).toBe('app GET /v1/items/7');
  });

  it('denies web another path with 403 unauthorized, before the app', async () => {
    const before = app.requests.length;
    for (const p of ['/v2/items', '/v1', '/admin/exact', '/V1/items']) {
      const r = await get(out, p);
      expect([p, r.status, r.headers['x-outrigger-error']]).toEqual([p, 403, 'unauthorized']);
    }
    expect(app.requests.length).toBe(before);
  });

  it('denies web another method with 403 unauthorized', async () => {
    const before = app.requests.length;
    for (const m of ['POST', 'DELETE', 'HEAD']) {
      const r = await get(out, '/v1/items', { method: m });
      expect([m, r.status, r.headers['x-outrigger-error']]).toEqual([m, 403, 'unauthorized']);
    }
    expect(app.requests.length).toBe(before);
  });

  it('denies another authenticated identity (sa/intruder) on an allowed path and method', async () => {
    const before = app.requests.length;
    const r = await directRequest(server.port('inbound'), directCreds(spiffe('intruder')), { path: '/v1/items' });
    expect(r.ok && [r.status, r.headers['x-outrigger-error']]).toEqual([403, 'unauthorized']);
    expect(app.requests.length).toBe(before);
  });

  it('a namespace pattern rule (spiffe://cluster.local/ns/ops/*) with an exact path and POST', async () => {
    const tool = directCreds(spiffe('tool', 'ops'));
    const ok = await directRequest(server.port('inbound'), tool, { method: 'POST', path: '/admin/exact' });
    expect(ok.ok && ok.status).toBe(200);
    const deny = [
      await directRequest(server.port('inbound'), tool, { method: 'POST', path: '/admin/exact/more' }), // exact, not prefix
      await directRequest(server.port('inbound'), tool, { method: 'GET', path: '/admin/exact' }),
      await directRequest(server.port('inbound'), tool, { method: 'GET', path: '/v1/items' }), // rule 1 is for web only
      await directRequest(server.port('inbound'), directCreds(spiffe('tool', 'opsx')), { method: 'POST', path: '/admin/exact' }),
    ];
    expect(deny.map((r) => (r.ok ? r.status : r.error))).toEqual([403, 403, 403, 403]);
  });

  it('a path that a decoding app could resolve elsewhere (dot segments, however spelled) is refused before any rule runs', async () => {
    const before = app.requests.length;
    const web = directCreds(WEB);
    for (const p of ['/v1/../admin', '/v1/%2e%2e/admin', '/v1/..%2Fadmin', '/v1/%2E./x', '/v1/./x', '/v1/..', '/v1/a%5c..%5cb']) {
      const viaClient = await get(out, p);
      const direct = await directRequest(server.port('inbound'), web, { path: p });
      expect([p, viaClient.status, viaClient.headers['x-outrigger-error'], direct.ok && direct.status]).toEqual([p, 400, 'bad_request', 400]);
    }
    expect(app.requests.length).toBe(before);
    // Dots inside a segment are ordinary names.
    for (const p of ['/v1/.well-known', '/v1/a..b', '/v1/x?next=/../admin']) expect([p, (await get(out, p)).status]).toEqual([p, 200]);
  });

  it('a resumed TLS session keeps its peer identity: authorized and denied as on a full handshake', async () => {
    for (const [who, allowed] of [
      [WEB, true],
      [spiffe('intruder'), false],
    ] as const) {
      const creds = directCreds(who);
      const first = await directRequest(server.port('inbound'), creds, { path: '/v1/resume/1' });
      expect(first.ok && first.session).toBeInstanceOf(Buffer);
      const again = await directRequest(server.port('inbound'), creds, { path: '/v1/resume/2', session: first.ok ? first.session : undefined });
      expect(again.ok && [again.resumed, again.status]).toEqual([true, allowed ? 200 : 403]);
    }
    const seen = app.requests.find((s) => s.url === '/v1/resume/2');
    expect(headerValues(seen!.rawHeaders, 'x-forwarded-client-cert')).toEqual([`By=${API};URI=${WEB}`]);
  });

  it('a listener without rules lets any authenticated peer in', async () => {
    const open = await startSidecar(serverSideConfig({ tls: caSource(ca), app: app.address }));
    try {
      const before = app.requests.length;
      const r = await directRequest(open.port('inbound'), directCreds(spiffe('intruder')), { method: 'DELETE', path: '/anything' });
      expect(r.ok && [r.status, r.body]).toEqual([200, 'app DELETE /anything']);
      expect(app.requests.length).toBe(before + 1);
      // ... but still only authenticated ones.
      const anon = await directRequest(open.port('inbound'), { ca: ca.certPem }, { path: '/anything' });
      expect(anon.ok).toBe(false);
      expect(app.requests.length).toBe(before + 1);
    } finally {
      await open.stop();
    }
  });
});

describe('x-forwarded-client-cert', () => {
  const ours = `By=${API};URI=${WEB}`;

  it('the app receives By=<server id>;URI=<client id>, exactly once', async () => {
    const r = await get(out, '/v1/xfcc/plain');
    expect(r.status).toBe(200);
    const seen = app.requests.find((s) => s.url === '/v1/xfcc/plain');
    expect(seen).toBeDefined();
    expect(headerValues(seen!.rawHeaders, 'x-forwarded-client-cert')).toEqual([ours]);
  });

  it('a forged header sent by the app behind the client sidecar is dropped; only ours arrives', async () => {
    const forged = `By=${API};URI=${spiffe('admin')}`;
    // Exact bytes: two forged lines, in two spellings.
    const r = await rawRequest(
      out,
      `GET /v1/xfcc/forged HTTP/1.1\r\nHost: api\r\nx-forwarded-client-cert: ${forged}\r\nX-Forwarded-Client-Cert: URI=spiffe://evil/x\r\n\r\n`,
    );
    expect(r.response?.status).toBe(200);
    const seen = app.requests.find((s) => s.url === '/v1/xfcc/forged');
    expect(headerValues(seen!.rawHeaders, 'x-forwarded-client-cert')).toEqual([ours]);
  });

  it('a forged header sent straight to the inbound listener by an mTLS client is dropped', async () => {
    const r = await directRequest(server.port('inbound'), directCreds(WEB), {
      path: '/v1/xfcc/direct',
      headers: { 'x-forwarded-client-cert': `By=${API};URI=${spiffe('admin')}`, connection: 'keep-alive' },
    });
    expect(r.ok && r.status).toBe(200);
    const seen = app.requests.find((s) => s.url === '/v1/xfcc/direct');
    expect(headerValues(seen!.rawHeaders, 'x-forwarded-client-cert')).toEqual([ours]);
  });

  it('the header cannot be smuggled through Connection-listed or differently-cased names', async () => {
    const r = await directRequest(server.port('inbound'), directCreds(WEB), {
      path: '/v1/xfcc/cased',
      headers: { 'X-FORWARDED-CLIENT-CERT': `URI=${spiffe('admin')}`, connection: 'x-forwarded-client-cert' },
    });
    expect(r.ok && r.status).toBe(200);
    const seen = app.requests.find((s) => s.url === '/v1/xfcc/cased');
    expect(headerValues(seen!.rawHeaders, 'x-forwarded-client-cert')).toEqual([ours]);
  });
});

describe('pooled persistent mTLS connections', () => {
  it(`2000 requests over 10 client connections: TLS handshakes ≤ connections_per_worker × workers, and 1000 more stay within it`, async () => {
    const bound = POOL_SIZE * CLIENT_WORKERS;
    const before = await endpointCounters(client, 'api');
    const first = await startLoad(out, { connections: 10, total: 2000 }).done;
    expect(first.failures).toEqual([]);
    expect(first.ok).toBe(2000);
    const mid = await endpointCounters(client, 'api');
    // Every connection the pool ever opened to the server (full handshakes and resumptions).
    expect(mid.tlsHandshakes + mid.tlsResumed).toBe(mid.connectionsOpened);
    expect(mid.connectionsOpened).toBeLessThanOrEqual(bound);
    expect(mid.tlsHandshakes).toBeLessThanOrEqual(bound);
    expect(mid.connectionsOpen).toBeLessThanOrEqual(bound);
    expect(mid.tlsHandshakes).toBeGreaterThanOrEqual(1);
    expect(mid.connectionsOpened - before.connectionsOpened).toBeLessThanOrEqual(bound);

    const second = await startLoad(out, { connections: 10, total: 1000 }).done;
    expect(second.failures).toEqual([]);
    expect(second.ok).toBe(1000);
    // 3000 requests later, still no more connections (and handshakes) than the pools hold. The
    // second batch may fill a worker's pool the first did not (the kernel spreads client
    // connections over the workers), never beyond it.
    const after = await endpointCounters(client, 'api');
    expect(after.connectionsOpened).toBeLessThanOrEqual(bound);
    expect(after.tlsHandshakes + after.tlsResumed).toBe(after.connectionsOpened);
    if (mid.connectionsOpened === bound) expect(after.connectionsOpened).toBe(bound);
    // Persistent: every connection ever opened to the server is still open.
    expect(after.connectionsOpen).toBe(after.connectionsOpened);
  });
});

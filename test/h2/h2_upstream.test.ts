// HTTP/2 to upstreams (`clusters[].protocol: http2`, src/upstream/h2_pool.ts): HTTP/1.1 and h2
// clients through a real sidecar to node:http2 servers (h2c, and TLS with ALPN h2 and a SPIFFE
// identity): fields and bodies both ways byte-exact, trailers, streams multiplexed on few sessions
// within the server's SETTINGS_MAX_CONCURRENT_STREAMS, GOAWAY and REFUSED_STREAM answered by
// resending, unreachable endpoints, the identity check, response backpressure, health checks.

import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  adminCall,
  API,
  caSource,
  closeAll,
  endpointView,
  clusterView,
  eventually,
  httpGet,
  leaf,
  listenTracked,
  newCa,
  rawRequest,
  spiffe,
  startSidecar,
  track,
  WEB,
  type Sidecar,
} from '../helpers/sidecar.js';
import { h2connect, h2request } from './h2_client.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface H2Upstream {
  address: string;
  /** Sessions the server accepted. */
  sessions: number;
  /** Most streams open at once on one session. */
  maxOpenPerSession: number;
  streams: number;
  health: number;
  /** Writes of a large response that returned false (backpressure reached the server). */
  writesRefused: number;
  /** Bytes of the large response written so far. */
  bigWritten: number;
  /** Every so many streams a session is closed gracefully (GOAWAY); 0 = never. */
  goawayEvery: number;
  /** Answers carry trailers (x-checksum, grpc-status). */
  trailers: boolean;
  /** Each path's first stream is refused (REFUSED_STREAM), the ones after it answered. */
  refuseFirst: boolean;
  /** Streams refused so far. */
  refused: number;
  /** Answers held by /hold until released. */
  held: Array<() => void>;
}

/** A node:http2 server (h2c, or TLS when `tls` is given) that answers by path. */
async function startH2Upstream(o: { maxConcurrentStreams?: number; tls?: { cert: string; key: string; ca: string } } = {}): Promise<H2Upstream> {
  const state: H2Upstream = {
    address: '',
    sessions: 0,
    maxOpenPerSession: 0,
    streams: 0,
    health: 0,
    writesRefused: 0,
    bigWritten: 0,
    goawayEvery: 0,
    trailers: true,
    refuseFirst: false,
    refused: 0,
    held: [],
  };
  const settings = o.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: o.maxConcurrentStreams } : {};
  const server =
    o.tls === undefined
      ? http2.createServer({ settings })
      : http2.createSecureServer({ settings, cert: o.tls.cert, key: o.tls.key, ca: o.tls.ca, requestCert: true, rejectUnauthorized: true, allowHTTP1: false });
  const sessions = new Set<http2.ServerHttp2Session>();
  const refusedPaths = new Set<string>();
  server.on('session', (s) => {
    state.sessions++;
    sessions.add(s);
    let open = 0;
    let count = 0;
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
    s.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      count++;
      state.streams++;
      open++;
      state.maxOpenPerSession = Math.max(state.maxOpenPerSession, open);
      stream.on('close', () => open--);
      const path = String(headers[':path']);
      if (state.refuseFirst && !refusedPaths.has(path)) {
        refusedPaths.add(path);
        state.refused++;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      // GOAWAY (graceful: the streams it names finish; later ones were not processed). Deferred:
      // node 20's server corrupts its heap when a session is closed inside its 'stream' event.
      // Node 20's server also corrupts its heap (malloc aborts the process a few times in 100 000
      // requests) when sessions close while its streams answer with trailers (waitForTrailers):
      // a test that closes sessions turns `trailers` off.
      if (state.goawayEvery > 0 && count % state.goawayEvery === 0) setImmediate(() => s.close());
      handle(state, stream, headers);
    });
  });
  state.address = await listenTracked(server, sessions);
  return state;
}

function handle(state: H2Upstream, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const path = String(headers[':path']);
  if (headers['user-agent'] === 'outrigger-health-check') {
    state.health++;
    stream.respond({ ':status': 200 }, { endStream: true });
    return;
  }
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  let trailers: http2.IncomingHttpHeaders | null = null;
  stream.on('trailers', (t) => (trailers = t));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    if (path.startsWith('/hold')) {
      state.held.push(() => {
        if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: true });
      });
      return;
    }
    if (path.startsWith('/big')) {
      const n = Number(new URL(path, 'http://x').searchParams.get('n'));
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
      const piece = Buffer.alloc(64 * 1024, 0x61);
      const more = (): void => {
        while (state.bigWritten < n && !stream.destroyed) {
          const len = Math.min(piece.length, n - state.bigWritten);
          state.bigWritten += len;
          if (!stream.write(len === piece.length ? piece : piece.subarray(0, len))) {
            state.writesRefused++;
            stream.once('drain', more);
            return;
          }
        }
        stream.end();
      };
      more();
      return;
    }
    if (path.startsWith('/bytes')) {
      const n = Number(new URL(path, 'http://x').searchParams.get('n'));
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
      stream.respond({ ':status': 200, 'x-sha': sha(out) });
      stream.end(out);
      return;
    }
    const summary = {
      method: headers[':method'],
      path,
      authority: headers[':authority'],
      scheme: headers[':scheme'],
      headers: Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith(':'))),
      bodyLength: body.length,
      sha: sha(body),
      trailers,
    };
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-multi': ['a', 'b'] }, { waitForTrailers: state.trailers });
    if (state.trailers) stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': summary.sha, 'grpc-status': '0' }));
    stream.end(JSON.stringify(summary));
  });
}

function sidecarConfig(
  endpoints: string[],
  more: { cluster?: Record<string, unknown>; retries?: Record<string, unknown>; node?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    node: { workers: 1, drain_timeout_ms: 2000, error_detail: 'full', ...more.node },
    admin: { address: '127.0.0.1:0' },
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        engine: 'strict',
        routes: [{ match: { path_prefix: '/' }, cluster: 'app', ...(more.retries !== undefined ? { retries: more.retries } : {}) }],
      },
    ],
    clusters: [{ name: 'app', protocol: 'http2', endpoints: endpoints.map((address) => ({ address })), ...more.cluster }],
  };
}

interface Summary {
  method: string;
  path: string;
  authority: string;
  scheme: string;
  headers: Record<string, string | string[]>;
  bodyLength: number;
  sha: string;
  trailers: Record<string, string> | null;
}

/** A port with nothing listening. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function patterned(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed) & 0xff;
  return b;
}

describe('HTTP/2 upstream (h2c)', () => {
  let up: H2Upstream;
  let sc: Sidecar;
  beforeAll(async () => {
    up = await startH2Upstream();
    sc = await startSidecar(sidecarConfig([up.address]));
  }, 60_000);
  afterAll(closeAll);

  it('HTTP/1.1 client: method, path, fields (hop-by-hop ones dropped), authority', async () => {
    const r = await httpGet(sc.url('/a/b?q=1&r'), {
      method: 'DELETE',
      headers: { 'x-one': 'v1', connection: 'x-hop', 'x-hop': 'no', te: 'trailers', 'keep-alive': 'timeout=5', cookie: 'a=1' },
    });
    expect(r.status).toBe(200);
    const s = JSON.parse(r.text) as Summary;
    expect(s.method).toBe('DELETE');
    expect(s.path).toBe('/a/b?q=1&r');
    expect(s.scheme).toBe('http');
    expect(s.authority).toBe(`127.0.0.1:${sc.port()}`);
    expect(s.headers['x-one']).toBe('v1');
    expect(s.headers['te']).toBe('trailers');
    expect(s.headers['cookie']).toBe('a=1');
    expect(s.headers['x-forwarded-proto']).toBe('http');
    expect(s.headers['x-request-id']).toBeTypeOf('string');
    for (const gone of ['connection', 'x-hop', 'keep-alive', 'host', 'transfer-encoding']) expect(s.headers[gone]).toBeUndefined();
    expect(r.headers['x-multi']).toBe('a, b');
  });

  it('repeated request fields go as one line each (single-value ones too; cookie joined with "; ")', async () => {
    const head = 'GET /dup HTTP/1.1\r\nhost: t\r\nuser-agent: a\r\nuser-agent: b\r\ncookie: x=1\r\ncookie: y=2\r\nx-list: 1\r\nx-list: 2\r\n\r\n';
    const r = await rawRequest(sc.port(), head, { timeoutMs: 10_000 });
    expect(r.response?.status).toBe(200);
    const s = JSON.parse(r.response!.body.toString()) as Summary;
    expect(s.headers['user-agent']).toBe('a, b');
    expect(s.headers['cookie']).toBe('x=1; y=2');
    expect(s.headers['x-list']).toBe('1, 2');
  });

  it('HTTP/1.1 client: a 10 MiB request body and a 10 MiB response body arrive byte-exact', async () => {
    const body = patterned(10 * 1024 * 1024, 3);
    const r = await httpGet(sc.url('/upload'), { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' }, timeoutMs: 60_000 });
    expect(r.status).toBe(200);
    const s = JSON.parse(r.text) as Summary;
    expect(s.bodyLength).toBe(body.length);
    expect(s.sha).toBe(sha(body));
    const d = await httpGet(sc.url(`/bytes?n=${10 * 1024 * 1024}`), { timeoutMs: 60_000 });
    expect(d.status).toBe(200);
    expect(d.body.length).toBe(10 * 1024 * 1024);
    expect(sha(d.body)).toBe(d.headers['x-sha']);
  }, 90_000);

  it('HTTP/1.1 chunked client: request body unframed upstream with its trailers; response trailers in the last chunk', async () => {
    const req =
      'POST /chunked HTTP/1.1\r\nhost: t\r\nte: trailers\r\ntransfer-encoding: chunked\r\n\r\n' +
      '5\r\nhello\r\n6\r\n world\r\n0\r\nx-req-trailer: yes\r\n\r\n';
    const r = await rawRequest(sc.port(), req, { timeoutMs: 10_000 });
    expect(r.response?.status).toBe(200);
    const text = r.raw.toString('latin1');
    expect(text.toLowerCase()).toContain('transfer-encoding: chunked');
    const s = JSON.parse(r.response!.body.toString()) as Summary;
    expect(s.bodyLength).toBe(11);
    expect(s.sha).toBe(sha(Buffer.from('hello world')));
    expect(s.trailers?.['x-req-trailer']).toBe('yes');
    expect(text).toContain(`x-checksum: ${s.sha}`);
    expect(text).toContain('grpc-status: 0');
  });

  it('h2 client: fields, 10 MiB both ways byte-exact, request and response trailers', async () => {
    const session = await h2connect(`http://127.0.0.1:${sc.port()}`);
    const body = patterned(10 * 1024 * 1024, 9);
    const r = await h2request(session, { ':method': 'PUT', ':path': '/put?x=1', 'x-two': 'v2' }, body, 60_000);
    expect(r.error).toBeNull();
    expect(r.status).toBe(200);
    const s = JSON.parse(r.body.toString()) as Summary;
    expect(s.method).toBe('PUT');
    expect(s.path).toBe('/put?x=1');
    expect(s.headers['x-two']).toBe('v2');
    expect(s.bodyLength).toBe(body.length);
    expect(s.sha).toBe(sha(body));
    expect(r.trailers?.['x-checksum']).toBe(s.sha);
    expect(r.trailers?.['grpc-status']).toBe('0');

    const d = await h2request(session, { ':path': `/bytes?n=${10 * 1024 * 1024}` }, null, 60_000);
    expect(d.status).toBe(200);
    expect(d.body.length).toBe(10 * 1024 * 1024);
    expect(sha(d.body)).toBe(d.headers['x-sha']);

    // Request trailers from an h2 client reach the h2 upstream.
    const withTrailers = await new Promise<Summary>((resolve, reject) => {
      const st = session.request({ ':method': 'POST', ':path': '/trail' }, { waitForTrailers: true });
      const parts: Buffer[] = [];
      st.on('data', (c: Buffer) => parts.push(c));
      st.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString()) as Summary));
      st.on('error', reject);
      st.on('wantTrailers', () => st.sendTrailers({ 'x-end': 'done' }));
      st.end('abc');
    });
    expect(withTrailers.bodyLength).toBe(3);
    expect(withTrailers.trailers?.['x-end']).toBe('done');
    session.close();
  }, 90_000);

  it('many concurrent requests share one session; /clusters counts it', async () => {
    const before = up.sessions;
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => httpGet(sc.url(`/c/${i}`))));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(up.sessions - before).toBeLessThanOrEqual(0); // the session of the earlier tests carries them all
    const c = await clusterView(sc, 'app');
    expect(endpointView(c, up.address).connections_opened_total).toBe(1);
    expect(endpointView(c, up.address).connections_open).toBe(1);
  });
});

describe('HTTP/2 upstream: sessions, GOAWAY, REFUSED_STREAM, failures', () => {
  afterAll(closeAll);

  it("more sessions when the server's max_concurrent_streams is small, never more streams per session than it allows", async () => {
    const up = await startH2Upstream({ maxConcurrentStreams: 2 });
    const sc = await startSidecar(sidecarConfig([up.address], { cluster: { pool: { connections_per_worker: 8 } } }));
    // Open the first session (and read its SETTINGS) before the burst.
    expect((await httpGet(sc.url('/warm'))).status).toBe(200);
    const pending = Array.from({ length: 10 }, (_, i) => httpGet(sc.url(`/hold/${i}`), { timeoutMs: 30_000 }));
    await eventually(() => (up.held.length === 10 ? true : undefined), 'all 10 requests held upstream', 20_000);
    expect(up.sessions).toBe(5);
    expect(up.maxOpenPerSession).toBeLessThanOrEqual(2);
    for (const release of up.held.splice(0)) release();
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual(Array(10).fill(200));
  }, 60_000);

  it('beyond connections_per_worker sessions, requests wait in the bounded queue: 503 overflow past it', async () => {
    const up = await startH2Upstream({ maxConcurrentStreams: 1 });
    const sc = await startSidecar(sidecarConfig([up.address], { cluster: { pool: { connections_per_worker: 2 }, circuit_breaker: { max_pending: 1 } } }));
    expect((await httpGet(sc.url('/warm'))).status).toBe(200);
    const held = [httpGet(sc.url('/hold/1'), { timeoutMs: 30_000 }), httpGet(sc.url('/hold/2'), { timeoutMs: 30_000 })];
    await eventually(() => (up.held.length === 2 ? true : undefined), 'two held', 20_000);
    const queued = httpGet(sc.url('/q'), { timeoutMs: 30_000 });
    await eventually(async () => ((await clusterView(sc, 'app')).pending === 1 ? true : undefined), 'one request queued');
    const over = await httpGet(sc.url('/over'));
    expect(over.status).toBe(503);
    expect(over.error).toBe('overflow');
    for (const release of up.held.splice(0)) release();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expect((await queued).status).toBe(200);
  }, 60_000);

  it('GOAWAY from the server during load: no request fails', async () => {
    const up = await startH2Upstream();
    up.goawayEvery = 37;
    up.trailers = false; // see startH2Upstream: Node 20's server with both would crash this process now and then
    const sc = await startSidecar(sidecarConfig([up.address]));
    let failed = 0;
    let ok = 0;
    let next = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const worker = async (): Promise<void> => {
      while (next < 500) {
        const i = next++;
        const r = await httpGet(sc.url(`/load/${i}`), { agent, timeoutMs: 20_000 }).catch(() => null);
        if (r !== null && r.status === 200) ok++;
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    agent.destroy();
    expect({ ok, failed }).toEqual({ ok: 500, failed: 0 });
    expect(up.sessions).toBeGreaterThan(5);
  }, 120_000);

  it('REFUSED_STREAM: the request is sent again and answered (a POST with a body too)', async () => {
    const up = await startH2Upstream();
    // Each request's first stream is refused. (Refusing every 2nd stream instead let one request
    // of 20 be refused 6 times in a row now and then, past the exchange's 5 resends: a flaky test.)
    // No retry policy: the resend of an unprocessed request is not a configured retry.
    up.refuseFirst = true;
    const sc = await startSidecar(sidecarConfig([up.address]));
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => httpGet(sc.url(`/r/${i}`))));
    expect(rs.map((r) => r.status)).toEqual(Array(20).fill(200));
    const post = await httpGet(sc.url('/post'), { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } });
    expect(post.status).toBe(200);
    expect((JSON.parse(post.text) as Summary).bodyLength).toBe(7);
    expect(up.refused).toBe(21);
  }, 60_000);

  it('an unreachable endpoint: 502 upstream_connect_failed; with connect-failure retries the other endpoint answers', async () => {
    const up = await startH2Upstream();
    const dead = `127.0.0.1:${await closedPort()}`;
    const only = await startSidecar(sidecarConfig([dead]));
    const r = await httpGet(only.url('/x'));
    expect(r.status).toBe(502);
    expect(r.error).toBe('upstream_connect_failed');
    const both = await startSidecar(sidecarConfig([dead, up.address], { retries: { attempts: 2, on: ['connect-failure'] }, cluster: { lb: 'round_robin' } }));
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => httpGet(both.url(`/y/${i}`))));
    expect(rs.map((x) => x.status)).toEqual(Array(6).fill(200));
  }, 60_000);

  it("a slow client: the upstream stream stalls (the server's writes wait for drain) instead of the sidecar buffering", async () => {
    const up = await startH2Upstream();
    const sc = await startSidecar(sidecarConfig([up.address]));
    const total = 64 * 1024 * 1024;
    const socket = net.connect({ host: '127.0.0.1', port: sc.port() });
    track({ close: () => Promise.resolve(void socket.destroy()) });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause(); // read nothing yet
    socket.write(`GET /big?n=${total} HTTP/1.1\r\nhost: t\r\n\r\n`);
    await eventually(() => (up.writesRefused > 0 ? true : undefined), 'the server write returned false', 20_000);
    // Stalled well short of the whole response: what is written sits in bounded windows and buffers.
    const stalledAt = up.bigWritten;
    await new Promise((r) => setTimeout(r, 300));
    expect(up.bigWritten).toBeLessThan(total / 2);
    expect(up.bigWritten - stalledAt).toBeLessThan(total / 4);
    // Reading resumes: the whole response arrives.
    let received = 0;
    const done = new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= total) resolve();
      });
    });
    socket.resume();
    await done;
    expect(up.bigWritten).toBe(total);
    socket.destroy();
  }, 120_000);

  it('health checks of an http2 cluster speak HTTP/2', async () => {
    const up = await startH2Upstream();
    await startSidecar(sidecarConfig([up.address], { cluster: { health_check: { path: '/healthz', interval_ms: 100, timeout_ms: 1000 } } }));
    await eventually(() => (up.health >= 2 ? true : undefined), 'two HTTP/2 health checks', 20_000);
  }, 60_000);
});

describe('HTTP/2 upstream over mTLS (ALPN h2)', () => {
  let ca: Ca;
  let up: H2Upstream;
  beforeAll(async () => {
    ca = await newCa();
    const l = leaf(ca, API);
    up = await startH2Upstream({ tls: { cert: l.certPem, key: l.keyPem, ca: ca.certPem } });
  }, 60_000);
  afterAll(closeAll);

  function mtlsConfig(identity: string): Record<string, unknown> {
    return {
      ...sidecarConfig([up.address], { cluster: { tls: { mode: 'mtls', identity } } }),
      node: { workers: 1, identity: WEB, drain_timeout_ms: 2000, error_detail: 'full' },
      tls: caSource(ca),
    };
  }

  it('the right identity: proxied over h2, with scheme https', async () => {
    const sc = await startSidecar(mtlsConfig(API));
    const r = await httpGet(sc.url('/secure'));
    expect(r.status).toBe(200);
    const s = JSON.parse(r.text) as Summary;
    expect(s.scheme).toBe('https');
    expect(s.path).toBe('/secure');
    const c = await clusterView(sc, 'app');
    expect(endpointView(c, up.address).tls_handshakes_total).toBe(1);
  }, 60_000);

  it('a wrong identity: 502 upstream_identity_mismatch, and no request reached the server', async () => {
    const before = up.streams;
    const sc = await startSidecar(mtlsConfig(spiffe('someone-else')));
    const r = await httpGet(sc.url('/secure'));
    expect(r.status).toBe(502);
    expect(r.error).toBe('upstream_identity_mismatch');
    expect(up.streams).toBe(before);
  }, 60_000);
});

describe('a reload that changes a cluster protocol', () => {
  afterAll(closeAll);

  it('http1 → http2 → http1 on the same endpoint: each request goes out in the protocol of the config it was admitted under, none fails', async () => {
    // One upstream port that speaks both: the HTTP/2 preface goes to node:http2; anything else is
    // answered here as HTTP/1.1, one response per request head (node:http would lose the bytes
    // read to sniff the preface: its parser reads the socket's handle, not the unshifted data).
    const h2 = http2.createServer();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('h2');
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    h2.on('session', (s) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.once('data', (first) => {
        if (first.subarray(0, 3).toString('latin1') === 'PRI') {
          socket.pause();
          socket.unshift(first);
          h2.emit('connection', socket);
          return;
        }
        let pending = first.toString('latin1');
        const answer = (): void => {
          for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
            pending = pending.slice(end + 4);
            socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nh1');
          }
        };
        answer();
        socket.on('data', (more: Buffer) => {
          pending += more.toString('latin1');
          answer();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    track({
      close: async () => {
        for (const s of sessions) s.destroy();
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    });

    const config = (protocol: string): Record<string, unknown> => sidecarConfig([address], { cluster: { protocol } });
    const sc = await startSidecar(config('http1'));
    const body = async (): Promise<string> => {
      const r = await httpGet(sc.url('/which'));
      expect(r.status).toBe(200);
      return r.text;
    };
    expect(await body()).toBe('h1');
    for (const protocol of ['http2', 'http1', 'http2']) {
      const put = await adminCall(sc, 'PUT', '/config', config(protocol));
      expect(put.status, put.text).toBe(200);
      expect(await body()).toBe(protocol === 'http2' ? 'h2' : 'h1');
    }
  }, 60_000);
});

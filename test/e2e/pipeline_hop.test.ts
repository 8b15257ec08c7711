// The hop between two outrigger sidecars over mTLS, pipelined (issue 13): the client sidecar's
// HTTP/1 pool offers ALPN outrigger-h1-pipeline and the server sidecar's strict inbound listener
// selects it. Many requests share a connection and each gets its own answer; a request the app
// holds does not hold up the others; a reload of the server sidecar under pipelined load (POSTs
// with bodies included) loses no request and has the app process no POST twice. The client sidecar
// reads its mTLS connections into one buffer per thread: large bodies streamed at once, and a
// response head spread over three TLS records, arrive byte for byte.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2connect, h2request } from '../h2/h2_client.js';
import {
  adminCall,
  caSource,
  clientSideConfig,
  closeAll,
  endpointCounters,
  httpGet,
  keepAlive,
  newCa,
  serverSideConfig,
  startSidecar,
  startUpstream,
  type Config,
  type HttpAnswer,
  type ReceivedRequest,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

/** Enough connections per worker that without pipelining every concurrent request would have its own. */
const POOL = { connections_per_worker: 256, pipeline_depth: 16 };
/** The narrow client sidecar's pool: GATE requests in flight at once need pipelining over these. */
const NARROW_POOL = { connections_per_worker: 8, pipeline_depth: 16 };
/** The app answers no /gate/... request until this many distinct ones wait at once (more than NARROW_POOL's connections). */
const GATE = NARROW_POOL.connections_per_worker + 1;

let app: Upstream;
/** Requests to /held/... the app keeps unanswered until the test releases them. */
const held: http.ServerResponse[] = [];
/** /gate/... requests waiting at the app, by URL (a GET moved to another connection comes twice); null once GATE of them waited at once. */
let gate: Map<string, Array<() => void>> | null = new Map();
/** The most distinct /gate/... requests that waited at the app at once. */
let gateMost = 0;
let server: Sidecar;
let serverConfig: Config;
let clientConfig: Config;
let client: Sidecar;
let out: number;
/** A client sidecar of NARROW_POOL to the same server sidecar: its outbound port. */
let narrow: Sidecar;
let narrowOut: number;

/** The app: `app <method> <url> <body>` once the body is in; /held/... only when released. */
function appHandler(req: http.IncomingMessage, res: http.ServerResponse, rec: ReceivedRequest): void {
  if (rec.url.startsWith('/held/')) {
    held.push(res);
    return;
  }
  if (rec.url.startsWith('/bighead/')) {
    res.writeHead(200, { 'x-big': bigHeader(Number(rec.url.slice('/bighead/'.length))), 'content-length': 5 });
    res.end('hello');
    return;
  }
  const big = /^\/big\/(\d+)\/(length|chunked)$/.exec(rec.url);
  if (big !== null) {
    streamBig(res, Number(big[1]), big[2] === 'chunked');
    return;
  }
  void rec.settled.then(() => {
    const answer = (): void => {
      const body = `app ${rec.method} ${rec.url} ${rec.body.toString('latin1')}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (!rec.url.startsWith('/gate/') || gate === null) {
      answer();
      return;
    }
    const waiting = gate.get(rec.url) ?? [];
    waiting.push(answer);
    gate.set(rec.url, waiting);
    gateMost = Math.max(gateMost, gate.size);
    if (gate.size < GATE) return;
    const all = [...gate.values()].flat();
    gate = null;
    for (const a of all) a();
  });
}

/** The body of /big/<seed>/...: 64 KiB and 40 000 bytes per seed, pseudo-random from the seed. */
function bigBody(seed: number): Buffer {
  const b = Buffer.allocUnsafe(64 * 1024 + seed * 40_000);
  let x = seed;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A header value of 40 000 characters from the seed: with it a response head spans three TLS records (16 KiB each). */
function bigHeader(seed: number): string {
  return bigBody(seed).toString('base64').slice(0, 40_000);
}

/** GET /bighead/<seed> through both sidecars (a client that takes heads up to 256 KiB): its x-big header and body. */
function getBigHead(seed: number): Promise<{ status: number; header: unknown; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: out, path: `/bighead/${seed}`, maxHeaderSize: 256 * 1024, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, header: res.headers['x-big'], body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('GET /bighead timed out')));
    req.on('error', reject);
  });
}

/**
 * Writes bigBody(seed) in pieces of 1 to ~24 KiB with a turn of the app's event loop between them,
 * so the server sidecar sends the body in many writes (chunked: its framing lines land anywhere in
 * the client sidecar's reads).
 */
function streamBig(res: http.ServerResponse, seed: number, chunked: boolean): void {
  const body = bigBody(seed);
  res.writeHead(200, chunked ? { 'content-type': 'application/octet-stream' } : { 'content-length': body.length });
  let at = 0;
  let step = seed * 7919;
  const next = (): void => {
    if (at >= body.length) {
      res.end();
      return;
    }
    step = (Math.imul(step, 1103515245) + 12345) >>> 0;
    const n = 1 + (step % (24 * 1024));
    res.write(body.subarray(at, at + n));
    at += n;
    setImmediate(next);
  };
  next();
}

beforeAll(async () => {
  const ca = await newCa();
  app = await startUpstream(appHandler);
  serverConfig = serverSideConfig({ tls: caSource(ca), app: app.address, workers: 1 });
  // The app holds some requests on purpose; this file is about the hop, not pipelining to the app
  // (pool.pipeline_plaintext, on by default for a loopback app: test/e2e/pipeline_app).
  (serverConfig['clusters'] as Array<Record<string, unknown>>)[0]!['pool'] = { pipeline_plaintext: false };
  (serverConfig['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = 'strict';
  server = await startSidecar(serverConfig);
  clientConfig = clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}`, workers: 1, pool: POOL });
  // No retries: a reload that rebinds the server's listener hands its socket to the new one, so
  // the client sidecar's new connections queued in it are accepted, not reset (rebind_handover).
  client = await startSidecar(clientConfig);
  out = client.port('outbound');
  narrow = await startSidecar(clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}`, workers: 1, pool: NARROW_POOL }));
  narrowOut = narrow.port('outbound');
});
afterAll(closeAll);

/** A request through both sidecars on `agent` (through the client sidecar listening on `port`). */
function through(path: string, agent: http.Agent, body?: string, port = out): Promise<HttpAnswer> {
  return httpGet(
    { port, path },
    body === undefined ? { agent } : { agent, method: 'POST', body, headers: { 'content-length': String(Buffer.byteLength(body)) } },
  );
}

describe('pipelined hop between two sidecars', () => {
  it('200 concurrent requests with distinct ids are each answered correctly, more of them in flight at once than the client sidecar has connections', async () => {
    // The app answers none until GATE (9) distinct ones wait at once, and the narrow client sidecar
    // may open 8 connections: one request per connection would leave every request waiting until
    // it timed out (checked with pipeline_depth 1). A quarter are POSTs with bodies, framed between
    // the GETs on the same connections.
    const before = await endpointCounters(narrow, 'api');
    const agent = keepAlive(200);
    const path = (i: number): string => `/gate/${i}`;
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => through(path(i), agent, i % 4 === 0 ? `body-${i}` : undefined, narrowOut)));
    agent.destroy();
    expect(answers.map((a) => [a.status, a.text])).toEqual(answers.map((_, i) => [200, i % 4 === 0 ? `app POST ${path(i)} body-${i}` : `app GET ${path(i)} `]));
    expect(gateMost).toBe(GATE);
    const after = await endpointCounters(narrow, 'api');
    expect(after.connectionsOpened - before.connectionsOpened).toBeLessThanOrEqual(NARROW_POOL.connections_per_worker);
  });

  it('large responses streamed at once over the hop, chunked and with a length, arrive byte for byte', async () => {
    // The client sidecar reads its mTLS connections into one buffer per thread (user_buffer.ts):
    // what outlives a read (a split head or chunk-size line, a body piece the client has not
    // taken) must be copied before the next read of any connection overwrites it.
    const agent = keepAlive(24);
    const seeds = Array.from({ length: 24 }, (_, i) => i + 1);
    const answers = await Promise.all(seeds.map((seed) => through(`/big/${seed}/${seed % 2 === 0 ? 'chunked' : 'length'}`, agent)));
    agent.destroy();
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const expected = seeds.map((seed) => bigBody(seed));
    expect(answers.map((a) => [a.status, a.body.length, digest(a.body)])).toEqual(expected.map((b) => [200, b.length, digest(b)]));
  });

  it('a response head larger than a TLS record, which the client sidecar reads in pieces, arrives whole', async () => {
    // Each TLS record is a read into the same buffer: the head's first pieces must be copied
    // before the next record's read overwrites them (response_parser.ts, headParts).
    const seeds = [1, 2, 3, 4, 5, 6];
    const answers = await Promise.all(seeds.map(getBigHead));
    expect(answers).toEqual(seeds.map((seed) => ({ status: 200, header: bigHeader(seed), body: 'hello' })));
  });

  it('head of line: while the app holds one request, 100 concurrent fast ones all complete', async () => {
    // Settle the pool's recent response time on single requests first.
    const warm = keepAlive(1);
    for (let i = 0; i < 30; i++) expect((await through(`/v1/warm/${i}`, warm)).status).toBe(200);
    warm.destroy();
    const slowAgent = keepAlive(1);
    const slow = through('/held/slow', slowAgent);
    await expect.poll(() => held.length).toBe(1);
    const agent = keepAlive(100);
    const fast = await Promise.all(Array.from({ length: 100 }, (_, i) => through(`/v1/fast/${i}`, agent)));
    agent.destroy();
    expect(fast.filter((a) => a.status === 200 && a.text === `app GET ${a.text.split(' ')[2]} `).length).toBe(100);
    expect(held.length).toBe(1); // still held: every fast request completed without it
    held.pop()!.end('slow done');
    expect((await slow).text).toBe('slow done');
    slowAgent.destroy();
  });

  it('head of line within one loop turn: GETs written behind a held request go again on another connection and are answered; a POST behind it waits for it', async () => {
    // A fresh client sidecar: its first request opens a connection and the others of the turn join
    // it while it connects, so all eight are written on it in order (held, 6 GETs, the POST).
    const fresh = await startSidecar(clientConfig);
    const session = await h2connect(`http://127.0.0.1:${fresh.port('outbound')}`);
    const slow = h2request(session, { ':path': '/held/turn' });
    const gets = Array.from({ length: 6 }, (_, i) => h2request(session, { ':path': `/v1/turn/${i}` }));
    let postDone = false;
    const post = h2request(session, { ':method': 'POST', ':path': '/v1/turn/post' }, 'p').then((a) => {
      postDone = true;
      return a;
    });
    const answers = await Promise.all(gets);
    expect(answers.map((a) => [a.status, a.body.toString()])).toEqual(Array.from({ length: 6 }, (_, i) => [200, `app GET /v1/turn/${i} `]));
    // They had been written behind the held one: the server sidecar passed each to the app then, and again when sent again.
    expect(Array.from({ length: 6 }, (_, i) => app.requests.filter((r) => r.url === `/v1/turn/${i}`).length)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(postDone).toBe(false);
    expect(held.length).toBe(1);
    expect((await endpointCounters(fresh, 'api')).pipelinedMoved).toBe(6);
    held.pop()!.end('slow done');
    expect((await slow).body.toString()).toBe('slow done');
    expect((await post).body.toString()).toBe('app POST /v1/turn/post p');
    expect(app.requests.filter((r) => r.url === '/v1/turn/post').length).toBe(1);
    session.close();
  });

  for (const engine of ['uws', 'strict'] as const) {
    it(`${engine} client listener: after a POST whose body fills the hop's socket, the next request on the same client connection is read and answered`, async () => {
      // The last body write fills the socket and pauses the client's reading until it drains; the
      // pipeline told only a request still being written of the drain, so the client connection
      // stayed paused and its next request was never read (uws: stuck until the client gave up).
      const cfg = structuredClone(clientConfig);
      (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = engine;
      const sc = await startSidecar(cfg);
      const agent = keepAlive(1);
      const body = 'b'.repeat(256 * 1024);
      const post = await httpGet(
        { port: sc.port('outbound'), path: '/v1/post-big' },
        { agent, method: 'POST', body, headers: { 'content-length': String(body.length) } },
      );
      expect([post.status, post.text.length]).toEqual([200, `app POST /v1/post-big `.length + body.length]);
      const next = await httpGet({ port: sc.port('outbound'), path: '/v1/after-post' }, { agent, timeoutMs: 5000 });
      expect([next.status, next.text]).toEqual([200, 'app GET /v1/after-post ']);
      agent.destroy();
    });
  }

  it('a reload of the server sidecar under pipelined load (POSTs included) drops no request and processes no POST twice', async () => {
    const agent = keepAlive(40);
    let stop = false;
    let n = 0;
    const failures: string[] = [];
    const loop = async (): Promise<void> => {
      while (!stop) {
        const i = n++;
        const post = i % 2 === 0;
        try {
          const a = await through(`/v1/reload/${i}`, agent, post ? `payload-${i}` : undefined);
          const want = post ? `app POST /v1/reload/${i} payload-${i}` : `app GET /v1/reload/${i} `;
          if (a.status !== 200 || a.text !== want) failures.push(`${i}: ${a.status} ${a.error ?? ''} ${a.text.slice(0, 100)}`);
        } catch (e) {
          failures.push(`${i}: ${(e as Error).message}`);
        }
      }
    };
    const loops = Array.from({ length: 40 }, loop);
    // Each reload rebinds the inbound listener (protocol http1 ⇄ auto): the old one drains its
    // connections, answering the last request it took with Connection: close.
    for (let r = 0; r < 6; r++) {
      const target = n + 200;
      await expect.poll(() => n >= target, { timeout: 20_000 }).toBe(true);
      const listener = (serverConfig['listeners'] as Array<Record<string, unknown>>)[0]!;
      listener['protocol'] = r % 2 === 0 ? 'http1' : 'auto';
      const put = await adminCall(server, 'PUT', '/config', serverConfig);
      expect(put.status).toBe(200);
    }
    const target = n + 200;
    await expect.poll(() => n >= target, { timeout: 20_000 }).toBe(true);
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    expect(failures).toEqual([]);
    const posts = new Map<string, number>();
    for (const rec of app.requests) if (rec.method === 'POST' && rec.url.startsWith('/v1/reload/')) posts.set(rec.url, (posts.get(rec.url) ?? 0) + 1);
    expect([...posts.values()].filter((c) => c > 1)).toEqual([]);
    expect(posts.size).toBe(Math.ceil(n / 2));
  });
});

// Pipelined HTTP/1.1 between outrigger sidecars (ALPN PIPELINE_ALPN, src/net/alpn.ts) on the
// strict engine's mTLS listener, through a real sidecar: the requests of one connection reach the
// app at the same time and their responses come back in request order; a stop (Connection:
// close, a reload that retires the listener, a refused head) answers every request handed over,
// the last with Connection: close, and nothing written after it reaches the app. Without the
// ALPN (plain TLS, plaintext, the node engine) pipelined bytes are served one at a time as before.

import { once } from 'node:events';
import type http from 'node:http';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_IN_FLIGHT } from '../../src/dataplane/h1/response_order.js';
import { PIPELINE_ALPN } from '../../src/net/alpn.js';
import type { Ca } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  closeAll,
  header,
  leaf,
  newCa,
  RawClient,
  rewriteConfig,
  startSidecar,
  startUpstream,
  WEB,
  type RawResponse,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

/**
 * The app: `/auto/...` is answered 10 ms after it arrives (with its path as the body), anything
 * else waits for answer(). It counts the requests it holds at once.
 */
class App {
  readonly seen: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly waiting = new Map<string, http.ServerResponse>();

  readonly handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '';
    this.seen.push(url);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.on('close', () => this.inFlight--);
    if (url.startsWith('/auto/')) setTimeout(() => send(res, Buffer.from(url)), 10);
    else this.waiting.set(url, res);
  };

  waitingFor(prefix: string): number {
    return [...this.waiting.keys()].filter((u) => u.startsWith(prefix)).length;
  }

  answer(url: string, body: Buffer = Buffer.from(url)): void {
    const res = this.waiting.get(url);
    if (res === undefined) throw new Error(`the app holds no request for ${url}`);
    this.waiting.delete(url);
    send(res, body);
  }

  resetCounts(): void {
    this.maxInFlight = this.inFlight;
  }
}

/** An app that fails: `/flaky/reset/...` resets before answering, `/flaky/cut/...` after its head and 10 of 1000 body bytes. */
function flaky(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url?.startsWith('/flaky/cut/') === true) {
    res.writeHead(200, { 'content-length': 1000 });
    res.write('0123456789', () => res.socket?.destroy());
  } else {
    req.socket.destroy();
  }
}

function send(res: http.ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
}

let ca: Ca;
let app: App;
let upstream: Upstream;
let failing: Upstream;
let sc: Sidecar;
const routes = [
  { match: { path_prefix: '/flaky/' }, cluster: 'flaky', timeout_ms: 30_000 },
  { match: { path_prefix: '/' }, cluster: 'app', timeout_ms: 30_000 },
];
const authorization = [{ from: [WEB] }];

function config(withMain: boolean): Record<string, unknown> {
  const listeners = [
    { name: 'main', address: '127.0.0.1:0', engine: 'strict', tls: { mode: 'mtls' }, authorization, routes },
    { name: 'server-tls', address: '127.0.0.1:0', engine: 'strict', tls: { mode: 'tls' }, routes },
    { name: 'plain', address: '127.0.0.1:0', engine: 'strict', routes },
    { name: 'node-mtls', address: '127.0.0.1:0', engine: 'node', tls: { mode: 'mtls' }, authorization, routes },
  ];
  return {
    node: { workers: 1, identity: API },
    tls: caSource(ca),
    listeners: withMain ? listeners : listeners.slice(1),
    clusters: [
      // The app holds requests on purpose: pipelined to it (the loopback default), GETs held behind
      // others past 100 ms would be sent again and counted twice. This file is about the listener.
      { name: 'app', endpoints: [{ address: upstream.address }], pool: { pipeline_plaintext: false } },
      { name: 'flaky', endpoints: [{ address: failing.address }] },
    ],
  };
}

beforeAll(async () => {
  ca = await newCa();
  app = new App();
  upstream = await startUpstream(app.handler);
  failing = await startUpstream(flaky);
  sc = await startSidecar(config(true), { workers: 1 });
});

afterAll(async () => {
  await sc?.stop();
  await closeAll();
});

/** A TLS connection to `listener` presenting WEB's certificate (when `mtls`), offering `alpn`. */
async function connect(listener: string, alpn: string[] | null, mtls = true): Promise<{ client: RawClient; alpn: string | false | null }> {
  const web = leaf(ca, WEB);
  const socket = tls.connect({
    host: '127.0.0.1',
    port: sc.port(listener),
    ca: ca.certPem,
    ...(mtls ? { cert: web.certPem, key: web.keyPem } : {}),
    checkServerIdentity: () => undefined,
    ...(alpn !== null ? { ALPNProtocols: alpn } : {}),
  });
  await once(socket, 'secureConnect');
  return { client: RawClient.over(socket), alpn: socket.alpnProtocol };
}

async function pipelined(): Promise<RawClient> {
  const c = await connect('main', [PIPELINE_ALPN, 'http/1.1']);
  expect(c.alpn).toBe(PIPELINE_ALPN);
  return c.client;
}

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nhost: app\r\n${extra}\r\n`;

async function readAll(client: RawClient, n: number): Promise<RawResponse[]> {
  const out: RawResponse[] = [];
  for (let i = 0; i < n; i++) out.push(await client.readResponse({ timeoutMs: 10_000 }));
  return out;
}

const bodies = (rs: readonly RawResponse[]): string[] => rs.map((r) => r.body.toString('latin1'));
const closes = (rs: readonly RawResponse[]): boolean[] => rs.map((r) => header(r, 'connection') === 'close');

describe('ALPN: pipelining is chosen only on a strict mTLS listener', () => {
  it('the strict mTLS listener chooses PIPELINE_ALPN before h2 and http/1.1, and h2 without it', async () => {
    expect((await connect('main', ['h2', 'http/1.1', PIPELINE_ALPN])).alpn).toBe(PIPELINE_ALPN);
    expect((await connect('main', ['h2', 'http/1.1'])).alpn).toBe('h2');
    expect((await connect('main', ['http/1.1'])).alpn).toBe('http/1.1');
  });

  it('a TLS listener without client certificates and the node engine never choose it', async () => {
    expect((await connect('server-tls', [PIPELINE_ALPN, 'http/1.1'], false)).alpn).toBe('http/1.1');
    expect((await connect('node-mtls', [PIPELINE_ALPN, 'http/1.1'])).alpn).toBe('http/1.1');
  });
});

describe('a pipelined connection', () => {
  it('hands every request to the app at once; answered last-first, the responses still come back in request order', async () => {
    const client = await pipelined();
    const n = 8;
    const paths = Array.from({ length: n }, (_, i) => `/rev/${i}`);
    client.send(paths.map((p) => get(p)).join(''));
    // One request at a time (before pipelining), the app never holds all eight: this poll fails.
    await expect.poll(() => app.waitingFor('/rev/'), { timeout: 10_000 }).toBe(n);
    for (const p of [...paths].reverse()) app.answer(p);
    const rs = await readAll(client, n);
    expect(rs.map((r) => r.status)).toEqual(Array<number>(n).fill(200));
    expect(bodies(rs)).toEqual(paths);
    expect(closes(rs)).toEqual(Array<boolean>(n).fill(false));
    client.close();
  });

  it(`has at most ${MAX_IN_FLIGHT} requests in flight: the rest wait unread until one is answered`, async () => {
    const client = await pipelined();
    const paths = Array.from({ length: MAX_IN_FLIGHT + 8 }, (_, i) => `/bound/${i}`);
    client.send(paths.map((p) => get(p)).join(''));
    await expect.poll(() => app.waitingFor('/bound/'), { timeout: 10_000 }).toBe(MAX_IN_FLIGHT);
    expect(app.seen.filter((u) => u.startsWith('/bound/'))).toEqual(paths.slice(0, MAX_IN_FLIGHT));
    app.answer(paths[0]!);
    await expect.poll(() => app.seen.filter((u) => u.startsWith('/bound/')).length, { timeout: 10_000 }).toBe(MAX_IN_FLIGHT + 1);
    for (const p of paths.slice(1, MAX_IN_FLIGHT + 1)) app.answer(p);
    await expect.poll(() => app.waitingFor('/bound/'), { timeout: 10_000 }).toBe(7);
    for (const p of paths.slice(MAX_IN_FLIGHT + 1)) app.answer(p);
    expect(bodies(await readAll(client, paths.length))).toEqual(paths);
    client.close();
  });

  it('holds the responses behind a slow one (past 64 KiB each, the apps wait) and sends them in order once it completes', async () => {
    const client = await pipelined();
    const big = (c: string): Buffer => Buffer.alloc(300 * 1024, c);
    client.send(get('/slow/0') + get('/big/1') + get('/big/2'));
    await expect.poll(() => app.waitingFor('/slow/') + app.waitingFor('/big/'), { timeout: 10_000 }).toBe(3);
    app.answer('/big/2', big('b'));
    app.answer('/big/1', big('a'));
    expect(client.pending.length).toBe(0); // nothing may pass the slow response
    app.answer('/slow/0');
    const rs = await readAll(client, 3);
    expect(rs[0]!.body.toString()).toBe('/slow/0');
    expect(rs[1]!.body.equals(big('a'))).toBe(true);
    expect(rs[2]!.body.equals(big('b'))).toBe(true);
    // The connection carries on.
    client.send(get('/auto/after-slow'));
    expect(bodies(await readAll(client, 1))).toEqual(['/auto/after-slow']);
    client.close();
  });

  it('stops at a request with Connection: close: that response is the last, says close, and nothing after it reaches the app', async () => {
    const client = await pipelined();
    client.send(get('/auto/c0') + get('/auto/c1') + get('/auto/c2', 'connection: close\r\n') + get('/auto/c3') + get('/auto/c4'));
    const rs = await readAll(client, 3);
    expect(bodies(rs)).toEqual(['/auto/c0', '/auto/c1', '/auto/c2']);
    expect(closes(rs)).toEqual([false, false, true]);
    expect(await client.waitClosed()).toBe(true);
    expect(client.pending.length).toBe(0);
    expect(app.seen.filter((u) => u.startsWith('/auto/c'))).toEqual(['/auto/c0', '/auto/c1', '/auto/c2']);
  });

  it.each([
    ['Content-Length and Transfer-Encoding', 'POST /auto/s1 HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'POST /auto/s1 HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!'],
    ['a bare LF in the head', 'GET /auto/s1 HTTP/1.1\nhost: app\r\n\r\n'],
  ])('refuses a smuggling attempt (%s) exactly as a plain connection does, after answering the request before it', async (_name, attempt) => {
    const bytes = get('/auto/s0') + attempt + get('/auto/s2');
    const outcome = async (client: RawClient): Promise<{ statuses: number[]; closes: boolean[]; closed: boolean; seen: string[] }> => {
      const from = app.seen.length;
      client.send(bytes);
      const rs = await readAll(client, 2);
      const closed = await client.waitClosed();
      return { statuses: rs.map((r) => r.status), closes: closes(rs), closed, seen: app.seen.slice(from) };
    };
    const piped = await outcome(await pipelined());
    const plain = await outcome((await connect('main', null)).client);
    expect(piped).toEqual({ statuses: [200, 400], closes: [false, true], closed: true, seen: ['/auto/s0'] });
    expect(piped).toEqual(plain);
  });
});

describe('a pipelined request whose response fails', () => {
  it('before its head: a local reply in its turn, and the connection carries on', async () => {
    const client = await pipelined();
    client.send(get('/auto/b0') + get('/flaky/reset/b1') + get('/auto/b2'));
    const rs = await readAll(client, 3);
    expect(rs.map((r) => r.status)).toEqual([200, 502, 200]);
    expect([bodies(rs)[0], bodies(rs)[2]]).toEqual(['/auto/b0', '/auto/b2']);
    expect(closes(rs)).toEqual([false, false, false]);
    client.send(get('/auto/b3'));
    expect(bodies(await readAll(client, 1))).toEqual(['/auto/b3']);
    client.close();
  });

  it('after its head, behind a slow response: the slow one is sent whole, then the cut one as far as it got, then the connection closes', async () => {
    const client = await pipelined();
    client.send(get('/slow/a0') + get('/flaky/cut/a1') + get('/auto/a2'));
    await expect.poll(() => app.waitingFor('/slow/a0'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => failing.requests.some((r) => r.url === '/flaky/cut/a1'), { timeout: 10_000 }).toBe(true);
    app.answer('/slow/a0');
    expect(bodies(await readAll(client, 1))).toEqual(['/slow/a0']);
    expect(await client.waitClosed()).toBe(true);
    const rest = client.pending.toString('latin1');
    expect(rest).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(rest.endsWith('\r\n\r\n0123456789')).toBe(true);
  });
});

describe('without the ALPN, pipelined bytes are served as before', () => {
  /** Four GETs written at once are answered in order, the app never holding two at a time. */
  async function expectOneAtATime(client: RawClient, tag: string): Promise<void> {
    app.resetCounts();
    const paths = Array.from({ length: 4 }, (_, i) => `/auto/one-${tag}-${i}`);
    client.send(paths.map((p) => get(p)).join(''));
    expect(bodies(await readAll(client, 4))).toEqual(paths);
    expect(app.maxInFlight).toBe(1);
    client.close();
  }

  it('a strict mTLS listener, to a TLS client that does not offer it: one at a time', async () => {
    const { client } = await connect('main', null);
    await expectOneAtATime(client, 'tls');
  });

  it('a strict plaintext listener: one at a time', async () => {
    await expectOneAtATime(await RawClient.connect(sc.port('plain')), 'plain');
  });

  it('the node engine, to a client offering it: node:http serves them (its own pipelining), in order', async () => {
    const { client, alpn } = await connect('node-mtls', [PIPELINE_ALPN, 'http/1.1']);
    expect(alpn).toBe('http/1.1');
    const paths = Array.from({ length: 4 }, (_, i) => `/auto/one-node-${i}`);
    client.send(paths.map((p) => get(p)).join(''));
    expect(bodies(await readAll(client, 4))).toEqual(paths);
    client.close();
  });
});

describe('a reload that retires the listener (its connections drain)', () => {
  it('answers every request handed over, the last with Connection: close; what the client writes after the drain never reaches the app', async () => {
    const client = await pipelined();
    const paths = Array.from({ length: 4 }, (_, i) => `/held/${i}`);
    client.send(paths.map((p) => get(p)).join(''));
    await expect.poll(() => app.waitingFor('/held/'), { timeout: 10_000 }).toBe(4);
    rewriteConfig(sc, config(false));
    await sc.waitForLog((e) => e.msg === 'config reloaded' && e['version'] === 2);
    client.send(get('/held/late-1') + get('/held/late-2'));
    for (const p of paths) app.answer(p);
    const rs = await readAll(client, 4);
    expect(bodies(rs)).toEqual(paths);
    expect(closes(rs)).toEqual([false, false, false, true]);
    expect(await client.waitClosed()).toBe(true);
    expect(client.pending.length).toBe(0);
    expect(app.seen.filter((u) => u.startsWith('/held/'))).toEqual(paths);
  });
});

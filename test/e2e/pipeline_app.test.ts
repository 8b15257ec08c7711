// Pipelining from a sidecar to its plaintext app (pool.pipeline_plaintext, on by default for an app on
// loopback), through a real 1-worker
// sidecar to Node's own HTTP server, which takes pipelined requests. The app records, per
// connection, the requests it has not answered yet: GETs arrive behind one another, a POST never
// arrives while another request on its connection is unanswered nor has one arrive behind it,
// every answer is the right one, and an app that closes each connection after its 3rd answer
// (`Connection: close`) costs the clients nothing. Apps that keep closing pipelined connections
// (uWS.js answering asynchronously, Python's http.server speaking HTTP/1.0) stop the pipelining
// to them (GET /clusters counts it); Python's speaking HTTP/1.1 takes pipelined requests.
//
// A burst of requests the sidecar handles in one event-loop turn comes from one HTTP/2 client
// (its streams' HEADERS leave in one write): the first request opens a connection to the app and
// the others join it while it connects. That is what makes the pipelining here certain rather
// than a matter of timing.

import http from 'node:http';
import net from 'node:net';
import uWS from 'uWebSockets.js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeAll,
  endpointCounters,
  h2Burst,
  httpGet,
  keepAlive,
  listenTracked,
  proxyConfig,
  startPythonApp,
  startSidecar,
  track,
  type Sidecar,
} from '../helpers/sidecar.js';
import { h2connect, h2request } from '../h2/h2_client.js';

afterEach(closeAll);

interface AppSeen {
  /** Requests that arrived while an earlier one on their connection was unanswered. */
  behind: number;
  /** Requests whose arrival broke the rule: a POST with another unanswered, or anything behind an unanswered POST. */
  violations: string[];
  /** Requests received on each connection. */
  perSocket: Map<net.Socket, number>;
}

/** Listens on 127.0.0.1:0, tracked by closeAll() with the connections it has open (listenTracked); the port. */
async function listenApp(server: http.Server): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const address = await listenTracked(server, sockets);
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/**
 * Node's HTTP server as the app: answers `<method> <url> <body>` after a turn (so that requests
 * on a connection overlap when they are pipelined); with `closeEvery`, that answer on a
 * connection says `Connection: close` (Node then closes it, and drops the answers to requests it
 * had read behind it).
 */
async function startApp(closeEvery = 0): Promise<{ port: number; seen: AppSeen }> {
  const seen: AppSeen = { behind: 0, violations: [], perSocket: new Map() };
  const open = new Map<net.Socket, string[]>();
  const server = http.createServer((req, res) => {
    const socket = req.socket;
    const mine = `${req.method} ${req.url}`;
    const pending = open.get(socket) ?? [];
    open.set(socket, pending);
    const nth = (seen.perSocket.get(socket) ?? 0) + 1;
    seen.perSocket.set(socket, nth);
    if (pending.length > 0) {
      seen.behind++;
      const shares = (r: string): boolean => r.startsWith('GET ') || r.startsWith('HEAD ');
      if (!shares(mine) || !pending.every(shares)) seen.violations.push(`${mine} behind ${pending.join(', ')}`);
    }
    pending.push(mine);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      setImmediate(() => {
        const body = `${mine} ${Buffer.concat(chunks).toString()}`;
        const close = closeEvery > 0 && nth === closeEvery ? { connection: 'close' } : {};
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...close });
        res.end(body, () => pending.splice(pending.indexOf(mine), 1));
      }),
    );
  });
  return { port: await listenApp(server), seen };
}

async function sidecarFor(appPort: number, pool: Record<string, unknown>): Promise<Sidecar> {
  return startSidecar(proxyConfig([`127.0.0.1:${appPort}`], { pool }));
}

/**
 * `n` GETs (/g/0 …) in one burst through a sidecar with pipeline_plaintext to an app that closes
 * each connection after its `closeEvery`-th answer; every client gets its own 200. The app's view.
 */
async function getBurstAnswered(closeEvery: number, n: number): Promise<AppSeen> {
  const app = await startApp(closeEvery);
  const sc = await sidecarFor(app.port, { pipeline_plaintext: true });
  const { paths, bodies } = await getBurst(sc, 'g', n);
  expect(bodies).toEqual(paths.map((p) => `GET ${p} `));
  return app.seen;
}

/** `n` GETs /name/0 … in one burst (h2Burst) through `sc`, each answered 200; their paths and answers' bodies. */
async function getBurst(sc: Sidecar, name: string, n = 8): Promise<{ paths: string[]; bodies: string[] }> {
  const paths = Array.from({ length: n }, (_, i) => `/${name}/${i}`);
  const answers = await h2Burst(
    sc.port(),
    paths.map((p) => ['GET', p] as const),
  );
  expect(answers.map((a) => a.status)).toEqual(paths.map(() => 200));
  return { paths, bodies: answers.map((a) => a.body) };
}

describe('pipeline_plaintext to Node’s HTTP server', () => {
  it('a burst of 12 GETs and HEADs in one loop turn reaches the app on one connection, each answered with its own response', async () => {
    const app = await startApp();
    const sc = await sidecarFor(app.port, { pipeline_plaintext: true });
    const reqs = Array.from({ length: 12 }, (_, i) => [i % 4 === 1 ? 'HEAD' : 'GET', `/g/${i}`] as const);
    const answers = await h2Burst(sc.port(), reqs);
    // A HEAD's answer has the GET's head and no body; the response after it is read whole all the same.
    expect(answers).toEqual(reqs.map(([m, p]) => ({ status: 200, body: m === 'HEAD' ? '' : `GET ${p} ` })));
    expect([...app.seen.perSocket.values()]).toEqual([12]);
    expect(app.seen.behind).toBeGreaterThan(0); // Node's server saw requests behind unanswered ones: pipelined
    expect(app.seen.violations).toEqual([]);
  });

  it('by default (loopback) the app on 127.0.0.1 gets the burst pipelined; with pipeline_plaintext: false a connection per request', async () => {
    const app = await startApp();
    const byDefault = await sidecarFor(app.port, {});
    await getBurst(byDefault, 'd', 6);
    expect(app.seen.behind).toBeGreaterThan(0);
    expect(app.seen.perSocket.size).toBeLessThan(6);
    app.seen.behind = 0;
    app.seen.perSocket.clear();
    const sc = await sidecarFor(app.port, { pipeline_plaintext: false });
    await getBurst(sc, 'g', 6);
    expect(app.seen.behind).toBe(0);
    expect(app.seen.perSocket.size).toBe(6);
  });

  it('POSTs with bodies in the burst go alone: never behind another request, nothing behind them', async () => {
    const app = await startApp();
    const sc = await sidecarFor(app.port, { pipeline_plaintext: true });
    const reqs = Array.from({ length: 12 }, (_, i) => (i % 4 === 2 ? (['POST', `/p/${i}`, `body-${i}`] as const) : (['GET', `/g/${i}`] as const)));
    const answers = await h2Burst(sc.port(), reqs);
    expect(answers).toEqual(reqs.map(([m, p, b]) => ({ status: 200, body: `${m} ${p} ${b ?? ''}` })));
    expect(app.seen.violations).toEqual([]);
    expect(app.seen.behind).toBeGreaterThan(0);
  });

  it('an app that closes each connection after its 3rd answer (Connection: close): the GETs behind it are sent again, every client gets its answer', async () => {
    const seen = await getBurstAnswered(3, 10);
    // Node read (and ran) the 7 requests behind the first close too; the sidecar sent them again.
    expect([...seen.perSocket.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
    expect(seen.perSocket.size).toBeGreaterThan(1);
  });

  it('an app that closes after every answer (HTTP/1.0 style): each GET of the burst behind the first is sent again once, alone, and answered', async () => {
    const seen = await getBurstAnswered(1, 10);
    // The first connection carried the burst (the app may close it before it reads past the first
    // request); each of the 9 resends had a connection of its own.
    expect(seen.perSocket.size).toBe(10);
  });

  it('an app that closes a connection on pipelined requests without answering (uWS.js 20.30 answering after a timer): every GET is sent again alone and answered; after 3 such connections pipelining to it stops (GET /clusters)', async () => {
    uWS._cfg('silent');
    const app = uWS.App().get('/*', (res, req) => {
      const url = req.getUrl();
      let aborted = false;
      res.onAborted(() => (aborted = true));
      setTimeout(() => {
        if (!aborted) res.cork(() => res.end(`uws ${url}`));
      }, 2);
    });
    const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (ls) => (ls === false ? reject(new Error('uWS did not listen')) : resolve(ls))),
    );
    track({
      close: () => {
        uWS.us_listen_socket_close(listen);
        return Promise.resolve();
      },
    });
    const sc = await sidecarFor(uWS.us_socket_local_port(listen), { pipeline_plaintext: true });
    const uwsBurst = async (name: string): Promise<void> => {
      const { paths, bodies } = await getBurst(sc, name);
      expect(bodies).toEqual(paths.map((p) => `uws ${p}`));
    };
    await uwsBurst('b0');
    // uWS closed the burst's connection unanswered; the resends went on connections of their own.
    const first = await endpointCounters(sc, 'app');
    expect(first.connectionsOpened).toBeGreaterThan(1);
    expect(first.pipeliningStops).toBe(0);
    // Each burst pipelines on new or idle connections (from its 5th request on, joining an open
    // write comes first) and uWS closes those: within a few bursts, three in a row.
    let bursts = 1;
    while ((await endpointCounters(sc, 'app')).pipeliningStops === 0 && bursts < 6) await uwsBurst(`b${bursts++}`);
    const stopped = await endpointCounters(sc, 'app');
    expect(stopped).toMatchObject({ pipeliningStops: 1, pipeliningOffWorkers: 1 });
    // Stopped: the next bursts are answered, and pipelining does not stop again.
    await uwsBurst('after1');
    await uwsBurst('after2');
    expect(await endpointCounters(sc, 'app')).toMatchObject({ pipeliningStops: 1, pipeliningOffWorkers: 1 });
  });

  it('mixed HTTP/1.1 load, 30 keep-alive clients × 20 requests, every 5th a POST with a body: every answer right, no POST shares a connection', async () => {
    const app = await startApp();
    const sc = await sidecarFor(app.port, { pipeline_plaintext: true, connections_per_worker: 4 });
    const agent = keepAlive(30);
    const lane = async (k: number): Promise<string[]> => {
      const wrong: string[] = [];
      for (let i = 0; i < 20; i++) {
        const post = i % 5 === 4;
        const path = `/m/${k}/${i}`;
        const a = await httpGet(sc.url(path), { agent, ...(post ? { method: 'POST', body: `b-${k}-${i}` } : {}) });
        const want = post ? `POST ${path} b-${k}-${i}` : `GET ${path} `;
        if (a.status !== 200 || a.text !== want) wrong.push(`${path}: ${a.status} ${a.text}`);
      }
      return wrong;
    };
    const wrong = (await Promise.all(Array.from({ length: 30 }, (_, k) => lane(k)))).flat();
    expect(wrong).toEqual([]);
    expect([...app.seen.perSocket.values()].reduce((a, b) => a + b, 0)).toBe(600);
    expect(app.seen.behind).toBeGreaterThan(0); // 30 clients on 4 connections: GETs did share them (~380 of 600 here)
    expect(app.seen.violations).toEqual([]);
  });
});

describe('pipeline_plaintext to Python’s http.server', () => {
  /** `n` GETs in one burst; each answer must be its own. The app's client port of each. */
  const pyBurst = async (sc: Sidecar, name: string, n = 8): Promise<string[]> => {
    const { paths, bodies } = await getBurst(sc, name, n);
    expect(bodies.map((b) => b.split(' ').slice(0, 2).join(' '))).toEqual(paths.map((p) => `py ${p}`));
    return bodies.map((b) => b.split(' ')[2]!);
  };

  it('HTTP/1.1 (keep-alive): a burst of 12 GETs is answered in order on one connection', async () => {
    const sc = await sidecarFor(await startPythonApp('HTTP/1.1'), { pipeline_plaintext: true });
    const ports = await pyBurst(sc, 'g', 12);
    expect(new Set(ports).size).toBe(1);
    expect(await endpointCounters(sc, 'app')).toMatchObject({ connectionsOpened: 1, pipeliningStops: 0 });
  });

  it('HTTP/1.0 (the module’s default: it closes after every answer): every GET is answered; the third burst stops pipelining to it', async () => {
    const sc = await sidecarFor(await startPythonApp('HTTP/1.0'), { pipeline_plaintext: true });
    for (const name of ['b1', 'b2']) {
      await pyBurst(sc, name);
      expect(await endpointCounters(sc, 'app')).toMatchObject({ pipeliningStops: 0, pipeliningOffWorkers: 0 });
    }
    await pyBurst(sc, 'b3');
    expect(await endpointCounters(sc, 'app')).toMatchObject({ pipeliningStops: 1, pipeliningOffWorkers: 1 });
    // Stopped: each GET takes a connection of its own, as without pipeline_plaintext.
    const ports = await pyBurst(sc, 'after');
    expect(new Set(ports).size).toBe(8);
    expect(await endpointCounters(sc, 'app')).toMatchObject({ pipeliningStops: 1, pipeliningOffWorkers: 1 });
  });
});

/**
 * Node's HTTP server with an endless stream at /events (an event at once, then one every 100 ms,
 * until the client goes) and `GET <url>` everywhere else; `seen` counts the requests per URL.
 */
async function startStreamingApp(): Promise<{ port: number; seen: Map<string, number> }> {
  const seen = new Map<string, number>();
  const server = http.createServer((req, res) => {
    seen.set(req.url!, (seen.get(req.url!) ?? 0) + 1);
    if (req.url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 0\n\n');
      const t = setInterval(() => res.write('data: tick\n\n'), 100);
      res.on('close', () => clearInterval(t));
      return;
    }
    const body = `GET ${req.url}`;
    res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
  });
  return { port: await listenApp(server), seen };
}

/**
 * One HTTP/2 burst through `sc`: the stream's request (with `accept`, if any) first, then 6 GETs
 * /after/<tag>/<i>, all handled in one loop turn of the sidecar. The GETs' statuses and bodies,
 * and whether the stream was still sending after they were answered.
 */
async function burstBehindStream(sc: Sidecar, tag: string, accept: string | null): Promise<{ answers: string[]; streaming: boolean }> {
  const session = await h2connect(`http://127.0.0.1:${sc.port()}`);
  const stream = session.request({ ':path': '/events', ...(accept === null ? {} : { accept }) });
  let events = 0;
  stream.on('data', () => events++);
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => h2request(session, { ':path': `/after/${tag}/${i}` })));
  const before = events;
  const streaming = await new Promise<boolean>((resolve) => {
    const check = (): void => (events > before ? resolve(true) : stream.closed ? resolve(false) : void setTimeout(check, 20));
    check();
  });
  stream.close();
  session.close();
  return { answers: answers.map((a) => `${a.status} ${a.status === 200 ? a.body.toString() : ''}`.trim()), streaming };
}

describe('pipeline_plaintext and responses that do not end', () => {
  it('a GET asking for Server-Sent Events (Accept: text/event-stream) goes alone: the GETs of the same loop turn are answered on another connection while the stream runs', async () => {
    const app = await startStreamingApp();
    const sc = await startSidecar(proxyConfig([`127.0.0.1:${app.port}`], { pool: { pipeline_plaintext: true } }));
    for (const [tag, accept] of [
      ['a', 'text/event-stream'],
      ['b', 'text/html, Text/Event-Stream;q=0.9'],
    ] as const) {
      const { answers, streaming } = await burstBehindStream(sc, tag, accept);
      expect(answers).toEqual(Array.from({ length: 6 }, (_, i) => `200 GET /after/${tag}/${i}`));
      expect(streaming).toBe(true);
      // None was written behind the stream: the app got each once.
      expect(Array.from({ length: 6 }, (_, i) => app.seen.get(`/after/${tag}/${i}`))).toEqual([1, 1, 1, 1, 1, 1]);
    }
    expect((await endpointCounters(sc, 'app')).pipelinedMoved).toBe(0);
  });

  it('without that Accept (a long poll looks the same): the GETs written behind it are sent again on another connection once it has not ended within the limit, and answered; the stream goes on', async () => {
    const app = await startStreamingApp();
    const sc = await startSidecar(proxyConfig([`127.0.0.1:${app.port}`], { pool: { pipeline_plaintext: true } }));
    const { answers, streaming } = await burstBehindStream(sc, 'c', null);
    expect(answers).toEqual(Array.from({ length: 6 }, (_, i) => `200 GET /after/c/${i}`));
    expect(streaming).toBe(true);
    // Node's server read them behind the stream (and answered into its queue behind it), then again.
    expect(Array.from({ length: 6 }, (_, i) => app.seen.get(`/after/c/${i}`))).toEqual([2, 2, 2, 2, 2, 2]);
    expect((await endpointCounters(sc, 'app')).pipelinedMoved).toBe(6);
  });
});

describe('pipeline_plaintext to a server that reads only the first request of a read', () => {
  it('by default: the GETs it drops are sent again alone and answered (not left to the route timeout); GET /clusters counts them', async () => {
    // A naive server: one recv, one request parsed, the rest of the read thrown away.
    const sockets = new Map<net.Socket, true>();
    let dropped = 0;
    const server = net.createServer((socket) => {
      sockets.set(socket, true);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.on('data', (d: Buffer) => {
        const heads = d
          .toString('latin1')
          .split('\r\n\r\n')
          .filter((h) => h !== '');
        dropped += heads.length - 1;
        const path = heads[0]!.slice(0, heads[0]!.indexOf('\r\n')).split(' ')[1]!;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
      });
    });
    const address = await listenTracked(server, sockets);
    const sc = await startSidecar(proxyConfig([address]));
    const { paths, bodies } = await getBurst(sc, 'd', 6); // each 200: none left to the route timeout's 504
    expect(bodies).toEqual(paths);
    expect(dropped).toBeGreaterThan(0);
    expect((await endpointCounters(sc, 'app')).pipelinedMoved).toBe(dropped);
  });
});

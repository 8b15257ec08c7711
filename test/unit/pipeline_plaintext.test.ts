// Pipelining to a plaintext app (pool.pipeline_plaintext, src/upstream/pipeline.ts with safeOnly)
// against a real 127.0.0.1 server that records each request head per connection: GETs share
// connections, any other request goes alone (nothing behind it, it behind nothing), and when the
// app closes with GETs unanswered they come back unprocessed and are sent again, while a request
// alone on its connection is left to the exchange's stale keep-alive rule. The default (loopback)
// pipelines to 127.0.0.1 and not to another address; an app that drops the requests behind the
// first of a read has them sent again, and loses pipelining.

import net, { createServer } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PoolSpec } from '../../src/config/types.js';
import { EndpointPool, type PendingBudget } from '../../src/upstream/pool.js';
import { manualTicker } from './manual_clock.js';
import { rawUpstream, RecordingRequest, ResendingRequest, respond, testPoolSpec, type ReceivedRequest } from './upstream_fixture.js';

interface HeldUpstream {
  readonly port: number;
  /** Requests received and not answered yet, per path. */
  readonly held: Map<string, ReceivedRequest>;
  /** Every request line received on each connection, in order. */
  readonly lines: Map<net.Socket, string[]>;
}

/** A server that holds every request until the test answers it (with `echo`: answers each at once with its path). */
async function heldUpstream(echo = false): Promise<HeldUpstream> {
  const held = new Map<string, ReceivedRequest>();
  const lines = new Map<net.Socket, string[]>();
  const up = await rawUpstream((r) => {
    if (!lines.has(r.socket)) lines.set(r.socket, []);
    lines.get(r.socket)!.push(r.line);
    const path = r.line.split(' ')[1]!;
    if (echo) respond(r.socket, path);
    else held.set(path, r);
  });
  onTestFinished(() => up.close());
  return { port: up.port, held, lines };
}

/** Answers the held requests for `paths`, in one write on their (common) connection; `close`: that answer says Connection: close. */
function answer(up: HeldUpstream, paths: string[], close: string | null = null): void {
  const socket = up.held.get(paths[0]!)!.socket;
  let bytes = '';
  for (const p of paths) {
    expect(up.held.get(p)!.socket).toBe(socket);
    up.held.delete(p);
    bytes += `HTTP/1.1 200 OK\r\ncontent-length: ${p.length}\r\n${p === close ? 'connection: close\r\n' : ''}\r\n${p}`;
  }
  socket.write(bytes);
}

function makePool(
  port: number,
  spec: Partial<PoolSpec> = {},
  budget: PendingBudget = { pending: 0, max: 10 },
  ticker = manualTicker().ticker,
  host = '127.0.0.1',
): EndpointPool {
  const pool = new EndpointPool(host, port, testPoolSpec(budget, { pipelinePlaintext: 'on', ...spec }), budget, ticker);
  onTestFinished(() => pool.close());
  return pool;
}

function sent(p: EndpointPool, path: string, method = 'GET'): RecordingRequest {
  const r = new RecordingRequest(path, method);
  p.dispatch(r);
  return r;
}

const socketOf = (up: HeldUpstream, path: string): net.Socket => up.held.get(path)!.socket;

describe('pipeline_plaintext: GETs share connections to the app', () => {
  it('20 GETs dispatched at once go over 2 connections, each answered with its own response', async () => {
    const up = await heldUpstream(true);
    const p = makePool(up.port, { connectionsPerWorker: 8 });
    const rs = Array.from({ length: 20 }, (_, i) => sent(p, `/r${i}`));
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(rs.map((r) => r.body)).toEqual(rs.map((r) => r.path));
    expect(rs.every((r) => r.error === null)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(2); // 16 joined the first while it connected (pipeline_depth), 4 the second
    expect([...up.lines.values()].map((l) => l.length).sort((a, b) => a - b)).toEqual([4, 16]);
    expect(p.idleCount).toBe(2);
  });

  it('a reload that turns pipeline_plaintext off: the connections already pipelining take no second request', async () => {
    const up = await heldUpstream(true);
    const p = makePool(up.port, { connectionsPerWorker: 8 });
    const warm = [sent(p, '/w1'), sent(p, '/w2')];
    await expect.poll(() => warm.every((r) => r.ended)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(1);
    p.spec = { ...p.spec, pipelinePlaintext: 'off' };
    const rs = Array.from({ length: 3 }, (_, i) => sent(p, `/r${i}`));
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(3); // the idle one took /r0, two new ones the others
    expect([...up.lines.values()].map((l) => l.length).sort()).toEqual([1, 1, 3]);
  });

  it('the default (loopback): pipelined to an app on 127.0.0.1, not to the same app reached at a non-loopback address', async () => {
    const up = await heldUpstream(true);
    const local = makePool(up.port, { connectionsPerWorker: 8, pipelinePlaintext: 'loopback' });
    const near = Array.from({ length: 6 }, (_, i) => sent(local, `/l${i}`));
    await expect.poll(() => near.every((r) => r.ended)).toBe(true);
    expect(local.counters.connectionsOpened).toBe(1);
    // 0.0.0.0 reaches this host too (Linux connects it over loopback), but the pool cannot know the
    // app is beside it: one request per connection, as to any remote plaintext server.
    const far = makePool(up.port, { connectionsPerWorker: 8, pipelinePlaintext: 'loopback' }, undefined, undefined, '0.0.0.0');
    const rs = Array.from({ length: 6 }, (_, i) => sent(far, `/f${i}`));
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(rs.map((r) => r.body)).toEqual(rs.map((r) => r.path));
    expect(far.counters.connectionsOpened).toBe(6);
  });

  it('without pipeline_plaintext the same GETs take a connection each', async () => {
    const up = await heldUpstream(true);
    const p = makePool(up.port, { connectionsPerWorker: 8, pipelinePlaintext: 'off' });
    const rs = Array.from({ length: 6 }, (_, i) => sent(p, `/r${i}`));
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(6);
  });
});

describe('pipeline_plaintext: any other request goes alone', () => {
  it('a POST in the middle of a turn of GETs gets a connection of its own, and no GET is written behind it', async () => {
    const up = await heldUpstream();
    const p = makePool(up.port);
    const [a, b] = [sent(p, '/a'), sent(p, '/b')];
    const post = sent(p, '/post', 'POST');
    const [c, d] = [sent(p, '/c'), sent(p, '/d')];
    await expect.poll(() => up.held.size).toBe(5);
    const getSocket = socketOf(up, '/a');
    for (const path of ['/b', '/c', '/d']) expect(socketOf(up, path)).toBe(getSocket);
    expect(socketOf(up, '/post')).not.toBe(getSocket);
    expect(up.lines.get(socketOf(up, '/post'))).toEqual(['POST /post HTTP/1.1']);
    answer(up, ['/a', '/b', '/c', '/d']);
    answer(up, ['/post']);
    await expect.poll(() => [a, b, post, c, d].map((r) => r.body)).toEqual(['/a', '/b', '/post', '/c', '/d']);
    expect(p.counters.connectionsOpened).toBe(2);
  });

  it('at the connection limit a POST waits rather than go behind GETs; while it waits, GETs queue behind it rather than join a pipeline (it would never see an idle connection)', async () => {
    const up = await heldUpstream();
    const p = makePool(up.port, { connectionsPerWorker: 1 });
    const a = sent(p, '/a');
    await expect.poll(() => up.held.size).toBe(1);
    const b = sent(p, '/b'); // at the limit, a fresh head: a GET goes behind it
    await expect.poll(() => up.held.size).toBe(2);
    const post = sent(p, '/post', 'POST');
    expect(post.channels).toHaveLength(0); // queued, not written behind /a and /b
    const c = sent(p, '/c');
    answer(up, ['/a', '/b']);
    await expect.poll(() => up.held.has('/post')).toBe(true);
    expect(c.channels).toHaveLength(0); // queued behind the POST, and then not written behind it
    answer(up, ['/post']);
    await expect.poll(() => up.held.has('/c')).toBe(true);
    answer(up, ['/c']);
    await expect.poll(() => [a, b, post, c].map((r) => r.body)).toEqual(['/a', '/b', '/post', '/c']);
    expect(up.lines.get(socketOf2(up))).toEqual(['GET /a HTTP/1.1', 'GET /b HTTP/1.1', 'POST /post HTTP/1.1', 'GET /c HTTP/1.1']);
    expect(p.counters.connectionsOpened).toBe(1);
  });
});

/** The one connection the upstream has seen. */
function socketOf2(up: HeldUpstream): net.Socket {
  expect(up.lines.size).toBe(1);
  return [...up.lines.keys()][0]!;
}

describe('pipeline_plaintext: an app whose framing is wrong', () => {
  it('a body that outruns its Content-Length: the bytes after it are no answer to the next GET (it fails as a protocol error) and the connection is closed', async () => {
    const up = await heldUpstream();
    const p = makePool(up.port);
    const [a, b] = [sent(p, '/a'), sent(p, '/b')];
    await expect.poll(() => up.held.size).toBe(2);
    const socket = socketOf(up, '/a');
    expect(socketOf(up, '/b')).toBe(socket);
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/a private to a\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/b');
    await expect.poll(() => b.error?.code).toBe('upstream_protocol_error');
    expect(a.body).toBe('/a');
    expect(b.body).toBe('');
    expect(b.status).toBe(0);
    await expect.poll(() => p.open).toBe(0);
  });
});

describe('pipeline_plaintext: the app closes with requests unanswered', () => {
  it.each([
    { how: 'a Connection: close response', closeHeader: true },
    { how: 'a close between responses', closeHeader: false },
  ])('$how: the GETs behind it come back unprocessed and are answered on a new connection', async ({ closeHeader }) => {
    const up = await heldUpstream();
    const p = makePool(up.port);
    const rs = ['/1', '/2', '/3'].map((path) => new ResendingRequest(p, path));
    for (const r of rs) p.dispatch(r);
    await expect.poll(() => up.held.size).toBe(3);
    const first = socketOf(up, '/1');
    up.held.clear();
    first.end(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n${closeHeader ? 'connection: close\r\n' : ''}\r\n/1`);
    await expect.poll(() => rs.map((r) => r.resent)).toEqual([0, 1, 1]);
    await expect.poll(() => up.held.size).toBe(2);
    expect(socketOf(up, '/2')).not.toBe(first);
    answer(up, ['/2', '/3']);
    await expect.poll(() => rs.map((r) => r.body)).toEqual(['/1', '/2', '/3']);
    expect(rs.every((r) => r.error === null)).toBe(true);
  });

  it('a POST alone on a reused connection that the app closes is not unprocessed: it fails as a stale keep-alive (reused, no answer yet)', async () => {
    const up = await heldUpstream();
    const p = makePool(up.port);
    const warm = sent(p, '/warm');
    await expect.poll(() => up.held.size).toBe(1);
    answer(up, ['/warm']);
    await expect.poll(() => warm.ended).toBe(true);
    const post = new ResendingRequest(p, '/post', 'POST');
    p.dispatch(post);
    await expect.poll(() => up.held.size).toBe(1);
    socketOf(up, '/post').end(); // closes without an answer
    await expect.poll(() => post.error?.code).toBe('upstream_reset');
    expect(post.resent).toBe(0);
    expect(post.errorChannel!.unprocessed).toBe(false);
    expect(post.errorChannel!.reused).toBe(true);
    expect(post.errorChannel!.awaitingResponse).toBe(true);
  });
});

/**
 * An app that answers `perConnection` requests on a connection, the last with Connection: close,
 * and then closes it (what arrived behind that answer is never answered). Records the request
 * lines of each connection.
 */
async function closingApp(perConnection: number): Promise<{ port: number; lines: Map<net.Socket, string[]> }> {
  const lines = new Map<net.Socket, string[]>();
  const up = await rawUpstream((r) => {
    const mine = lines.get(r.socket) ?? [];
    lines.set(r.socket, mine);
    mine.push(r.line);
    if (mine.length > perConnection) return;
    const last = mine.length === perConnection;
    respond(r.socket, r.line.split(' ')[1], last);
    if (last) r.socket.end();
  });
  onTestFinished(() => up.close());
  return { port: up.port, lines };
}

/** `paths` dispatched in one loop turn, each sent again alone when it comes back unprocessed (as an exchange); resolves when all are answered. */
async function burst(p: EndpointPool, paths: readonly string[]): Promise<ResendingRequest[]> {
  const rs = paths.map((path) => new ResendingRequest(p, path, 'GET', true));
  for (const r of rs) p.dispatch(r);
  await expect.poll(() => rs.every((r) => r.ended || r.error !== null)).toBe(true);
  expect(rs.map((r) => r.body)).toEqual(paths);
  return rs;
}

describe('pipeline_plaintext: an app that keeps closing pipelined connections', () => {
  it('closes after every answer: the third pipelined connection lost in a row stops pipelining to it for 60 s; then a new connection offers it again', async () => {
    const app = await closingApp(1);
    const { ticker, advance } = manualTicker();
    const p = new EndpointPool(
      '127.0.0.1',
      app.port,
      testPoolSpec({ pending: 0, max: 10 }, { pipelinePlaintext: 'on', connectionsPerWorker: 8 }),
      { pending: 0, max: 10 },
      ticker,
    );
    onTestFinished(() => p.close());
    const pipelinedSockets = (): number => [...app.lines.values()].filter((l) => l.length > 1).length;

    for (let i = 1; i <= 3; i++) {
      expect(p.pipeliningOff).toBe(false);
      const rs = await burst(p, [`/b${i}/1`, `/b${i}/2`, `/b${i}/3`]);
      // The two behind the first were written on its connection, came back unprocessed, and were sent again alone.
      expect(rs.map((r) => r.resent)).toEqual([0, 1, 1]);
      expect(pipelinedSockets()).toBe(i);
    }
    expect(p.pipeliningOff).toBe(true);
    expect(p.counters.pipeliningStops).toBe(1);

    // Stopped: a burst takes a connection per request, none is written behind another, none is sent again.
    const opened = p.counters.connectionsOpened;
    const quiet = await burst(p, ['/s/1', '/s/2', '/s/3']);
    expect(quiet.map((r) => r.resent)).toEqual([0, 0, 0]);
    expect(pipelinedSockets()).toBe(3);
    expect(p.counters.connectionsOpened - opened).toBe(3);

    // 60 s later the next new connection offers pipelining again (and one loss does not stop it again).
    advance(60_000);
    expect(p.pipeliningOff).toBe(false);
    const again = await burst(p, ['/a/1', '/a/2', '/a/3']);
    expect(again.map((r) => r.resent)).toEqual([0, 1, 1]);
    expect(pipelinedSockets()).toBe(4);
    expect(p.pipeliningOff).toBe(false);
    expect(p.counters.pipeliningStops).toBe(1);
  });

  it('answers pipelined requests and closes after every 5th (a per-connection request limit): pipelining never stops', async () => {
    const app = await closingApp(5);
    const p = makePool(app.port, { connectionsPerWorker: 8 });
    let resent = 0;
    for (let i = 1; i <= 10; i++) {
      const rs = await burst(p, [`/b${i}/1`, `/b${i}/2`, `/b${i}/3`]);
      expect(rs.every((r) => r.error === null)).toBe(true);
      resent += rs.reduce((n, r) => n + r.resent, 0);
    }
    // Closes did leave pipelined requests unanswered (sent again), between pipelined answers.
    expect(resent).toBeGreaterThan(0);
    expect(p.pipeliningOff).toBe(false);
    expect(p.counters.pipeliningStops).toBe(0);
  });
});

describe('pipeline_plaintext: GETs behind a response that does not end', () => {
  /** /long, then /g1 /g2 /g3 that go alone when sent again (as an Exchange's resend does), all on one connection. */
  async function behindLong(): Promise<{ up: HeldUpstream; p: EndpointPool; advance: (ms: number) => void; long: RecordingRequest; gets: ResendingRequest[] }> {
    const up = await heldUpstream();
    const { ticker, advance } = manualTicker();
    const p = makePool(up.port, { connectionsPerWorker: 8 }, undefined, ticker);
    const long = sent(p, '/long');
    const gets = ['/g1', '/g2', '/g3'].map((path) => new ResendingRequest(p, path, 'GET', true));
    for (const g of gets) p.dispatch(g);
    await expect.poll(() => up.held.size).toBe(4);
    const first = socketOf(up, '/long');
    expect(gets.map((g) => socketOf(up, g.path))).toEqual([first, first, first]);
    return { up, p, advance, long, gets };
  }

  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('not answered within 100 ms: they are sent again on connections of their own; their first answers, behind the long one, are read and dropped, and the connection serves on', async () => {
    const { up, p, advance, long, gets } = await behindLong();
    const first = socketOf(up, '/long');
    advance(50);
    await turn();
    expect(gets.map((g) => g.resent)).toEqual([0, 0, 0]);
    advance(75);
    await expect.poll(() => gets.map((g) => g.resent)).toEqual([1, 1, 1]);
    await expect.poll(() => gets.every((g) => up.held.get(g.path)!.socket !== first)).toBe(true);
    const others = new Set(gets.map((g) => socketOf(up, g.path)));
    expect(others.size).toBe(3);
    expect(p.counters.pipelinedMoved).toBe(3);
    for (const g of gets) answer(up, [g.path]);
    await expect.poll(() => gets.every((g) => g.ended)).toBe(true);
    expect(gets.map((g) => [g.status, g.body, g.error])).toEqual(gets.map((g) => [200, g.path, null]));
    // The long answer comes at last, with the first answers to the GETs behind it: those go nowhere.
    up.held.delete('/long');
    first.write(['/long', 'stale-1', 'stale-2', 'stale-3'].map((b) => `HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n\r\n${b}`).join(''));
    await expect.poll(() => long.ended).toBe(true);
    expect(long.body).toBe('/long');
    await expect.poll(() => p.idleCount).toBe(4);
    expect(gets.map((g) => g.body)).toEqual(['/g1', '/g2', '/g3']);
    // The first connection is idle and answers the next request in order (the last to come idle is taken first).
    const next = sent(p, '/next');
    await expect.poll(() => up.held.has('/next')).toBe(true);
    expect(socketOf(up, '/next')).toBe(first);
    answer(up, ['/next']);
    await expect.poll(() => next.ended).toBe(true);
    expect([next.status, next.body]).toEqual([200, '/next']);
    expect(p.counters.connectionsOpened).toBe(4);
  });

  it('the long answer comes but the first answers of the moved GETs do not: the connection is closed once they are late too', async () => {
    const { up, advance, long, gets } = await behindLong();
    const first = socketOf(up, '/long');
    advance(125);
    await expect.poll(() => gets.map((g) => g.resent)).toEqual([1, 1, 1]);
    up.held.delete('/long');
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    first.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n/long');
    await expect.poll(() => long.ended).toBe(true);
    advance(50);
    await turn();
    expect(isClosed).toBe(false); // still waiting for the moved answers, within the limit
    advance(100);
    await closed;
  });

  it('the head answered within the limit: nothing is sent again', async () => {
    const { up, p, advance, long, gets } = await behindLong();
    advance(90);
    await turn();
    answer(up, ['/long', '/g1', '/g2', '/g3']);
    await expect.poll(() => long.ended && gets.every((g) => g.ended)).toBe(true);
    advance(200);
    await turn();
    expect(gets.map((g) => [g.resent, g.body])).toEqual([
      [0, '/g1'],
      [0, '/g2'],
      [0, '/g3'],
    ]);
    expect(p.counters.pipelinedMoved).toBe(0);
  });
});

describe('pipeline_plaintext: an app that reads only the first request of a read', () => {
  /** Answers the first request of each read with its path and drops the rest of the read (a naive server's single recv). */
  async function firstOfReadApp(): Promise<{ port: number; dropped: string[] }> {
    const dropped: string[] = [];
    const sockets = new Set<net.Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('data', (d: Buffer) => {
        const lines = d
          .toString('latin1')
          .split('\r\n\r\n')
          .filter((h) => h !== '')
          .map((h) => h.slice(0, h.indexOf('\r\n')).split(' ')[1]!);
        dropped.push(...lines.slice(1));
        respond(socket, lines[0]);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
      server.close();
    });
    return { port: (server.address() as net.AddressInfo).port, dropped };
  }

  it('the GETs it dropped are sent again alone once 100 ms pass without a byte of their answer; the third such connection in a row stops pipelining to it', async () => {
    const app = await firstOfReadApp();
    const { ticker, advance } = manualTicker();
    const p = makePool(app.port, { connectionsPerWorker: 8 }, undefined, ticker);
    for (let i = 1; i <= 3; i++) {
      expect(p.pipeliningOff).toBe(false);
      if (i > 1) {
        // A drop counts as a slow response: a write carries one request until ~170 answers in time
        // have brought the recent share of slow ones down again (StallClock.batchLimit).
        const one = sent(p, `/one/${i}`);
        await expect.poll(() => one.ended).toBe(true);
        const d0 = app.dropped.length;
        const single = [sent(p, `/s${i}/1`), sent(p, `/s${i}/2`)];
        await expect.poll(() => single.every((r) => r.ended)).toBe(true);
        expect(app.dropped).toHaveLength(d0); // not written behind one another
        for (let k = 0; k < 200; k++) {
          const r = sent(p, `/one/${i}/${k}`);
          while (!r.ended) await new Promise((resolve) => setImmediate(resolve));
        }
      }
      const before = app.dropped.length;
      const rs = [`/b${i}/1`, `/b${i}/2`, `/b${i}/3`].map((path) => new ResendingRequest(p, path, 'GET', true));
      for (const r of rs) p.dispatch(r);
      // Those the app answered, and the others it dropped: between them, all three.
      await expect.poll(() => rs.filter((r) => r.ended).length + app.dropped.length - before).toBe(3);
      const dropped = app.dropped.slice(before);
      expect(dropped.length).toBeGreaterThan(0);
      advance(90);
      await new Promise((resolve) => setImmediate(resolve));
      expect(rs.filter((r) => r.resent > 0)).toEqual([]); // not before the limit
      advance(20);
      await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
      expect(rs.map((r) => r.body)).toEqual(rs.map((r) => r.path));
      expect(rs.filter((r) => r.resent > 0).map((r) => r.path)).toEqual(dropped);
    }
    expect(p.pipeliningOff).toBe(true);
    expect(p.counters.pipeliningStops).toBe(1);
    expect(p.counters.pipelinedMoved).toBe(app.dropped.length);
  });

  it('an app that has answered a request written behind another is never suspected: a slow GET behind another waits for its answer', async () => {
    const up = await heldUpstream();
    const { ticker, advance } = manualTicker();
    const p = makePool(up.port, { connectionsPerWorker: 8 }, undefined, ticker);
    const warm = [sent(p, '/w1'), sent(p, '/w2')];
    await expect.poll(() => up.held.size).toBe(2);
    answer(up, ['/w1', '/w2']);
    await expect.poll(() => warm.every((r) => r.ended)).toBe(true);
    const rs = ['/a', '/slow'].map((path) => new ResendingRequest(p, path, 'GET', true));
    for (const r of rs) p.dispatch(r);
    await expect.poll(() => up.held.size).toBe(2);
    answer(up, ['/a']);
    await expect.poll(() => rs[0]!.ended).toBe(true);
    advance(500);
    await new Promise((resolve) => setImmediate(resolve));
    expect(rs[1]!.resent).toBe(0);
    answer(up, ['/slow']);
    await expect.poll(() => rs[1]!.ended).toBe(true);
    expect(rs.map((r) => [r.resent, r.body])).toEqual([
      [0, '/a'],
      [0, '/slow'],
    ]);
    expect(p.counters.pipelinedMoved).toBe(0);
  });
});

// HTTP/1.1 pipelining on the mTLS pool (src/upstream/pipeline.ts) against a real node:tls server
// with certificates from a throw-away CA, standing in for an outrigger sidecar's inbound listener:
// it selects the pipelining ALPN (or not), records each request head per connection and lets the
// test answer, in order, by hand. The pool runs on an injected clock: stalls are moved by the test.

import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { PoolSpec } from '../../src/config/types.js';
import { PIPELINE_ALPN } from '../../src/net/alpn.js';
import type { Ca } from '../../src/tls/ca.js';
import { serverTlsOptions } from '../../src/tls/contexts.js';
import type { TlsMaterial } from '../../src/tls/material.js';
import { EndpointPool } from '../../src/upstream/pool.js';
import { leafMaterial, makeCa, removeTempDirs } from '../tls/helpers.js';
import { manualTicker } from './manual_clock.js';
import { RecordingRequest, ResendingRequest } from './upstream_fixture.js';

const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/api';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/web';

let ca: Ca;
let serverMaterial: TlsMaterial;
let clientMaterial: TlsMaterial;

beforeAll(async () => {
  ca = await makeCa();
  serverMaterial = leafMaterial(ca, { identity: SERVER_ID, ttlHours: 1 });
  clientMaterial = leafMaterial(ca, { identity: CLIENT_ID, ttlHours: 1 });
});
afterAll(removeTempDirs);

interface Held {
  readonly socket: tls.TLSSocket;
  readonly path: string;
}

interface TlsUpstream {
  readonly port: number;
  /** The ALPN protocol each accepted connection selected (false: none), in accept order. */
  readonly alpn: Array<string | false | null>;
  /** Request heads received and not answered yet, per path. */
  readonly held: Map<string, Held>;
  /** How many request heads each connection's first read carried. */
  readonly firstReadHeads: number[];
  readonly sockets: Set<tls.TLSSocket>;
}

/** A response of `body` (with `Connection: close` when `close`), as bytes on the wire. */
function response(body: string, close = false): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`;
}

/**
 * A TLS server that offers `alpn` (null: no ALPN at all) and holds every request head (no bodies)
 * until the test answers it; with `echo`, it answers each at once with its path instead.
 */
async function tlsUpstream(alpn: string[] | null, echo = false): Promise<TlsUpstream> {
  const state: TlsUpstream = { port: 0, alpn: [], held: new Map(), firstReadHeads: [], sockets: new Set() };
  const options = { ...serverTlsOptions(serverMaterial), ...(alpn === null ? {} : { ALPNProtocols: alpn }) };
  const server = tls.createServer(options, (socket) => {
    state.alpn.push(socket.alpnProtocol);
    state.sockets.add(socket);
    socket.on('close', () => state.sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let reads = 0;
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let heads = 0;
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const path = buf.slice(0, end).split(' ')[1]!;
        buf = buf.slice(end + 4);
        heads++;
        if (echo) socket.write(response(path));
        else state.held.set(path, { socket, path });
      }
      if (reads++ === 0) state.firstReadHeads.push(heads);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const s of state.sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return Object.assign(state, { port: (server.address() as { port: number }).port });
}

/** An mTLS pool to the server, closed when the test finishes. */
function makePool(port: number, spec: Partial<PoolSpec> = {}, t = manualTicker()): EndpointPool {
  const full: PoolSpec = {
    connectionsPerWorker: 8,
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 5_000,
    keepaliveIntervalMs: 0,
    pipelineDepth: 16,
    pipelinePlaintext: 'off',
    maxPending: 100,
    ...spec,
  };
  const pool = new EndpointPool('127.0.0.1', port, full, { pending: 0, max: 100 }, t.ticker, { material: () => clientMaterial, identities: [SERVER_ID] });
  onTestFinished(() => pool.close());
  return pool;
}

function sent(p: EndpointPool, path: string): RecordingRequest {
  const r = new RecordingRequest(path);
  p.dispatch(r);
  return r;
}

/** A pool to a pipelining upstream, and `paths` sent in one loop turn and held there. */
async function sentAndHeld<const P extends readonly string[]>(
  ...paths: P
): Promise<{ up: TlsUpstream; p: EndpointPool; rs: { [K in keyof P]: RecordingRequest } }> {
  const up = await tlsUpstream([PIPELINE_ALPN]);
  const p = makePool(up.port);
  const rs = paths.map((path) => sent(p, path)) as { [K in keyof P]: RecordingRequest };
  await expect.poll(() => up.held.size).toBe(paths.length);
  return { up, p, rs };
}

/** `n` requests, one per loop turn (each opens a connection of its own), answered (after `beforeAnswer`): `n` idle connections. */
async function warmConnections(up: TlsUpstream, p: EndpointPool, n: number, beforeAnswer: () => void): Promise<void> {
  const warm: RecordingRequest[] = [];
  for (let i = 0; i < n; i++) {
    warm.push(sent(p, `/w${i}`));
    await expect.poll(() => up.held.size).toBe(i + 1);
  }
  beforeAnswer();
  for (const r of warm) answerTogether(up, [r.path]);
  await expect.poll(() => p.idleCount).toBe(n);
}

/** Answers the held requests for `paths` in one write on their (common) connection. */
function answerTogether(up: TlsUpstream, paths: string[], close: string | null = null): void {
  const first = up.held.get(paths[0]!)!;
  let bytes = '';
  for (const p of paths) {
    const h = up.held.get(p)!;
    expect(h.socket).toBe(first.socket);
    up.held.delete(p);
    bytes += response(p, p === close);
  }
  first.socket.write(bytes);
}

describe('pipelining to a server that selects it', () => {
  it('20 requests dispatched at once go over 2 connections, each answered with its own response; each connection first reads all its heads at once', async () => {
    const up = await tlsUpstream([PIPELINE_ALPN, 'http/1.1'], true);
    const p = makePool(up.port);
    const rs = Array.from({ length: 20 }, (_, i) => sent(p, `/r${i}`));
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(rs.map((r) => r.body)).toEqual(rs.map((r) => r.path));
    expect(rs.every((r) => r.error === null)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(2); // 16 joined the first while it connected, 4 the second
    expect(up.alpn).toEqual([PIPELINE_ALPN, PIPELINE_ALPN]);
    // Batched: the heads written in one loop turn left in one write (one TLS record).
    expect(up.firstReadHeads.sort((a, b) => a - b)).toEqual([4, 16]);
    expect(p.idleCount).toBe(2);
  });

  it('carries the bytes after one response over to the next: three responses in one write, and one split across writes', async () => {
    const {
      up,
      p,
      rs: [a, b, c],
    } = await sentAndHeld('/a', '/b', '/c');
    answerTogether(up, ['/a', '/b', '/c']);
    await expect.poll(() => [a.body, b.body, c.body]).toEqual(['/a', '/b', '/c']);
    expect(p.counters.connectionsOpened).toBe(1);

    const d = sent(p, '/d');
    const e = sent(p, '/e');
    await expect.poll(() => up.held.size).toBe(2);
    const socket = up.held.get('/d')!.socket;
    const bytes = response('/d') + response('/e');
    const cut = response('/d').length + 10; // inside e's head
    socket.write(bytes.slice(0, cut));
    await expect.poll(() => d.ended).toBe(true);
    expect(e.status).toBe(0);
    socket.write(bytes.slice(cut));
    await expect.poll(() => e.body).toBe('/e');
    expect(d.channels[0]).not.toBe(e.channels[0]); // a channel per try
    expect(p.open).toBe(1);
  });

  // The server processed nothing after its last answer (net/alpn.ts): whether that answer says
  // Connection: close, or the server closes cleanly after it (a drain whose last answer was out).
  it.each([
    { how: 'a Connection: close response', closeHeader: true },
    { how: 'a clean close between responses', closeHeader: false },
  ])('$how: the requests behind it come back unprocessed and are answered on a new connection', async ({ closeHeader }) => {
    const up = await tlsUpstream([PIPELINE_ALPN]);
    const p = makePool(up.port);
    const rs = ['/1', '/2', '/3'].map((path) => new ResendingRequest(p, path));
    for (const r of rs) p.dispatch(r);
    await expect.poll(() => up.held.size).toBe(3);
    const first = up.held.get('/1')!.socket;
    up.held.delete('/1');
    first.end(response('/1', closeHeader));
    await expect.poll(() => rs.map((r) => r.resent)).toEqual([0, 1, 1]);
    await expect.poll(() => up.held.get('/3')?.socket).not.toBe(first); // /2 and /3 again, on a new connection
    expect(rs[1]!.channels[0]!.unprocessed).toBe(true);
    expect(rs[1]!.channels[0]!.awaitingResponse).toBe(true);
    expect(up.held.get('/2')!.socket).not.toBe(first);
    answerTogether(up, ['/2', '/3']);
    await expect.poll(() => rs.map((r) => r.body)).toEqual(['/1', '/2', '/3']);
    expect(rs.every((r) => r.error === null)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(2);
  });

  it('an abandoned request that was written whole: its response is read and dropped, the others are answered on the same connection', async () => {
    const {
      up,
      p,
      rs: [a, b, c],
    } = await sentAndHeld('/a', '/b', '/c');
    b.channels[0]!.destroy(); // b's client went away
    answerTogether(up, ['/a', '/b', '/c']);
    await expect.poll(() => c.ended).toBe(true);
    expect([a.body, b.body, c.body]).toEqual(['/a', '', '/c']);
    expect(b.ended).toBe(false);
    expect(b.error).toBeNull();
    expect(p.open).toBe(1);
    expect(p.idleCount).toBe(1);
    const d = sent(p, '/d');
    await expect.poll(() => up.held.size).toBe(1);
    answerTogether(up, ['/d']);
    await expect.poll(() => d.body).toBe('/d');
    expect(p.counters.connectionsOpened).toBe(1);
  });

  it('a truncated response: its request fails, the one behind it fails as reset and not as a stale keep-alive', async () => {
    const {
      up,
      rs: [a, b],
    } = await sentAndHeld('/a', '/b');
    up.held.get('/a')!.socket.end(response('/a-long').slice(0, -3));
    await expect.poll(() => b.error?.code).toBe('upstream_reset');
    expect(a.error?.code).toBe('upstream_reset');
    expect(b.errorChannel!.reused).toBe(false);
  });

  it('head of line: a request of a later loop turn takes a new connection rather than a place behind a busy one', async () => {
    const up = await tlsUpstream([PIPELINE_ALPN]);
    const p = makePool(up.port);
    const a = sent(p, '/a');
    await expect.poll(() => up.held.size).toBe(1);
    const b = sent(p, '/b'); // a's connection is busy and writes nothing this turn
    await expect.poll(() => up.held.size).toBe(2);
    expect(up.held.get('/b')!.socket).not.toBe(up.held.get('/a')!.socket);
    expect(p.counters.connectionsOpened).toBe(2);
    answerTogether(up, ['/b']);
    answerTogether(up, ['/a']);
    await expect.poll(() => [a.body, b.body]).toEqual(['/a', '/b']);
  });

  it('head of line at the connection limit: a request shares a busy connection until its oldest response is stalled, then waits for it to free', async () => {
    const up = await tlsUpstream([PIPELINE_ALPN]);
    const t = manualTicker();
    const p = makePool(up.port, { connectionsPerWorker: 1 }, t);
    const slow = sent(p, '/slow');
    await expect.poll(() => up.held.size).toBe(1);
    const second = sent(p, '/second'); // at the limit, the head is fresh: it goes behind it
    await expect.poll(() => up.held.size).toBe(2);
    const conn = up.held.get('/slow')!.socket;
    expect(up.held.get('/second')!.socket).toBe(conn);
    t.clock.advance(1_000); // the head is now far beyond the stall limit
    const third = sent(p, '/third');
    expect(third.channels).toHaveLength(0); // queued, not written behind the stalled response
    answerTogether(up, ['/slow', '/second']);
    await expect.poll(() => up.held.has('/third')).toBe(true);
    expect(up.held.get('/third')!.socket).toBe(conn);
    answerTogether(up, ['/third']);
    await expect.poll(() => [slow.body, second.body, third.body]).toEqual(['/slow', '/second', '/third']);
    expect(p.counters.connectionsOpened).toBe(1);
  });

  // 8 requests in one loop turn, 6 idle connections: from the 5th request of a turn a request
  // joins an open write before it takes an idle connection, unless responses have been slow
  // lately (head of line: StallClock.batchLimit), when each takes a connection of its own.
  it.each([
    {
      what: 'after the 4th request to the endpoint, the next ones join an open write rather than take idle connections',
      slow: false,
      idleLeft: 2,
      sockets: 4,
      opened: 6,
    },
    {
      what: 'after slow responses nobody joins a write: the 6 idle connections are taken, then 2 new ones (head of line)',
      slow: true,
      idleLeft: 0,
      sockets: 8,
      opened: 8,
    },
  ])('a busy loop turn: $what', async ({ slow, idleLeft, sockets, opened }) => {
    const t = manualTicker();
    const up = await tlsUpstream([PIPELINE_ALPN]);
    const p = makePool(up.port, {}, t);
    // Slow: every warm-up response comes far beyond the stall limit.
    await warmConnections(up, p, 6, () => slow && t.clock.advance(1_000));
    const rs = Array.from({ length: 8 }, (_, i) => sent(p, `/t${i}`));
    expect(p.idleCount).toBe(idleLeft);
    await expect.poll(() => up.held.size).toBe(8);
    expect(new Set([...up.held.values()].map((h) => h.socket)).size).toBe(sockets);
    for (const r of rs) answerTogether(up, [r.path]);
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(p.counters.connectionsOpened).toBe(opened);
  });

  it('pipeline_depth bounds the requests in flight per connection', async () => {
    const up = await tlsUpstream([PIPELINE_ALPN]);
    const p = makePool(up.port, { pipelineDepth: 3, connectionsPerWorker: 2 });
    const rs = Array.from({ length: 7 }, (_, i) => sent(p, `/r${i}`));
    await expect.poll(() => up.held.size).toBe(6);
    expect(p.open).toBe(2);
    expect(rs[6]!.channels).toHaveLength(0); // waits in the queue
    answerTogether(up, ['/r0']);
    await expect.poll(() => up.held.has('/r6')).toBe(true); // took the freed place
    expect(up.held.get('/r6')!.socket).toBe(up.held.get('/r1')!.socket);
  });
});

describe('without pipelining', () => {
  it('a server that does not select the ALPN gets one request per connection, as before', async () => {
    const up = await tlsUpstream(['http/1.1']);
    const p = makePool(up.port);
    const rs = ['/a', '/b', '/c'].map((path) => sent(p, path));
    await expect.poll(() => up.held.size).toBe(3);
    expect(new Set([...up.held.values()].map((h) => h.socket)).size).toBe(3);
    expect(up.alpn).toContain('http/1.1');
    for (const r of rs) answerTogether(up, [r.path]);
    await expect.poll(() => rs.map((r) => r.body)).toEqual(['/a', '/b', '/c']);
    expect(p.idleCount).toBe(3);
    // Once the pool knows, concurrent requests take the idle connections, then open new ones.
    const more = ['/d', '/e', '/f', '/g'].map((path) => sent(p, path));
    await expect.poll(() => up.held.size).toBe(4);
    expect(new Set([...up.held.values()].map((h) => h.socket)).size).toBe(4);
    for (const r of more) answerTogether(up, [r.path]);
    await expect.poll(() => more.every((r) => r.ended)).toBe(true);
  });

  it('pipeline_depth 1 does not offer pipelining to a server that would select it', async () => {
    const up = await tlsUpstream([PIPELINE_ALPN, 'http/1.1']);
    const p = makePool(up.port, { pipelineDepth: 1 });
    const rs = ['/a', '/b'].map((path) => sent(p, path));
    await expect.poll(() => up.held.size).toBe(2);
    expect(up.alpn).toEqual([false, false]);
    expect(new Set([...up.held.values()].map((h) => h.socket)).size).toBe(2);
    for (const r of rs) answerTogether(up, [r.path]);
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
  });
});

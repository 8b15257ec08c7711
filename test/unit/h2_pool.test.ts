// The HTTP/2 pool's accounting against a real in-process node:http2 server on 127.0.0.1, on an
// injected clock: streams per session within the server's SETTINGS_MAX_CONCURRENT_STREAMS, new
// sessions up to connectionsPerWorker, the bounded queue and overflow beyond, cancel, the idle
// sweep, keepalive PINGs while idle, and a stream the server refuses reported as unprocessed.

import http2 from 'node:http2';
import type net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PoolSpec } from '../../src/config/types.js';
import { H2Pool, SESSION_MOVES } from '../../src/upstream/h2_pool.js';
import type { PendingBudget } from '../../src/upstream/pool.js';
import { manualTicker } from './manual_clock.js';
import { expectExactMoves } from './transition_matrix.js';
import { RecordingRequest, testPoolSpec } from './upstream_fixture.js';

interface HeldServer {
  port: number;
  sessions: number;
  pings: number;
  held: Map<string, http2.ServerHttp2Stream>;
  refuse: Set<string>;
  answer(path: string): void;
  close(): Promise<void>;
}

/** An h2 server that holds every stream until the test answers it (by path), closed when the test finishes. */
async function heldServer(maxConcurrentStreams: number): Promise<HeldServer> {
  const srv = http2.createServer({ settings: { maxConcurrentStreams } });
  const sessions = new Set<http2.ServerHttp2Session>();
  const s: HeldServer = {
    port: 0,
    sessions: 0,
    pings: 0,
    held: new Map(),
    refuse: new Set(),
    answer(path) {
      const st = s.held.get(path);
      if (st === undefined) throw new Error(`no stream for ${path}`);
      s.held.delete(path);
      st.respond({ ':status': 200 });
      st.end(path);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const x of sessions) x.destroy();
        srv.close(() => resolve());
      }),
  };
  srv.on('session', (session) => {
    s.sessions++;
    sessions.add(session);
    session.on('ping', () => s.pings++);
    session.on('close', () => sessions.delete(session));
  });
  srv.on('stream', (st, headers) => {
    const path = String(headers[':path']);
    st.on('error', () => {});
    if (s.refuse.has(path)) {
      st.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    s.held.set(path, st);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  s.port = (srv.address() as net.AddressInfo).port;
  onTestFinished(() => s.close());
  return s;
}

/** A pool to 127.0.0.1:`port`, closed when the test finishes (before its server). */
function makePool(port: number, spec: Partial<PoolSpec>, budget: PendingBudget, t = manualTicker()): H2Pool {
  const pool = new H2Pool('127.0.0.1', port, testPoolSpec(budget, { connectionsPerWorker: 2, connectTimeoutMs: 5_000, ...spec }), budget, t.ticker);
  onTestFinished(() => pool.close());
  return pool;
}

function sent(p: H2Pool, path: string): RecordingRequest {
  const r = new RecordingRequest(path);
  p.dispatch(r);
  return r;
}

describe('H2Pool', () => {
  it('a session moves only CONNECTING → READY, DRAINING or CLOSED; READY → DRAINING or CLOSED; DRAINING → CLOSED', () => {
    expectExactMoves(SESSION_MOVES, 'h2 session', [
      'CONNECTING→READY',
      'CONNECTING→DRAINING',
      'CONNECTING→CLOSED',
      'READY→DRAINING',
      'READY→CLOSED',
      'DRAINING→CLOSED',
    ]);
  });

  it('fills sessions up to the peer limit, opens more up to connectionsPerWorker, then queues, then overflows', async () => {
    const up = await heldServer(2);
    const budget: PendingBudget = { pending: 0, max: 1 };
    const p = makePool(up.port, { connectionsPerWorker: 2 }, budget);
    const rs = ['/a', '/b', '/c', '/d', '/e'].map((path) => sent(p, path));
    // While the first session connects, the requests wait for it (counted as pending).
    expect(p.open).toBe(1);
    expect(budget.pending).toBe(5);
    await expect.poll(() => up.held.size).toBe(4);
    expect(up.sessions).toBe(2);
    expect(p.open).toBe(2);
    expect(p.streams).toBe(4);
    expect(budget.pending).toBe(1); // /e waits for a free stream
    const f = sent(p, '/f');
    expect(f.error?.code).toBe('overflow');
    up.answer('/a');
    await expect.poll(() => rs[0]!.ended).toBe(true);
    await expect.poll(() => up.held.has('/e')).toBe(true);
    expect(budget.pending).toBe(0);
    expect(p.streams).toBe(4);
    for (const path of ['/b', '/c', '/d', '/e']) up.answer(path);
    await expect.poll(() => rs.every((r) => r.ended)).toBe(true);
    expect(rs.map((r) => r.body)).toEqual(['/a', '/b', '/c', '/d', '/e']);
    await expect.poll(() => p.streams).toBe(0);
    expect(p.idleCount).toBe(2);
    expect(p.counters.connectionsOpened).toBe(2);
  });

  it('a cancelled waiter gives back its queue slot', async () => {
    const up = await heldServer(1);
    const budget: PendingBudget = { pending: 0, max: 5 };
    const p = makePool(up.port, { connectionsPerWorker: 1 }, budget);
    sent(p, '/a');
    await expect.poll(() => up.held.size).toBe(1);
    const gone = sent(p, '/gone');
    const next = sent(p, '/next');
    expect(budget.pending).toBe(2);
    p.cancel(gone);
    p.cancel(gone);
    expect(budget.pending).toBe(1);
    up.answer('/a');
    await expect.poll(() => up.held.has('/next')).toBe(true);
    expect(gone.channels).toHaveLength(0);
    up.answer('/next');
    await expect.poll(() => next.ended).toBe(true);
  });

  it('idle sessions get keepalive PINGs and are closed after idleTimeoutMs', async () => {
    const up = await heldServer(10);
    const t = manualTicker();
    const p = makePool(up.port, { idleTimeoutMs: 10_000, keepaliveIntervalMs: 2_000 }, { pending: 0, max: 5 }, t);
    const r = sent(p, '/a');
    await expect.poll(() => up.held.size).toBe(1);
    up.answer('/a');
    await expect.poll(() => r.ended).toBe(true);
    await expect.poll(() => p.streams).toBe(0);
    t.advance(3_000);
    await expect.poll(() => up.pings).toBeGreaterThanOrEqual(1);
    expect(p.open).toBe(1);
    t.advance(8_000);
    await expect.poll(() => p.open).toBe(0);
  });

  it('a stream the server refuses is reported unprocessed (the exchange may resend it)', async () => {
    const up = await heldServer(10);
    up.refuse.add('/no');
    const p = makePool(up.port, {}, { pending: 0, max: 5 });
    const r = sent(p, '/no');
    await expect.poll(() => r.error).not.toBeNull();
    expect(r.error?.code).toBe('upstream_connect_failed');
    expect(r.errorChannel?.unprocessed).toBe(true);
    await expect.poll(() => p.streams).toBe(0);
  });

  it('an unreachable endpoint fails every waiting request with upstream_connect_failed', async () => {
    const up = await heldServer(10);
    const port = up.port;
    await up.close();
    const budget: PendingBudget = { pending: 0, max: 5 };
    const p = makePool(port, {}, budget);
    const rs = [sent(p, '/a'), sent(p, '/b')];
    await expect.poll(() => rs.every((r) => r.error !== null)).toBe(true);
    expect(rs.map((r) => r.error?.code)).toEqual(['upstream_connect_failed', 'upstream_connect_failed']);
    expect(budget.pending).toBe(0);
    expect(p.open).toBe(0);
  });
});

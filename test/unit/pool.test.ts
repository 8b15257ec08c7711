// An endpoint's connection pool against a real 127.0.0.1 server whose answers the test releases
// by hand: most-recently-used reuse, the bounded wait queue, drain, the idle sweep on an injected
// clock, and the facts the exchange's reconnect-once relies on (a stale pooled connection fails
// as reused/awaiting, leaves the pool, and the next dispatch gets a fresh one).

import type net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PoolSpec } from '../../src/config/types.js';
import type { ProxyError } from '../../src/errors.js';
import type { UpstreamChannel } from '../../src/upstream/channel.js';
import { EndpointPool, type PendingBudget } from '../../src/upstream/pool.js';
import { manualTicker } from './manual_clock.js';
import { rawUpstream, RecordingRequest, respond, testPoolSpec, type RawUpstream, type ReceivedRequest } from './upstream_fixture.js';

/** A raw upstream that `onRequest` answers, closed when the test finishes. */
async function upstreamFor(onRequest: (r: ReceivedRequest) => void): Promise<RawUpstream> {
  const up = await rawUpstream(onRequest);
  onTestFinished(() => up.close());
  return up;
}

/** A server that holds every request until the test answers it (by path). */
async function heldUpstream(): Promise<{ port: number; held: Map<string, ReceivedRequest>; answer(path: string, body?: string): void }> {
  const held = new Map<string, ReceivedRequest>();
  const up = await upstreamFor((r) => held.set(r.line.split(' ')[1]!, r));
  return {
    port: up.port,
    held,
    answer(path: string, body = path): void {
      const r = held.get(path);
      if (r === undefined) throw new Error(`no request for ${path} yet`);
      held.delete(path);
      respond(r.socket, body);
    },
  };
}

/** A request for `path`, dispatched on the pool. */
function sent(p: EndpointPool, path = '/'): RecordingRequest {
  const r = new RecordingRequest(path);
  p.dispatch(r);
  return r;
}

/** Waits until the upstream holds r's request, answers it, and waits until r has its whole response. */
async function serve(up: Awaited<ReturnType<typeof heldUpstream>>, r: RecordingRequest): Promise<void> {
  await expect.poll(() => up.held.has(r.path)).toBe(true);
  up.answer(r.path);
  await expect.poll(() => r.ended).toBe(true);
}

/** A pool to 127.0.0.1:`port`, closed when the test finishes (before its upstream). */
function makePool(port: number, spec: Partial<PoolSpec> = {}, budget: PendingBudget = { pending: 0, max: 10 }, t = manualTicker()): EndpointPool {
  const pool = new EndpointPool('127.0.0.1', port, testPoolSpec(budget, spec), budget, t.ticker);
  onTestFinished(() => pool.close());
  return pool;
}

describe('EndpointPool', () => {
  it('reuses the most recently released idle connection first (LIFO)', async () => {
    const up = await heldUpstream();
    const p = makePool(up.port);
    const x = sent(p, '/x');
    const y = sent(p, '/y');
    expect(p.open).toBe(2);
    await expect.poll(() => up.held.size).toBe(2);
    await serve(up, y);
    await serve(up, x);
    expect(p.idleCount).toBe(2);
    const z = sent(p, '/z');
    expect(z.channels).toEqual(x.channels); // x's connection came free last
    expect(p.open).toBe(2);
    expect(p.counters.connectionsOpened).toBe(2);
    await serve(up, z);
  });

  it('opens at most connectionsPerWorker; then queues up to the budget; beyond it: overflow', async () => {
    const up = await heldUpstream();
    const budget: PendingBudget = { pending: 0, max: 1 };
    const p = makePool(up.port, { connectionsPerWorker: 1 }, budget);
    const a = sent(p, '/a');
    const b = sent(p, '/b');
    expect(budget.pending).toBe(1);
    const c = sent(p, '/c');
    expect(c.error?.code).toBe('overflow');
    expect(c.errorChannel).toBeNull();
    expect(p.open).toBe(1);
    await expect.poll(() => up.held.has('/a')).toBe(true);
    up.answer('/a');
    await expect.poll(() => up.held.has('/b')).toBe(true); // the queued request got the freed connection
    expect(budget.pending).toBe(0);
    expect(b.channels).toEqual(a.channels);
    await serve(up, b);
    expect(p.counters.connectionsOpened).toBe(1);
  });

  it('a cancelled waiter gives back its queue slot and is never served', async () => {
    const up = await heldUpstream();
    const budget: PendingBudget = { pending: 0, max: 2 };
    const p = makePool(up.port, { connectionsPerWorker: 1 }, budget);
    sent(p, '/a');
    const gone = sent(p, '/gone');
    const next = sent(p, '/next');
    expect(budget.pending).toBe(2);
    p.cancel(gone);
    p.cancel(gone); // twice: no double refund
    expect(budget.pending).toBe(1);
    await expect.poll(() => up.held.has('/a')).toBe(true);
    up.answer('/a');
    await expect.poll(() => up.held.has('/next')).toBe(true);
    expect(gone.channels).toEqual([]);
    await serve(up, next);
  });

  it('drain closes idle connections now, busy ones when done, after serving requests queued before it', async () => {
    const up = await heldUpstream();
    const budget: PendingBudget = { pending: 0, max: 5 };
    const p = makePool(up.port, { connectionsPerWorker: 2 }, budget);
    sent(p, '/idle');
    await expect.poll(() => up.held.has('/idle')).toBe(true);
    up.answer('/idle');
    await expect.poll(() => p.idleCount).toBe(1);
    const busy = sent(p, '/busy'); // takes the idle connection
    const other = sent(p, '/other'); // opens the second
    const queued = sent(p, '/queued'); // waits
    expect(p.open).toBe(2);
    expect(budget.pending).toBe(1);
    p.drain();
    expect(p.draining).toBe(true);
    await expect.poll(() => up.held.size).toBe(2);
    up.answer('/busy');
    await expect.poll(() => up.held.has('/queued')).toBe(true); // served on the freed connection
    await serve(up, other);
    expect(p.open).toBe(1); // /other's connection closed instead of going idle
    await serve(up, queued);
    expect(p.open).toBe(0);
    expect(p.idleCount).toBe(0);
    expect(busy.ended && queued.status === 200).toBe(true);
  });

  it('drain with only idle connections closes them at once', async () => {
    const upstream = await upstreamFor((r) => respond(r.socket));
    const p = makePool(upstream.port);
    sent(p);
    await expect.poll(() => p.idleCount).toBe(1);
    p.drain();
    expect(p.idleCount).toBe(0);
    expect(p.open).toBe(0);
  });

  it('the idle sweep closes connections unused for idleTimeoutMs, on the injected clock', async () => {
    const upstream = await upstreamFor((r) => respond(r.socket));
    const t = manualTicker(25);
    const p = makePool(upstream.port, { idleTimeoutMs: 5_000 }, { pending: 0, max: 10 }, t);
    sent(p);
    await expect.poll(() => p.idleCount).toBe(1);
    expect(t.ticker.has(p)).toBe(true); // the sweep runs while the pool has connections
    t.advance(4_000);
    expect(p.idleCount).toBe(1);
    t.advance(2_000);
    expect(p.idleCount).toBe(0);
    expect(p.open).toBe(0);
    t.advance(1_000);
    expect(t.ticker.has(p)).toBe(false); // no connections, no sweep
  });

  it('a pooled connection the upstream closed while idle leaves the pool; the next request gets a fresh one', async () => {
    const upstream = await upstreamFor((r) => respond(r.socket));
    const p = makePool(upstream.port);
    const a = sent(p);
    await expect.poll(() => p.idleCount).toBe(1);
    for (const s of upstream.sockets) s.end();
    await expect.poll(() => p.open).toBe(0);
    expect(p.idleCount).toBe(0);
    const b = sent(p);
    await expect.poll(() => b.ended).toBe(true);
    expect(b.channels[0]).not.toBe(a.channels[0]);
    expect(p.counters.connectionsOpened).toBe(2);
  });

  it('reconnect once: a reused connection the upstream drops on its next request fails as reused/awaiting, and a second dispatch gets a fresh connection', async () => {
    // The upstream answers the first request on a socket and drops the socket on the second one:
    // the race of a keep-alive connection closed just as it is reused.
    const upstream = await upstreamFor((r) => (r.nth === 1 ? respond(r.socket, 'fresh') : r.socket.destroy()));
    const p = makePool(upstream.port);
    const warm = sent(p, '/warm');
    await expect.poll(() => p.idleCount).toBe(1);

    // What the exchange does (at most once, bodiless requests only): dispatch again on that failure.
    class ReconnectOnce extends RecordingRequest {
      failures: Array<{ code: string; reused: boolean; awaiting: boolean }> = [];
      override onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void {
        this.failures.push({ code: err.code, reused: ch?.reused ?? false, awaiting: ch?.awaitingResponse ?? false });
        if (this.failures.length === 1 && ch !== null && ch.reused && ch.awaitingResponse && err.code === 'upstream_reset') p.dispatch(this);
        else super.onUpstreamError(err, ch);
      }
    }
    const req = new ReconnectOnce('/again');
    p.dispatch(req);
    await expect.poll(() => req.ended).toBe(true);
    expect(req.failures).toEqual([{ code: 'upstream_reset', reused: true, awaiting: true }]);
    expect(req.body).toBe('fresh');
    expect(req.channels).toHaveLength(2);
    expect(req.channels[0]).toBe(warm.channels[0]);
    expect(req.channels[1]).not.toBe(req.channels[0]);
    expect(req.channels[1]!.reused).toBe(false);
    expect(p.counters.connectionsOpened).toBe(2);
    expect(p.open).toBe(1);
  });

  it('close() ends everything idle and leaves the ticker', async () => {
    const upstream = await upstreamFor((r) => respond(r.socket));
    const t = manualTicker();
    const p = makePool(upstream.port, {}, { pending: 0, max: 10 }, t);
    sent(p);
    await expect.poll(() => p.idleCount).toBe(1);
    p.close();
    expect(p.open).toBe(0);
    expect(t.ticker.has(p)).toBe(false);
    const sockets: net.Socket[] = [...upstream.sockets];
    await expect.poll(() => sockets.every((s) => s.destroyed || s.readableEnded)).toBe(true);
  });
});

// Circuit breaker, fault injection, local rate limits and timeouts against real upstreams
// (one that hangs, one that streams forever). Counts and states, not wall-clock thresholds.

import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar } from '../admin/helpers.js';
import { closeEverything, cluster, clusterView, config, destroyAgents, send, sendMany, startFaulty, tally, type Reply } from './helpers.js';

afterEach(async () => {
  destroyAgents();
  await closeEverything();
});

describe('circuit breaker', () => {
  it('max_requests 2: a third concurrent request fails fast with 503 overflow, counted; after the hung ones finish, requests succeed again', async () => {
    const up = await startFaulty('hang', { mode: 'hang' });
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app' }], [cluster('app', [up.address], { circuit_breaker: { max_requests: 2 } })]),
    );
    const first = send(sc.url('/1'));
    const second = send(sc.url('/2'));
    await expect.poll(() => up.hanging).toBe(2);
    const third = await send(sc.url('/3'));
    expect(third.status).toBe(503);
    expect(third.error).toBe('overflow');
    // Answered while the two others were still held: it never waited for a slot.
    expect(up.hanging).toBe(2);
    expect(up.attempts.length).toBe(2);
    let c = await clusterView(sc, 'app');
    expect(c.active).toBe(2);
    expect(c.overflow_total).toBe(1);

    up.mode = 'ok';
    up.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    const after = await sendMany((i) => sc.url(`/after${i}`), 10, 2);
    expect(tally(after)).toEqual({ '200': 10 });
    c = await clusterView(sc, 'app');
    expect(c.active).toBe(0);
    expect(c.overflow_total).toBe(1);
  });
});

describe('fault injection (node.random_seed, 1 worker)', () => {
  async function run(): Promise<{ abort: Reply[]; upstreamGot: number; url: (p: string) => string; up: Awaited<ReturnType<typeof startFaulty>> }> {
    const up = await startFaulty('app');
    const sc = await startSidecar(
      config(
        [
          { match: { path_prefix: '/abort30' }, cluster: 'app', fault: { abort: { status: 418, percent: 30 } } },
          { match: { path_prefix: '/abort100' }, cluster: 'app', fault: { abort: { status: 500 } } },
          { match: { path_prefix: '/delay' }, cluster: 'app', fault: { delay: { duration_ms: 50, percent: 100 } } },
          { match: { path_prefix: '/' }, cluster: 'app' },
        ],
        [cluster('app', [up.address])],
        { node: { random_seed: 1234 } },
      ),
    );
    // Sequential, so the seeded stream is consumed in request order.
    const abort = await sendMany((i) => sc.url(`/abort30/${i}`), 1000, 1);
    return { abort, upstreamGot: up.attempts.length, url: (p) => sc.url(p), up };
  }

  it('abort 30% over 1000 requests: 30% ± 5% answered with the configured status and x-outrigger-error: fault_injected, reproducibly', async () => {
    const a = await run();
    const aborted = a.abort.filter((r) => r.status === 418);
    expect(aborted.length).toBeGreaterThanOrEqual(250);
    expect(aborted.length).toBeLessThanOrEqual(350);
    for (const r of aborted) expect(r.error).toBe('fault_injected');
    expect(tally(a.abort)).toEqual({ '200': 1000 - aborted.length, '418 fault_injected': aborted.length });
    // The aborted ones never reached the upstream; the rest all did.
    expect(a.upstreamGot).toBe(1000 - aborted.length);

    // 100% abort with status 500: nothing reaches the upstream.
    const before = a.up.attempts.length;
    const all = await sendMany((i) => a.url(`/abort100/${i}`), 20, 4);
    expect(tally(all)).toEqual({ '500 fault_injected': 20 });
    expect(a.up.attempts.length).toBe(before);

    // Same seed, fresh sidecar: the same requests are aborted.
    await closeEverything();
    const b = await run();
    expect(b.abort.map((r) => r.status)).toEqual(a.abort.map((r) => r.status));
  });

  it('delay 100% of 50 ms: every request still reaches the upstream and succeeds, none aborted', async () => {
    const up = await startFaulty('app');
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app', fault: { delay: { duration_ms: 50, percent: 100 } } }], [cluster('app', [up.address])]),
    );
    const replies = await sendMany((i) => sc.url(`/d${i}`), 40, 8);
    expect(tally(replies)).toEqual({ '200': 40 });
    expect(up.attempts.length).toBe(40);
    expect(new Set(up.attempts.map((a) => a.url)).size).toBe(40);
  });
});

describe('local rate limit (1 worker)', () => {
  it('route and listener limits {requests_per_second: 5, burst: 5}: a burst of 20 → 5 or 6 succeed, the rest 429 rate_limited; tokens come back', async () => {
    const up = await startFaulty('app');
    const limit = { requests_per_second: 5, burst: 5 };
    const sc = await startSidecar(
      config(
        [
          { match: { path_prefix: '/limited' }, cluster: 'app', rate_limit: limit },
          { match: { path_prefix: '/' }, cluster: 'app' },
        ],
        [cluster('app', [up.address])],
        { listeners: [{ name: 'capped', address: '127.0.0.1:0', rate_limit: limit, routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }] },
      ),
    );
    for (const [label, url] of [
      ['route', (i: number) => sc.url(`/limited/${i}`)],
      ['listener', (i: number) => sc.url(`/any/${i}`, 'capped')],
    ] as const) {
      const replies = await sendMany(url, 20, 20);
      const ok = replies.filter((r) => r.status === 200).length;
      expect(ok, label).toBeGreaterThanOrEqual(5);
      expect(ok, label).toBeLessThanOrEqual(6);
      expect(tally(replies), label).toEqual({ '200': ok, '429 rate_limited': 20 - ok });
    }
    // Other routes of the main listener are not limited.
    expect(tally(await sendMany((i) => sc.url(`/free/${i}`), 20, 20))).toEqual({ '200': 20 });
    // The bucket refills at 5/s: after a pause, requests pass again.
    await new Promise((r) => setTimeout(r, 450));
    expect((await send(sc.url('/limited/again'))).status).toBe(200);
    expect((await send(sc.url('/x', 'capped'))).status).toBe(200);
  });
});

describe('timeouts', () => {
  it('route timeout → 504 timeout; max_stream_duration_ms cuts a slow stream after its head (abrupt close)', async () => {
    const hung = await startFaulty('hung', { mode: 'hang' });
    const streamer = await startFaulty('stream', { mode: 'slow-stream', streamEveryMs: 20 });
    const sc = await startSidecar(
      config(
        [
          { match: { path_prefix: '/slow' }, cluster: 'hung', timeout_ms: 200 },
          { match: { path_prefix: '/stream' }, cluster: 'stream', max_stream_duration_ms: 300 },
        ],
        [cluster('hung', [hung.address]), cluster('stream', [streamer.address])],
      ),
    );
    const r = await send(sc.url('/slow'));
    expect(r.status).toBe(504);
    expect(r.error).toBe('timeout');
    await expect.poll(() => hung.hanging).toBe(0); // the upstream request was abandoned

    const outcome = await new Promise<{ status: number; body: string; how: string }>((resolve) => {
      const req = http.get(sc.url('/stream'), { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, how: 'clean end' }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, how: 'aborted' }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body, how: 'aborted' }));
      });
      req.on('error', (e) => resolve({ status: 0, body: '', how: `request error ${e.message}` }));
    });
    expect(outcome.status).toBe(200);
    expect(outcome.how).toBe('aborted');
    expect(outcome.body.startsWith('first\n')).toBe(true);
    expect(streamer.attempts.length).toBe(1);
  });
});

// Circuit breaker, fault injection, local rate limits and timeouts against real upstreams
// (one that hangs, one that streams forever). Counts and states, not wall-clock thresholds.

import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, cluster, clusterView, config, send, sendMany, startSidecar, startUpstream, tally, type Reply } from '../helpers/sidecar.js';

afterEach(closeAll); // (keep-alive agents included)

describe('circuit breaker', () => {
  it('max_requests 2: a third concurrent request fails fast with 503 overflow, counted; after the hung ones finish, requests succeed again', async () => {
    const up = await startUpstream('hang', { mode: 'hang' });
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
    expect(up.requests.length).toBe(2);
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
  async function run(): Promise<{ abort: Reply[]; upstreamGot: number; url: (p: string) => string; up: Awaited<ReturnType<typeof startUpstream>> }> {
    const up = await startUpstream('app');
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
    return { abort, upstreamGot: up.requests.length, url: (p) => sc.url(p), up };
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
    const before = a.up.requests.length;
    const all = await sendMany((i) => a.url(`/abort100/${i}`), 20, 4);
    expect(tally(all)).toEqual({ '500 fault_injected': 20 });
    expect(a.up.requests.length).toBe(before);

    // Same seed, fresh sidecar: the same requests are aborted.
    await closeAll();
    const b = await run();
    expect(b.abort.map((r) => r.status)).toEqual(a.abort.map((r) => r.status));
  });

  it('delay 100% of 50 ms: every request still reaches the upstream and succeeds, none aborted', async () => {
    const up = await startUpstream('app');
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app', fault: { delay: { duration_ms: 50, percent: 100 } } }], [cluster('app', [up.address])]),
    );
    const replies = await sendMany((i) => sc.url(`/d${i}`), 40, 8);
    expect(tally(replies)).toEqual({ '200': 40 });
    expect(up.requests.length).toBe(40);
    expect(new Set(up.requests.map((a) => a.url)).size).toBe(40);
  });
});

describe('local rate limit (1 worker)', () => {
  it('route and listener limits {burst: 5} with no refill during the test: a burst of 20 → exactly 5 pass, the rest 429 rate_limited', async () => {
    const up = await startUpstream('app');
    // One token per 1000 s: the bucket cannot refill while the test runs.
    const limit = { requests_per_second: 0.001, burst: 5 };
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
      expect(tally(await sendMany(url, 20, 20)), label).toEqual({ '200': 5, '429 rate_limited': 15 });
      expect(tally(await sendMany(url, 5, 5)), `${label}, still empty`).toEqual({ '429 rate_limited': 5 });
    }
    // Other routes of the main listener are not limited.
    expect(tally(await sendMany((i) => sc.url(`/free/${i}`), 20, 20))).toEqual({ '200': 20 });
    expect(up.requests).toHaveLength(30);
  });

  it('tokens come back: an emptied bucket passes requests again', async () => {
    const up = await startUpstream('app');
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app', rate_limit: { requests_per_second: 1, burst: 1 } }], [cluster('app', [up.address])]),
    );
    // Empty the bucket (a refused request shows it is empty), then wait for a request to pass.
    await expect.poll(async () => tally(await sendMany((i) => sc.url(`/drain/${i}`), 10, 10))['429 rate_limited'] ?? 0).toBeGreaterThan(0);
    await expect.poll(async () => (await send(sc.url('/again'))).status, { timeout: 10_000, interval: 100 }).toBe(200);
    expect(up.requests.at(-1)?.url).toBe('/again');
  });
});

describe('timeouts', () => {
  it('route timeout → 504 timeout; max_stream_duration_ms cuts a slow stream after its head (abrupt close)', async () => {
    const hung = await startUpstream('hung', { mode: 'hang' });
    const streamer = await startUpstream('stream', { mode: 'slow-stream', streamEveryMs: 20 });
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
    expect(streamer.requests.length).toBe(1);
  });
});

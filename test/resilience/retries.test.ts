// Route retries and the cluster retry budget against real upstreams that fail on purpose
// (503, connection refused, reset before the head, hang), counting the attempts each upstream
// saw per x-request-id. Issue 7, "What it must show": retries recover from one bad endpoint and
// are capped by the budget when all are bad.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  attemptsById,
  closeAll,
  cluster,
  clusterView,
  config,
  deadPort,
  RetryMeter,
  send,
  sendMany,
  startSidecar,
  startUpstream,
  tally,
  type Upstream,
} from '../helpers/sidecar.js';

afterEach(closeAll); // (keep-alive agents included)

const FAST_BACKOFF = { backoff_base_ms: 1, backoff_max_ms: 2 };

/** Which upstream took each attempt of each request, e.g. [['bad', 'good'], ['good']]. */
function paths(ups: readonly Upstream[]): string[][] {
  return [...attemptsById(ups).values()].map((list) => list.map((a) => a.upstream));
}

describe('retries recover from one bad endpoint', () => {
  it('one endpoint answers 503: every request succeeds, the bad one was tried, each retry moved to another endpoint, no budget refusal', async () => {
    const bad = await startUpstream('bad', { mode: '503' });
    const good1 = await startUpstream('good1');
    const good2 = await startUpstream('good2');
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 2, on: ['5xx'], ...FAST_BACKOFF } }],
        [cluster('app', [bad.address, good1.address, good2.address])],
      ),
    );
    const replies = await sendMany((i) => sc.url(`/r${i}`), 30, 1);
    expect(tally(replies)).toEqual({ '200': 30 });
    expect(bad.requests.length).toBeGreaterThan(0);
    const ups = [bad, good1, good2];
    for (const p of paths(ups)) {
      // Never the same endpoint twice in a row; the bad one at most once per request.
      for (let i = 1; i < p.length; i++) expect(p[i]).not.toBe(p[i - 1]);
      expect(p.filter((u) => u === 'bad').length).toBeLessThanOrEqual(1);
      expect(p[p.length - 1]).not.toBe('bad');
    }
    const c = await clusterView(sc, 'app');
    expect(c.retries_total).toBe(bad.requests.length);
    expect(c.retry_budget_exhausted_total).toBe(0);
  });

  it('one endpoint refuses connections, another resets before the head: every request succeeds', async () => {
    const refused = `127.0.0.1:${await deadPort()}`;
    const resetting = await startUpstream('reset', { mode: 'reset' });
    const good = await startUpstream('good');
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 2, on: ['connect-failure', 'reset'], ...FAST_BACKOFF } }],
        [cluster('app', [refused, resetting.address, good.address])],
      ),
    );
    const replies = await sendMany((i) => sc.url(`/r${i}`), 30, 1);
    expect(tally(replies)).toEqual({ '200': 30 });
    expect(resetting.requests.length).toBeGreaterThan(0);
    expect(good.requests.length).toBe(30); // every request ended on the good one, once
    const c = await clusterView(sc, 'app');
    // Round robin over three: the refused endpoint was picked first for about a third of the
    // requests, and each such pick cost one retry, as did each reset.
    expect(c.retries_total).toBeGreaterThan(resetting.requests.length);
    expect(c.retry_budget_exhausted_total).toBe(0);
  });

  it('with two endpoints and one bad, the retried request lands on the good one', async () => {
    const bad = await startUpstream('bad', { mode: '503' });
    const good = await startUpstream('good');
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 3, on: ['503'], ...FAST_BACKOFF } }],
        [cluster('app', [bad.address, good.address])],
      ),
    );
    const replies = await sendMany((i) => sc.url(`/r${i}`), 20, 1);
    expect(tally(replies)).toEqual({ '200': 20 });
    const ps = paths([bad, good]);
    const retried = ps.filter((p) => p[0] === 'bad');
    expect(retried.length).toBeGreaterThan(0);
    for (const p of retried) expect(p).toEqual(['bad', 'good']);
    for (const p of ps.filter((q) => q[0] === 'good')) expect(p).toEqual(['good']);
  });

  it('a reset after the response head is not retried: the client sees the truncation', async () => {
    const up = await startUpstream('mid', { mode: 'reset-mid-body' });
    const other = await startUpstream('other', { mode: 'reset-mid-body' });
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 3, on: ['reset', '5xx'], ...FAST_BACKOFF } }],
        [cluster('app', [up.address, other.address])],
      ),
    );
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get(sc.url('/x'), { agent: false }, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => resolve(`end after ${n}`));
        res.on('aborted', () => resolve(`aborted after ${n}`));
        res.on('error', () => resolve(`error after ${n}`));
      });
      req.on('error', (e) => resolve(`request error ${e.message}`));
    });
    expect(outcome).toMatch(/^(aborted|error) after 10$/);
    expect(up.requests.length + other.requests.length).toBe(1);
    expect((await clusterView(sc, 'app')).retries_total).toBe(0);
  });

  it('specific codes: on ["503", "retriable-4xx"] retries 503 and 409 but not 500', async () => {
    const up = await startUpstream('only', { mode: '500' });
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 2, on: ['503', 'retriable-4xx'], ...FAST_BACKOFF } }],
        [cluster('app', [up.address])],
      ),
    );
    // A single endpoint: the retry goes to it again (there is no other).
    expect((await send(sc.url('/a'))).status).toBe(500);
    expect(up.requests.length).toBe(1);
    up.mode = '503';
    expect((await send(sc.url('/b'))).status).toBe(503);
    expect(up.requests.length).toBe(1 + 3);
    up.mode = '409';
    expect((await send(sc.url('/c'))).status).toBe(409);
    expect(up.requests.length).toBe(1 + 3 + 3);
  });
});

describe('what is not retried, and body replay', () => {
  async function setup(): Promise<{ up: Upstream; url: (p: string) => string }> {
    const up = await startUpstream('only', { mode: '503' });
    const retries = { attempts: 2, on: ['5xx'], ...FAST_BACKOFF, max_body_bytes: 1024 };
    const sc = await startSidecar(
      config(
        [
          { match: { path_prefix: '/lenient' }, cluster: 'app', retries: { ...retries, allow_non_idempotent: true } },
          { match: { path_prefix: '/' }, cluster: 'app', retries },
        ],
        [cluster('app', [up.address])],
      ),
    );
    return { up, url: (p) => sc.url(p) };
  }

  /** Sends `body` as chunked (several writes, no content-length). */
  function sendChunked(url: string, method: string, pieces: Buffer[]): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method, agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      for (const p of pieces) req.write(p);
      req.end();
    });
  }

  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

  it('POST is not retried unless the route allows non-idempotent retries', async () => {
    const { up, url } = await setup();
    expect((await send(url('/strict'), { method: 'POST', body: 'hello' })).status).toBe(503);
    expect(up.requests.length).toBe(1);
    expect((await send(url('/strict'), { method: 'PATCH', body: 'hello' })).status).toBe(503);
    expect(up.requests.length).toBe(2);
    expect((await send(url('/strict'), { method: 'GET' })).status).toBe(503);
    expect(up.requests.length).toBe(2 + 3);
    expect((await send(url('/lenient'), { method: 'POST', body: 'hello' })).status).toBe(503);
    expect(up.requests.length).toBe(2 + 3 + 3);
    for (const a of up.requests.slice(5)) expect(a.body.toString()).toBe('hello');
  });

  it('a body larger than max_body_bytes is not retried (content-length and chunked)', async () => {
    const { up, url } = await setup();
    const big = Buffer.alloc(2000, 7);
    expect((await send(url('/put'), { method: 'PUT', body: big })).status).toBe(503);
    expect(up.requests.length).toBe(1);
    expect(up.requests[0]!.body.equals(big)).toBe(true);
    const pieces = [Buffer.alloc(600, 1), Buffer.alloc(600, 2), Buffer.alloc(600, 3)];
    expect(await sendChunked(url('/put'), 'PUT', pieces)).toBe(503);
    expect(up.requests.length).toBe(2);
    expect(up.requests[1]!.body.equals(Buffer.concat(pieces))).toBe(true);
  });

  it('a body under max_body_bytes is replayed byte-exact on every try (content-length and chunked)', async () => {
    const { up, url } = await setup();
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff));
    expect((await send(url('/put'), { method: 'PUT', body })).status).toBe(503);
    expect(up.requests.length).toBe(3);
    for (const a of up.requests) {
      expect(a.complete).toBe(true);
      expect(a.bodySha256).toBe(sha(body));
    }
    const pieces = [body.subarray(0, 300), body.subarray(300, 301), body.subarray(301)];
    expect(await sendChunked(url('/put'), 'PUT', pieces)).toBe(503);
    expect(up.requests.length).toBe(6);
    for (const a of up.requests.slice(3)) expect(a.bodySha256).toBe(sha(body));
    // And a replayed body whose retry succeeds.
    up.script = ['503', 'ok'];
    expect((await send(url('/put'), { method: 'PUT', body })).status).toBe(200);
    expect(up.requests.length).toBe(8);
    for (const a of up.requests.slice(6)) expect(a.bodySha256).toBe(sha(body));
  });
});

describe('per-try timeout', () => {
  it('a hung endpoint times out per try and the retry goes to another endpoint', async () => {
    const hung = await startUpstream('hung', { mode: 'hang' });
    const good = await startUpstream('good');
    const sc = await startSidecar(
      config(
        [
          {
            match: { path_prefix: '/' },
            cluster: 'app',
            timeout_ms: 10_000,
            retries: { attempts: 1, on: ['reset'], per_try_timeout_ms: 150, ...FAST_BACKOFF },
          },
        ],
        [cluster('app', [hung.address, good.address])],
      ),
    );
    const replies = await sendMany((i) => sc.url(`/r${i}`), 6, 1);
    expect(tally(replies)).toEqual({ '200': 6 });
    expect(hung.requests.length).toBeGreaterThan(0);
    for (const p of paths([hung, good])) expect(p[p.length - 1]).toBe('good');
    for (const p of paths([hung, good]).filter((q) => q[0] === 'hung')) expect(p).toEqual(['hung', 'good']);
    // The proxy gave up on the hung tries: nothing is still held open there.
    await expect.poll(() => hung.hanging).toBe(0);
    expect((await clusterView(sc, 'app')).retries_total).toBe(hung.requests.length);
  });
});

describe('retry budget', () => {
  // The rule (src/upstream/retry_budget.ts), 1 worker: a retry may start while
  //   retries in flight < max(min_concurrent, percent% × active requests)     and
  //   retries in the last 10 s < percent% × requests in the last 10 s + min_retries_per_second × 10.
  // Everything below runs well within 10 s, so over N requests: retries ≤ ceil(percent% × N + mrps × 10).
  const budget = { percent: 20, min_retries_per_second: 1, min_concurrent: 3 };
  const cap = (n: number): number => Math.ceil((budget.percent / 100) * n + budget.min_retries_per_second * 10);

  async function allBad(delayMs?: number): Promise<{ ups: Upstream[]; meter: RetryMeter; sc: Awaited<ReturnType<typeof startSidecar>> }> {
    const meter = new RetryMeter();
    const ups = [
      await startUpstream('a', { mode: '503', meter, ...(delayMs === undefined ? {} : { delayMs }) }),
      await startUpstream('b', { mode: '503', meter, ...(delayMs === undefined ? {} : { delayMs }) }),
    ];
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 3, on: ['5xx'], ...FAST_BACKOFF } }],
        [
          cluster(
            'app',
            ups.map((u) => u.address),
            { retry_budget: budget },
          ),
        ],
      ),
    );
    return { ups, meter, sc };
  }

  it('all endpoints bad, sequential: upstream attempts ≤ N + the budget cap; exhaustion is counted', async () => {
    const { ups, meter, sc } = await allBad();
    const n = 40;
    const replies = await sendMany((i) => sc.url(`/r${i}`), n, 1);
    expect(tally(replies)).toEqual({ '503': n }); // the upstream's own 503s, passed on
    const total = ups.reduce((s, u) => s + u.requests.length, 0);
    // Without a budget: n × 4 = 160 attempts.
    expect(total).toBeLessThanOrEqual(n + cap(n));
    // Sequential requests fill the rate budget exactly (nothing else limits them).
    expect(total).toBe(n + cap(n));
    const c = await clusterView(sc, 'app');
    expect(c.retries_total).toBe(total - n);
    expect(meter.retries).toBe(total - n);
    expect(c.retry_budget_exhausted_total).toBeGreaterThan(0);
  });

  it('all endpoints bad, concurrent: the same cap, and retries in flight stay under the concurrency limit', async () => {
    const { ups, meter, sc } = await allBad(20);
    const n = 40;
    const replies = await sendMany((i) => sc.url(`/r${i}`), n, n);
    expect(tally(replies)).toEqual({ '503': n });
    const total = ups.reduce((s, u) => s + u.requests.length, 0);
    expect(total).toBeGreaterThan(n);
    expect(total).toBeLessThanOrEqual(n + cap(n));
    // At most max(min_concurrent, percent% × active) retries at once, active ≤ n.
    expect(meter.max).toBeGreaterThan(0);
    expect(meter.max).toBeLessThanOrEqual(Math.max(budget.min_concurrent, (budget.percent / 100) * n));
    const c = await clusterView(sc, 'app');
    expect(c.retries_total).toBe(total - n);
    expect(c.retry_budget_exhausted_total).toBeGreaterThan(0);
  });

  it('a lone failing request gets all its attempts even with min_concurrent 1 (its own earlier retry is not "another" retry in flight)', async () => {
    const up = await startUpstream('only', { mode: '503' });
    const sc = await startSidecar(
      config(
        [{ match: { path_prefix: '/' }, cluster: 'app', retries: { attempts: 3, on: ['5xx'], ...FAST_BACKOFF } }],
        [cluster('app', [up.address], { retry_budget: { percent: 20, min_retries_per_second: 10, min_concurrent: 1 } })],
      ),
    );
    expect((await send(sc.url('/x'))).status).toBe(503);
    expect(up.requests.length).toBe(4);
    expect((await clusterView(sc, 'app')).retry_budget_exhausted_total).toBe(0);
  });
});

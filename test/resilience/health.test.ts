// Active health checks and passive outlier detection end to end: real upstreams whose /healthz
// or whose answers fail on purpose, verdicts read from GET /clusters, traffic counted at the
// upstreams. Short intervals; every wait polls a state, no assertion on elapsed time.

import { afterEach, describe, expect, it } from 'vitest';
import {
  closeAll,
  cluster,
  clusterView,
  config,
  endpointView,
  eventually,
  send,
  sendMany,
  startSidecar,
  startUpstream,
  tally,
  untilCluster,
  type ClusterOptions,
  type ClusterView,
  type LogEntry,
  type Upstream,
} from '../helpers/sidecar.js';

afterEach(closeAll); // (keep-alive agents included)

const count = (u: Upstream): number => u.requests.length;

/** A sidecar with `workers` workers whose one route sends everything to cluster `app` at `endpoints`. */
function appSidecar(workers: number, endpoints: readonly string[], o: ClusterOptions): ReturnType<typeof startSidecar> {
  return startSidecar(config([{ match: { path_prefix: '/' }, cluster: 'app' }], [cluster('app', endpoints, o)], { node: { workers } }));
}

/** Requests on fresh connections, so that with several workers every worker serves some. */
function fresh(url: (i: number) => string, n: number): Promise<Awaited<ReturnType<typeof send>>[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => send(url(i))));
}

describe('active health checks (2 workers)', () => {
  it('an endpoint failing /healthz leaves the LB set on every worker and rejoins when it passes; all unhealthy → fail open, panicking', async () => {
    const ups = [await startUpstream('a'), await startUpstream('b'), await startUpstream('c')];
    const [a, b, c] = ups as [Upstream, Upstream, Upstream];
    const sc = await appSidecar(
      2,
      ups.map((u) => u.address),
      { health_check: { path: '/healthz', interval_ms: 40, timeout_ms: 500, unhealthy_threshold: 2, healthy_threshold: 2 } },
    );
    await untilCluster(sc, 'app', (v) => v.endpoints.every((e) => e.health_check?.last_checked != null), 'first health checks');
    expect(tally(await fresh((i) => sc.url(`/warm${i}`), 30))).toEqual({ '200': 30 });
    expect(count(b)).toBeGreaterThan(0);

    // b fails its health checks: unhealthy in /clusters, then no more traffic.
    b.health = 'fail';
    let v = await untilCluster(sc, 'app', (x) => !endpointView(x, b.address).healthy, 'b unhealthy');
    expect(endpointView(v, b.address).health_check).toMatchObject({ healthy: false, last_error: 'HTTP 503' });
    expect(endpointView(v, a.address).healthy).toBe(true);
    expect(v.panicking).toBe(false);
    const bBefore = count(b);
    expect(tally(await fresh((i) => sc.url(`/without-b${i}`), 40))).toEqual({ '200': 40 });
    expect(count(b)).toBe(bBefore);
    expect(count(a) + count(c)).toBeGreaterThanOrEqual(40);

    // b passes again: it rejoins.
    b.health = 'pass';
    v = await untilCluster(sc, 'app', (x) => endpointView(x, b.address).healthy, 'b healthy again');
    expect(endpointView(v, b.address).health_check?.healthy).toBe(true);
    expect(tally(await fresh((i) => sc.url(`/with-b${i}`), 40))).toEqual({ '200': 40 });
    expect(count(b)).toBeGreaterThan(bBefore);

    // Every endpoint fails: fail open (traffic still served) and say so.
    for (const u of ups) u.health = 'fail';
    await untilCluster(sc, 'app', (x) => x.endpoints.every((e) => !e.healthy), 'all unhealthy');
    const before = ups.map(count);
    expect(tally(await fresh((i) => sc.url(`/panic${i}`), 30))).toEqual({ '200': 30 });
    expect(ups.reduce((s, u) => s + count(u), 0) - before.reduce((s, n) => s + n, 0)).toBe(30);
    v = await clusterView(sc, 'app');
    expect(v.panicking).toBe(true);

    // And back out of panic once one passes.
    a.health = 'pass';
    await untilCluster(sc, 'app', (x) => endpointView(x, a.address).healthy, 'a healthy again');
    const bNow = count(b);
    const cNow = count(c);
    expect(tally(await fresh((i) => sc.url(`/calm${i}`), 20))).toEqual({ '200': 20 });
    expect(count(b) + count(c)).toBe(bNow + cNow);
    v = await clusterView(sc, 'app');
    expect(v.panicking).toBe(false);
  });

  it('checks run once per sidecar, not once per worker', async () => {
    // A checker has at most one check in flight per endpoint. `held` never answers its checks
    // (timeout far beyond the test), so one checker sends it exactly one, however long the test
    // runs; a checker per worker would send one each. `ticking` answers, and its fifth check shows
    // the checkers have been at work for four intervals.
    const held = await startUpstream('held');
    held.health = 'hang';
    const ticking = await startUpstream('ticking');
    await appSidecar(2, [held.address, ticking.address], { health_check: { interval_ms: 50, timeout_ms: 600_000 } });
    await expect.poll(() => ticking.healthChecks.length).toBeGreaterThanOrEqual(5);
    expect(held.healthChecks).toHaveLength(1);
    expect(held.hanging).toBe(1);
    expect([held.requests.length, ticking.requests.length]).toEqual([0, 0]); // health checks are not counted as traffic
  });
});

/** Ejection log lines: the sidecar's own time of the ejection. */
function ejections(entries: LogEntry[], address: string): LogEntry[] {
  return entries.filter((e) => e.msg === 'endpoint ejected (outlier detection)' && e['address'] === address);
}

describe('outlier detection', () => {
  it('consecutive_5xx 3: the failing endpoint is ejected (no traffic while ejected), returns after base_ejection_ms, and a repeat ejection lasts twice as long', async () => {
    const bad = await startUpstream('bad', { mode: '500' });
    const goods = [await startUpstream('g1'), await startUpstream('g2')];
    const base = 1500;
    const sc = await appSidecar(1, [bad.address, ...goods.map((g) => g.address)], {
      outlier_detection: { consecutive_5xx: 3, consecutive_gateway_failure: 100, interval_ms: 500, base_ejection_ms: base, max_ejection_percent: 50 },
    });
    // Traffic until the worker has the verdict.
    let n = 0;
    const untilEjected = (): Promise<ClusterView> =>
      eventually(async () => {
        await send(sc.url(`/r${n++}`));
        const x = await clusterView(sc, 'app');
        return endpointView(x, bad.address).ejected ? x : undefined;
      }, 'bad ejected');
    let v = await untilEjected();
    expect(count(bad)).toBeGreaterThanOrEqual(3);
    expect(endpointView(v, bad.address).outlier).toMatchObject({ ejected: true, ejections_total: 1 });
    const firstUntil = Date.parse(endpointView(v, bad.address).outlier!.ejected_until!);
    const badBefore = count(bad);
    // While that ejection lasts, every request goes to the others. A request is judged only when
    // the view taken after its answer still shows the same ejection.
    let during = 0;
    for (let i = 0; i < 20; i++) {
      expect((await send(sc.url(`/ejected${i}`))).status).toBe(200);
      const e = endpointView(await clusterView(sc, 'app'), bad.address);
      if (!e.ejected || e.outlier?.ejections_total !== 1) break;
      during++;
      expect(count(bad)).toBe(badBefore);
    }
    expect(during).toBeGreaterThan(0);

    // It returns after base_ejection_ms...
    v = await untilCluster(sc, 'app', (x) => !endpointView(x, bad.address).ejected, 'bad returns from ejection');
    expect(endpointView(v, bad.address).outlier).toMatchObject({ ejected: false, ejections_total: 1 });
    await sc.waitForLog((e) => e.msg === 'endpoint returns from ejection' && e['address'] === bad.address);
    // ...gets traffic again, fails again, and is ejected for 2 × base.
    v = await untilEjected();
    expect(count(bad)).toBeGreaterThan(badBefore);
    expect(endpointView(v, bad.address).outlier?.ejections_total).toBe(2);
    // Each ejection's length, by the sidecar's own clock: ejected_until minus the time it logged the ejection.
    const logs = ejections(sc.entries(), bad.address);
    expect(logs.length).toBe(2);
    const loggedAt = (e: LogEntry): number => Date.parse(String(e['time']));
    // The log line comes after the ejection was decided, so each measure is at most the ejection
    // time; the second is longer than any first one could be (the exact doubling is shown on an
    // injected clock in test/health/outlier.test.ts).
    const first = firstUntil - loggedAt(logs[0]!);
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(base);
    const second = Date.parse(endpointView(v, bad.address).outlier!.ejected_until!) - loggedAt(logs[1]!);
    expect(second).toBeGreaterThan(base);
    expect(second).toBeLessThanOrEqual(2 * base);
  });

  it('2 workers: an endpoint failing on both workers (503s, consecutive_gateway_failure) is ejected everywhere', async () => {
    const bad = await startUpstream('bad', { mode: '503' });
    const goods = [await startUpstream('g1'), await startUpstream('g2')];
    const sc = await appSidecar(2, [bad.address, ...goods.map((g) => g.address)], {
      outlier_detection: { consecutive_5xx: 100, consecutive_gateway_failure: 4, interval_ms: 1000, base_ejection_ms: 10_000, max_ejection_percent: 50 },
    });
    let round = 0;
    await eventually(async () => {
      await fresh((i) => sc.url(`/r${round}-${i}`), 6);
      round++;
      return endpointView(await clusterView(sc, 'app'), bad.address).ejected ? true : undefined;
    }, 'bad ejected');
    // The merged view ORs `ejected`: wait until no worker still has it in its LB set (its traffic stops).
    const before = count(bad);
    const replies = await fresh((i) => sc.url(`/after${i}`), 60);
    expect(tally(replies)).toEqual({ '200': 60 });
    expect(count(bad)).toBe(before);
    const v = await clusterView(sc, 'app');
    expect(endpointView(v, bad.address).outlier).toMatchObject({ ejected: true, ejections_total: 1 });
  });

  it('max_ejection_percent keeps endpoints in the set: with 3 endpoints all failing and the default 10%, exactly one is ejected', async () => {
    const ups = [await startUpstream('a', { mode: '500' }), await startUpstream('b', { mode: '500' }), await startUpstream('c', { mode: '500' })];
    const sc = await appSidecar(
      1,
      ups.map((u) => u.address),
      { outlier_detection: { consecutive_5xx: 2, interval_ms: 1000, base_ejection_ms: 10_000 } },
    );
    // Keep failing on every endpoint long past the point where each has tripped its counter.
    const replies = await sendMany((i) => sc.url(`/r${i}`), 60, 1);
    expect(tally(replies)).toEqual({ '500': 60 });
    const v = await clusterView(sc, 'app');
    expect(v.endpoints.filter((e) => e.ejected).length).toBe(1);
    expect(v.endpoints.filter((e) => e.outlier?.ejected === true).length).toBe(1);
    const ejected = v.endpoints.find((e) => e.ejected)!;
    const others = ups.filter((u) => u.address !== ejected.address);
    const before = others.map(count);
    expect(tally(await sendMany((i) => sc.url(`/more${i}`), 20, 1))).toEqual({ '500': 20 });
    expect(others.reduce((s, u) => s + count(u), 0) - before.reduce((s, x) => s + x, 0)).toBe(20);
  });
});

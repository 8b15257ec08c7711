// Active health checks against real node:http upstreams on 127.0.0.1 with short intervals.
// Every wait is bounded (vi.waitFor); no assertion depends on how fast the machine is: that no
// more checks come is shown by a held check being aborted with no timer scheduled after it, or by
// another endpoint's checks going on.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { HealthChecker, firstDelayMs, jitteredDelayMs, type HealthCheckState } from '../../src/health/health_checker.js';
import { USER_AGENT } from '../../src/health/probes.js';
import { deadPort, startUpstream, waitFor, type Upstream } from '../helpers/sidecar.js';
import type { ClusterSpec, HealthCheckSpec } from '../../src/config/types.js';
import { cluster, endpoint, healthCheck } from './helpers.js';

type Event = [cluster: string, address: string, healthy: boolean];

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function upstream(): Promise<Upstream> {
  const up = await startUpstream();
  cleanup.push(() => up.close());
  return up;
}

/** A checker recording its events, and each endpoint's state at the moment of each event. */
function checker(rng?: () => number): { hc: HealthChecker; events: Event[]; atEvent: HealthCheckState[] } {
  const events: Event[] = [];
  const atEvent: HealthCheckState[] = [];
  const hc: HealthChecker = new HealthChecker(
    (c, a, healthy) => {
      events.push([c, a, healthy]);
      const s = hc.states().find((x) => x.cluster === c && x.address === a);
      if (s !== undefined) atEvent.push(s);
    },
    rng === undefined ? {} : { jitterRng: rng },
  );
  cleanup.push(() => hc.close());
  return { hc, events, atEvent };
}

/** Cluster `api` with these upstreams as endpoints, checked with `healthCheck(spec)`. */
function checked(ups: ReadonlyArray<{ readonly port: number }>, spec: Partial<HealthCheckSpec> = {}): ClusterSpec[] {
  return [
    cluster(
      'api',
      ups.map((u) => endpoint('127.0.0.1', u.port)),
      { healthCheck: healthCheck(spec) },
    ),
  ];
}

/** An upstream answering its checks as `health` says, under a checker started with `spec`. */
async function checking(health: Upstream['health'], spec: Partial<HealthCheckSpec>): Promise<{ up: Upstream; hc: HealthChecker; events: Event[] }> {
  const up = await upstream();
  up.health = health;
  const { hc, events } = checker();
  hc.update(checked([up], spec));
  return { up, hc, events };
}

function stateOf(hc: HealthChecker, address: string): HealthCheckState {
  const s = hc.states().find((x) => x.address === address);
  if (s === undefined) throw new Error(`no state for ${address}`);
  return s;
}

describe('HealthChecker', () => {
  it('keeps a 200 endpoint healthy and sends GET path with host and user-agent', async () => {
    const up = await upstream();
    const { hc, events } = checker();
    hc.update(checked([up], { path: '/ready?x=1' }));
    await waitFor(() => stateOf(hc, up.address).consecutive_successes >= 4, '4 passing checks');
    expect(events).toEqual([]);
    const s = stateOf(hc, up.address);
    expect(s).toMatchObject({ cluster: 'api', healthy: true, consecutive_failures: 0, last_error: null });
    expect(typeof s.last_checked).toBe('string');
    const req = up.healthChecks[0]!;
    expect(req.method).toBe('GET');
    expect(req.url).toBe('/ready?x=1');
    expect(req.headers.host).toBe(up.address);
    expect(req.headers['user-agent']).toBe(USER_AGENT);
    expect(req.headers.connection).toBe('close');
  });

  it('goes unhealthy after unhealthyThreshold failures and back after healthyThreshold passes', async () => {
    const up = await upstream();
    const { hc, events, atEvent } = checker();
    hc.update(checked([up], { unhealthyThreshold: 3, healthyThreshold: 2 }));
    await waitFor(() => stateOf(hc, up.address).consecutive_successes >= 2, 'passing checks');

    up.health = 'fail';
    await waitFor(() => events.length === 1, 'unhealthy event');
    expect(events).toEqual([['api', up.address, false]]);
    expect(atEvent[0]).toMatchObject({ healthy: false, consecutive_failures: 3, consecutive_successes: 0, last_error: 'HTTP 503' });
    await waitFor(() => stateOf(hc, up.address).consecutive_failures >= 5, 'more failures');
    expect(events).toHaveLength(1); // reported once

    up.health = 'pass';
    await waitFor(() => events.length === 2, 'healthy event');
    expect(events[1]).toEqual(['api', up.address, true]);
    expect(atEvent[1]).toMatchObject({ healthy: true, consecutive_successes: 2, consecutive_failures: 0, last_error: null });
    await waitFor(() => stateOf(hc, up.address).consecutive_successes >= 4, 'more passes');
    expect(events).toHaveLength(2);
  });

  it('counts a refused connection as a failure', async () => {
    const port = await deadPort();
    const { hc, events } = checker();
    const address = `127.0.0.1:${port}`;
    hc.update(checked([{ port }], { unhealthyThreshold: 2 }));
    await waitFor(() => events.length === 1, 'unhealthy event');
    expect(events).toEqual([['api', address, false]]);
    expect(stateOf(hc, address).last_error).toMatch(/ECONNREFUSED/);
  });

  it('counts a hanging endpoint as a failure after timeoutMs', async () => {
    const { up, hc, events } = await checking('hang', { timeoutMs: 30, unhealthyThreshold: 2 });
    await waitFor(() => events.length === 1, 'unhealthy event');
    expect(events).toEqual([['api', up.address, false]]);
    expect(stateOf(hc, up.address).last_error).toBe('timeout after 30 ms');
  });

  it('checks each endpoint of a cluster on its own', async () => {
    const good = await upstream();
    const bad = await upstream();
    bad.health = 'fail';
    const { hc, events } = checker();
    hc.update(checked([good, bad]));
    await waitFor(() => events.length === 1, 'unhealthy event');
    await waitFor(() => stateOf(hc, good.address).consecutive_successes >= 4, 'good endpoint passes');
    expect(events).toEqual([['api', bad.address, false]]);
    expect(stateOf(hc, good.address).healthy).toBe(true);
  });

  it('stops checking a cluster removed by update()', async () => {
    const { up, hc, events } = await checking('hang', { timeoutMs: 60_000 });
    await waitFor(() => up.hanging === 1, 'a check in flight');
    const timers = vi.spyOn(globalThis, 'setTimeout');
    hc.update([]);
    await waitFor(() => up.hanging === 0, 'the check in flight aborted');
    expect(timers).not.toHaveBeenCalled(); // no next check scheduled
    expect(up.healthChecks).toHaveLength(1);
    expect(hc.states()).toEqual([]);
    expect(events).toEqual([]);
  });

  it('stops checking a removed endpoint and keeps the state of one that stays', async () => {
    const stay = await upstream();
    const gone = await upstream();
    stay.health = 'fail';
    gone.health = 'hang';
    const { hc, events } = checker();
    hc.update(checked([stay, gone], { unhealthyThreshold: 2, timeoutMs: 60_000 }));
    await waitFor(() => events.length === 1 && gone.hanging === 1, 'stay unhealthy, gone checked');

    hc.update(checked([stay], { unhealthyThreshold: 2, intervalMs: 25 }));
    expect(hc.states().map((s) => s.address)).toEqual([stay.address]);
    expect(stateOf(hc, stay.address).healthy).toBe(false);
    await waitFor(() => gone.hanging === 0, "gone's check in flight aborted");
    const failures = stateOf(hc, stay.address).consecutive_failures;
    await waitFor(() => stateOf(hc, stay.address).consecutive_failures >= failures + 3, 'checks of stay continue');
    expect(gone.healthChecks).toHaveLength(1);
    expect(events).toEqual([['api', stay.address, false]]);
  });

  it('reports unhealthy endpoints healthy when healthCheck becomes null, then stops', async () => {
    const up = await upstream();
    up.health = 'fail';
    const { hc, events } = checker();
    const ep = endpoint('127.0.0.1', up.port);
    hc.update([cluster('api', [ep], { healthCheck: healthCheck({ unhealthyThreshold: 1, timeoutMs: 60_000 }) })]);
    await waitFor(() => events.length === 1, 'unhealthy event');
    up.health = 'hang';
    await waitFor(() => up.hanging === 1, 'a check in flight');
    const timers = vi.spyOn(globalThis, 'setTimeout');
    hc.update([cluster('api', [ep])]);
    expect(events).toEqual([
      ['api', up.address, false],
      ['api', up.address, true],
    ]);
    expect(hc.states()).toEqual([]);
    await waitFor(() => up.hanging === 0, 'the check in flight aborted');
    expect(timers).not.toHaveBeenCalled();
  });

  it('close() aborts an in-flight check and fires nothing afterwards', async () => {
    const { up, hc, events } = await checking('hang', { timeoutMs: 60_000, unhealthyThreshold: 1 });
    await waitFor(() => up.hanging === 1, 'a hanging check');
    const timers = vi.spyOn(globalThis, 'setTimeout');
    hc.close();
    await waitFor(() => up.hanging === 0, 'the check aborted');
    expect(timers).not.toHaveBeenCalled();
    expect(events).toEqual([]); // the abort is not a failure
    expect(up.healthChecks).toHaveLength(1);
  });

  it('jitters each delay within ±10% of the interval', () => {
    for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
      const d = jitteredDelayMs(1000, () => r);
      expect(d).toBeGreaterThanOrEqual(900);
      expect(d).toBeLessThan(1100);
      const f = firstDelayMs(1000, () => r);
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(100);
    }
    expect(jitteredDelayMs(1000, () => 0)).toBe(900);
    expect(jitteredDelayMs(1000, () => 0.5)).toBe(1000);
    // Out-of-range RNG output is clamped, never outside the window.
    expect(jitteredDelayMs(1000, () => 7)).toBe(1100);
    expect(jitteredDelayMs(1000, () => Number.NaN)).toBe(1000);
  });

  it('schedules its checks with jittered delays from jitterRng', async () => {
    const up = await upstream();
    let i = 0;
    const seq = [0, 0.999, 0.1, 0.9, 0.5, 0.3, 0.7];
    const rng = (): number => seq[i++ % seq.length]!;
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const { hc } = checker(rng);
    const interval = 40;
    const timeout = 777;
    hc.update(checked([up], { intervalMs: interval, timeoutMs: timeout }));
    await waitFor(() => stateOf(hc, up.address).consecutive_successes >= 4, 'checks');
    hc.close();
    const delays = spy.mock.calls.map((c) => c[1]).filter((d): d is number => typeof d === 'number' && d !== timeout);
    expect(delays.length).toBeGreaterThanOrEqual(4);
    const [first, ...next] = delays;
    expect(first).toBe(0); // rng 0 → at once
    for (const d of next) {
      expect(d).toBeGreaterThanOrEqual(interval * 0.9);
      expect(d).toBeLessThan(interval * 1.1);
    }
    expect(next[0]).toBeCloseTo(interval * (0.9 + 0.2 * 0.999));
    expect(next[1]).toBeCloseTo(interval * (0.9 + 0.2 * 0.1));
  });
});

// Event-loop delay end to end: a real sidecar reports every thread (main, worker-1) in /stats and
// /metrics, and a request to a test_stall route named stall_<N>ms (blocks the worker N ms) raises
// worker-1's max to at least N minus one sampling period, above what it read before. The worker is
// idle before the stall, so the period in force may be the longest (LOOP_DELAY_IDLE_MS).
import { afterAll, describe, expect, it } from 'vitest';
import { LOOP_DELAY_IDLE_MS } from '../../src/stats/loop_delay.js';
import { adminCall, closeAll, cluster, config, httpGet, startSidecar, startUpstream } from '../helpers/sidecar.js';

const STALL_MS = 2500; // well under node.worker_stall_ms (5 s): the watchdog leaves the worker alone

interface ThreadRow {
  thread: string;
  since_start: { samples: number; max_ms: number | null; p99_ms: number | null };
  last_interval: { samples: number; interval_ms: number };
}

describe('event-loop delay per thread', () => {
  afterAll(closeAll);

  it('/stats and /metrics show main and worker-1; a 2.5 s stall raises worker-1 max above what it was', async () => {
    const app = await startUpstream();
    const routes = [
      { name: `stall_${STALL_MS}ms`, match: { path: '/stall' }, cluster: 'app', test_stall: true },
      { match: { path_prefix: '/' }, cluster: 'app' },
    ];
    const sc = await startSidecar(config(routes, [cluster('app', [app.address])]), { env: { OUTRIGGER_ENABLE_TEST_HOOKS: '1' } });
    const rows = async (): Promise<ThreadRow[]> => (await adminCall(sc, 'GET', '/stats')).json.event_loop_delay as ThreadRow[];
    const worker = async (): Promise<ThreadRow | undefined> => (await rows()).find((r) => r.thread === 'worker-1');

    await expect.poll(async () => (await rows()).map((r) => r.thread), { timeout: 10_000, interval: 100 }).toEqual(['main', 'worker-1']);
    const before = (await worker())!;
    expect(before.since_start.samples).toBeGreaterThan(0);
    expect(before.last_interval.samples).toBeGreaterThan(0);
    const beforeMax = before.since_start.max_ms ?? 0;

    expect((await httpGet(sc.url('/stall'), { timeoutMs: 20_000 })).status).toBe(200);
    const atLeast = STALL_MS - LOOP_DELAY_IDLE_MS;
    await expect.poll(async () => (await worker())?.since_start.max_ms ?? 0, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(atLeast);
    const after = (await worker())!;
    expect(after.since_start.max_ms!).toBeGreaterThan(beforeMax);
    expect(after.since_start.samples).toBeGreaterThan(before.since_start.samples);

    const metrics = (await httpGet(`${sc.admin}/metrics`)).body.toString();
    expect(metrics).toContain('# TYPE outrigger_event_loop_delay_seconds summary');
    expect(metrics).toMatch(/^outrigger_event_loop_delay_seconds_count\{thread="main"\} \d+$/m);
    const max = Number(/^outrigger_event_loop_delay_seconds\{thread="worker-1",quantile="1"\} (\S+)$/m.exec(metrics)?.[1]);
    expect(max).toBeGreaterThanOrEqual(atLeast / 1000);
  });
});

// Requests and accepted connections per worker in GET /stats (`workers`): the aggregator counts
// each worker's finished requests from its deltas and sums its accepted-connection counters over
// listeners; a real 2-worker sidecar under a few hundred requests on several keep-alive
// connections reports per-worker counts that add up to the listener totals (how the kernel
// spreads connections between the workers is not asserted).
import { afterAll, describe, expect, it } from 'vitest';
import { StatsAggregator } from '../../src/stats/aggregate.js';
import { WorkerStats } from '../../src/stats/worker_stats.js';
import { adminCall, closeAll, proxyConfig, sendMany, startSidecar, startUpstream, tally } from '../helpers/sidecar.js';

describe('per-worker counts (aggregator)', () => {
  it('sums each worker’s requests over its deltas and its accepted connections over listeners', () => {
    const agg = new StatsAggregator();
    const w1 = new WorkerStats(1);
    const w2 = new WorkerStats(2);
    const route = (w: WorkerStats) => w.route('l', 'r');
    for (let i = 0; i < 3; i++) w1.record(w1.listener('l'), route(w1), null, 200, 100, 0, 0, 0);
    w2.record(w2.listener('m'), null, null, 404, 100, 0, 0, 0);
    agg.apply({ ...w1.takeDelta(), counters: [{ metric: 'outrigger_listener_connections_accepted_total', labels: { listener: 'l', worker: '1' }, value: 2 }] });
    agg.apply(w2.takeDelta());
    w1.record(w1.listener('l'), route(w1), null, 200, 100, 0, 0, 0);
    agg.apply({
      ...w1.takeDelta(),
      counters: [
        { metric: 'outrigger_listener_connections_accepted_total', labels: { listener: 'l', worker: '1' }, value: 1 },
        { metric: 'outrigger_listener_connections_accepted_total', labels: { listener: 'm', worker: '1' }, value: 4 },
      ],
    });
    // A worker that posted only its event-loop delay is listed with 0 requests.
    agg.apply({ workerId: 3, cells: [], clusters: [] });
    expect(agg.toJSON().workers).toEqual([
      { worker: 1, requests: 4, connections_accepted: 7 },
      { worker: 2, requests: 1, connections_accepted: null },
      { worker: 3, requests: 0, connections_accepted: null },
    ]);
  });

  it('is empty before any worker reported', () => {
    expect(new StatsAggregator().toJSON().workers).toEqual([]);
  });
});

interface WorkerRow {
  worker: number;
  requests: number;
  connections_accepted: number | null;
}

describe('per-worker counts (2-worker sidecar)', () => {
  afterAll(closeAll);

  it('requests and accepted connections per worker add up to the listener totals', async () => {
    const app = await startUpstream('app');
    const sc = await startSidecar(proxyConfig([app.address], { workers: 2 }));
    const N = 300;
    const answers = await sendMany(() => sc.url('/w'), N, 8);
    expect(tally(answers)).toEqual({ '200': N });

    const stats = async (): Promise<{ workers: WorkerRow[]; listenerRequests: number; accepted: number }> => {
      const j = (await adminCall(sc, 'GET', '/stats')).json as {
        workers: WorkerRow[];
        listeners: { requests: number }[];
        connections: { accepted_by_worker: Record<string, number> }[];
      };
      return {
        workers: j.workers,
        listenerRequests: j.listeners.reduce((s, l) => s + l.requests, 0),
        accepted: j.connections.reduce((s, c) => s + Object.values(c.accepted_by_worker).reduce((a, b) => a + b, 0), 0),
      };
    };
    // Workers post their deltas once a second.
    await expect.poll(async () => (await stats()).listenerRequests, { timeout: 10_000, interval: 200 }).toBeGreaterThanOrEqual(N);
    await expect.poll(async () => (await stats()).workers.map((w) => w.worker), { timeout: 10_000, interval: 200 }).toEqual([1, 2]);
    const s = await stats();
    expect(s.workers.reduce((a, w) => a + w.requests, 0)).toBe(s.listenerRequests);
    const connections = s.workers.map((w) => w.connections_accepted);
    for (const c of connections) expect(c).not.toBeNull();
    expect(connections.reduce<number>((a, c) => a + (c ?? 0), 0)).toBe(s.accepted);
    expect(s.accepted).toBeGreaterThanOrEqual(8);
  }, 30_000);
});

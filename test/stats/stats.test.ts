// Worker recording → delta → main-thread merge: exact counts, exact histogram merges, resets,
// structured-clone safety, stable handles, gauges per worker.
import { describe, expect, it } from 'vitest';
import { Int32Histogram } from 'hdr-histogram-js';
import { StatsAggregator } from '../../src/stats/aggregate.js';
import { WorkerStats } from '../../src/stats/worker_stats.js';

/** Deterministic pseudo-random latencies (µs), spread over 50 µs .. ~2 s. */
function latencies(seed: number, n: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const u = x / 2147483648;
    out.push(50 + Math.floor(u ** 4 * 2_000_000));
  }
  return out;
}

function refPercentileMs(values: readonly number[], p: number): number {
  const h = new Int32Histogram(1, 60_000_000, 3);
  for (const v of values) h.recordValue(v);
  return h.getValueAtPercentile(p) / 1000;
}

/** Worker stats with one listener `listener`, its route `r` and a cluster `c`. */
function oneOfEach(listener: string) {
  const ws = new WorkerStats(1);
  return { ws, l: ws.listener(listener), r: ws.route(listener, 'r'), c: ws.cluster('c') };
}

describe('WorkerStats + StatsAggregator', () => {
  it('adds counts exactly and merges histograms exactly across workers', () => {
    const a = new WorkerStats(1);
    const b = new WorkerStats(2);
    const valuesA = latencies(1, 3000);
    const valuesB = latencies(2, 5000).map((v) => v * 3); // a different distribution
    const upstreamA = valuesA.map((v) => Math.floor(v / 2));
    const upstreamB = valuesB.map((v) => Math.floor(v / 2));

    for (const [ws, values, upstream] of [
      [a, valuesA, upstreamA],
      [b, valuesB, upstreamB],
    ] as const) {
      const l = ws.listener('outbound');
      const r = ws.route('outbound', 'api');
      const c = ws.cluster('api-v1');
      values.forEach((v, i) => {
        const status = i % 10 === 0 ? 503 : i % 10 === 1 ? 404 : i % 10 === 2 ? 0 : 200;
        ws.record(l, r, c, status, v, upstream[i]!, 10, 100);
      });
      ws.upstreamConnectFailure(c);
      ws.upstreamTimeout(c);
      ws.upstreamReset(c);
    }

    const agg = new StatsAggregator();
    agg.apply(a.takeDelta());
    agg.apply(b.takeDelta());
    const json = agg.toJSON();

    const all = [...valuesA, ...valuesB];
    const route = json.routes.find((r) => r.listener === 'outbound' && r.name === 'api');
    const cluster = json.clusters.find((c) => c.name === 'api-v1');
    const listener = json.listeners.find((l) => l.name === 'outbound');
    expect(route).toBeDefined();
    expect(cluster).toBeDefined();
    expect(listener).toBeDefined();
    for (const t of [route!, cluster!, listener!]) {
      expect(t.requests).toBe(8000);
      expect(t.responses).toEqual({ none: 800, '1xx': 0, '2xx': 5600, '3xx': 0, '4xx': 800, '5xx': 800 });
      // SMI: success = not 5xx (4xx count as success); no response counts as failure.
      expect(t.success_count).toBe(6400);
      expect(t.failure_count).toBe(1600);
      expect(t.success_rate).toBeCloseTo(0.8, 12);
      expect(t.bytes_in).toBe(80_000);
      expect(t.bytes_out).toBe(800_000);
      // The merge is exact: the same percentiles as one histogram fed every value.
      expect(t.p50_response_latency).toBe(refPercentileMs(all, 50));
      expect(t.p90_response_latency).toBe(refPercentileMs(all, 90));
      expect(t.p99_response_latency).toBe(refPercentileMs(all, 99));
      expect(t.p99_9_response_latency).toBe(refPercentileMs(all, 99.9));
      expect(t.mean_response_latency).toBeCloseTo(all.reduce((s, v) => s + v, 0) / all.length / 1000, 9);
    }
    // ...and not the average of the two workers' percentiles.
    const averaged = (refPercentileMs(valuesA, 99) + refPercentileMs(valuesB, 99)) / 2;
    expect(route!.p99_response_latency).not.toBe(averaged);

    const allUpstream = [...upstreamA, ...upstreamB];
    expect(cluster!.upstream.requests).toBe(8000);
    expect(cluster!.upstream.p50_response_latency).toBe(refPercentileMs(allUpstream, 50));
    expect(cluster!.upstream.p99_9_response_latency).toBe(refPercentileMs(allUpstream, 99.9));
    expect(cluster!.connect_failures).toBe(2);
    expect(cluster!.timeouts).toBe(2);
    expect(cluster!.resets).toBe(2);
  });

  it('takeDelta resets: a second delta carries only what came after the first', () => {
    const { ws, l, r, c } = oneOfEach('in');
    ws.record(l, r, c, 200, 1000, 500, 1, 2);
    ws.upstreamTimeout(c);
    const first = ws.takeDelta();
    expect(first.cells).toHaveLength(1);
    expect(first.cells[0]!.requests).toBe(1);
    expect(first.clusters[0]!.timeouts).toBe(1);

    const empty = ws.takeDelta();
    expect(empty.cells).toHaveLength(0);
    expect(empty.clusters).toHaveLength(0);

    ws.record(l, r, c, 500, 2000, 0, 1, 2);
    const second = ws.takeDelta();
    expect(second.cells).toHaveLength(1);
    expect(second.cells[0]!.requests).toBe(1);
    expect(second.cells[0]!.classes).toEqual([0, 0, 0, 0, 0, 1]);
    expect(second.cells[0]!.durationSumMicros).toBe(2000);
    // upstreamMicros 0 = no upstream exchange: nothing recorded for the cluster.
    expect(second.clusters).toHaveLength(0);

    const agg = new StatsAggregator();
    for (const d of [first, empty, second]) agg.apply(d);
    const route = agg.toJSON().routes[0]!;
    expect(route.requests).toBe(2);
    expect(route.p50_response_latency).toBe(1);
    // Below 2048 µs hdr slots are 1 µs wide, so the percentiles are the recorded values.
    expect(route.p99_response_latency).toBe(2);
  });

  it('deltas survive structuredClone (postMessage) unchanged', () => {
    const ws = new WorkerStats(3);
    const c = ws.cluster('c');
    ws.record(ws.listener('l'), ws.route('l', 'r'), c, 200, 1234, 600, 10, 20);
    ws.record(ws.listener('l'), null, null, 404, 50, 0, 10, 20);
    ws.setPoolConnections(c, 4, 3);
    const delta = ws.takeDelta();
    const cloned = structuredClone(delta);
    expect(cloned).toEqual(delta);

    const viaClone = new StatsAggregator();
    viaClone.apply(cloned);
    const direct = new StatsAggregator();
    direct.apply(delta);
    expect(viaClone.toJSON()).toEqual(direct.toJSON());
    // The worker moves the histogram buffers to the main thread (postMessage transfer list).
    const buffers = [delta.cells[0]!.latency!.buffer, delta.clusters[0]!.upstreamLatency!.buffer] as ArrayBuffer[];
    const moved = structuredClone(delta, { transfer: buffers });
    expect(moved).toEqual(cloned);
  });

  it('returns the same handle for the same names (counters continue across config versions)', () => {
    const ws = new WorkerStats(1);
    expect(ws.route('out', 'r1')).toBe(ws.route('out', 'r1'));
    expect(ws.route('out', 'r1')).not.toBe(ws.route('other', 'r1'));
    expect(ws.cluster('c')).toBe(ws.cluster('c'));
    expect(ws.listener('out')).toBe(ws.listener('out'));
    expect(ws.route('out', 'r1').listener).toBe(ws.listener('out'));

    // "version 1" builds handles and records; "version 2" rebuilds by name and records more.
    const v1 = { l: ws.listener('out'), r: ws.route('out', 'r1'), c: ws.cluster('c') };
    ws.record(v1.l, v1.r, v1.c, 200, 100, 50, 0, 0);
    const v2 = { l: ws.listener('out'), r: ws.route('out', 'r1'), c: ws.cluster('c') };
    ws.record(v2.l, v2.r, v2.c, 200, 100, 50, 0, 0);
    const d = ws.takeDelta();
    expect(d.cells).toHaveLength(1);
    expect(d.cells[0]!.requests).toBe(2);
  });

  it('counts requests without a route on the listener and without a cluster as cluster ""', () => {
    const ws = new WorkerStats(1);
    const l = ws.listener('out');
    ws.record(l, null, null, 404, 80, 0, 100, 50);
    ws.record(l, ws.route('out', 'local'), null, 200, 1500, 0, 100, 50);
    const d = ws.takeDelta();
    expect(d.cells.map((c) => [c.listener, c.route, c.cluster])).toEqual([
      ['out', '', ''],
      ['out', 'local', ''],
    ]);
    const agg = new StatsAggregator();
    agg.apply(d);
    const json = agg.toJSON();
    expect(json.listeners).toHaveLength(1);
    expect(json.listeners[0]!.requests).toBe(2);
    expect(json.listeners[0]!.p50_response_latency).toBe(0.08);
    expect(json.listeners[0]!.p99_response_latency).toBe(1.5);
    expect(json.routes.map((r) => r.name)).toEqual(['local']);
    expect(json.routes[0]!.p50_response_latency).toBe(1.5);
    expect(json.clusters).toHaveLength(0);
    // Roll-ups never write into the cells they read.
    expect(agg.toJSON()).toEqual(json);
  });

  it('keeps the latest gauges per worker, sums across workers, drops a forgotten worker', () => {
    const a = new WorkerStats(1);
    const b = new WorkerStats(2);
    const agg = new StatsAggregator();
    agg.declare([], [], ['c']);

    a.setActive(a.cluster('c'), 5);
    a.setPoolConnections(a.cluster('c'), 8, 3);
    b.setActive(b.cluster('c'), 2);
    b.setPoolConnections(b.cluster('c'), 4, 4);
    a.upstreamConnectFailure(a.cluster('c'));
    agg.apply(a.takeDelta());
    agg.apply(b.takeDelta());
    let c = agg.toJSON().clusters[0]!;
    expect(c.active_requests).toBe(7);
    expect(c.pool).toEqual({ open: 12, idle: 7 });

    // Latest value per worker, not a sum over time.
    a.setActive(a.cluster('c'), 1);
    agg.apply(a.takeDelta());
    // A delta without gauges leaves the last value in place.
    b.upstreamTimeout(b.cluster('c'));
    agg.apply(b.takeDelta());
    c = agg.toJSON().clusters[0]!;
    expect(c.active_requests).toBe(3);
    expect(c.pool).toEqual({ open: 12, idle: 7 });

    agg.forgetWorker(1);
    c = agg.toJSON().clusters[0]!;
    expect(c.active_requests).toBe(2);
    expect(c.pool).toEqual({ open: 4, idle: 4 });
    // Its counters stay.
    expect(c.connect_failures).toBe(1);
    expect(c.timeouts).toBe(1);
  });

  it('declares configured entries with zeros and forgets zero entries a new config drops', () => {
    const agg = new StatsAggregator();
    agg.declare(['out', 'in'], [{ listener: 'out', route: 'api', clusters: ['v1', 'v2'] }], ['v1', 'v2', 'local']);
    let json = agg.toJSON();
    expect(json.listeners.map((l) => l.name)).toEqual(['in', 'out']);
    expect(json.routes.map((r) => r.name)).toEqual(['api']);
    expect(json.routes[0]!.requests).toBe(0);
    expect(json.routes[0]!.success_rate).toBeNull();
    expect(json.routes[0]!.p99_response_latency).toBeNull();
    expect(json.clusters.map((c) => c.name)).toEqual(['local', 'v1', 'v2']);

    const ws = new WorkerStats(1);
    ws.record(ws.listener('out'), ws.route('out', 'api'), ws.cluster('v1'), 200, 10, 5, 0, 0);
    agg.apply(ws.takeDelta());
    // v2 and local leave the config; v1 has traffic and stays even though it leaves too.
    agg.declare(['out'], [{ listener: 'out', route: 'api2', clusters: ['v3'] }], ['v3']);
    json = agg.toJSON();
    expect(json.listeners.map((l) => l.name)).toEqual(['out']);
    expect(json.routes.map((r) => r.name)).toEqual(['api', 'api2']);
    expect(json.clusters.map((c) => c.name)).toEqual(['v1', 'v3']);
  });

  it('releases idle latency recorders and re-creates them on the next request', () => {
    const { ws, l, r, c } = oneOfEach('out');
    ws.record(l, r, c, 200, 100, 50, 0, 0);
    expect(ws.takeDelta().cells[0]!.latency).not.toBeNull();
    for (let i = 0; i < 20; i++) expect(ws.takeDelta().cells).toHaveLength(0);
    expect(r.cells[c.slot]!.latency).toBeNull();
    expect(c.latency).toBeNull();
    ws.record(l, r, c, 200, 300, 60, 0, 0);
    const d = ws.takeDelta();
    const agg = new StatsAggregator();
    agg.apply(d);
    expect(agg.toJSON().routes[0]!.p50_response_latency).toBe(0.3);
    expect(agg.toJSON().clusters[0]!.upstream.p50_response_latency).toBe(0.06);
  });

  it('counts 100k records into one cell exactly', () => {
    const { ws, l, r, c } = oneOfEach('out');
    for (let i = 0; i < 100_000; i++) ws.record(l, r, c, 200, i % 5000, i % 300, 1, 1);
    const d = ws.takeDelta();
    expect(d.cells[0]!.requests).toBe(100_000);
    expect(d.workerId).toBe(1);
  });
});

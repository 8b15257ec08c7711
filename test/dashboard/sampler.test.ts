// The dashboard's sampler (src/admin/sampler.ts) on hand-made worker deltas: per-second rate,
// success rate and percentiles per listener, route and cluster; percentiles equal to
// hdr-histogram-js's on the same samples; the ring keeps the last 900 samples in order and
// answers those after a time; at most MAX_NAMES names; a name idle for the whole ring is dropped.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_NAMES, SAMPLE_CAPACITY, TrafficSampler, percentilesMs } from '../../src/admin/sampler.js';
import type { CellDelta, ClassCounts, StatsDelta } from '../../src/stats/delta.js';
import { hdrFromSparse } from '../helpers/hdr.js';
import { LatencyRecorder } from '../../src/stats/recorder.js';

function sparseOf(micros: readonly number[]): Uint32Array | null {
  if (micros.length === 0) return null;
  const r = new LatencyRecorder();
  for (const m of micros) r.record(m);
  return r.takeSparse();
}

/** A cell with `ok` 2xx and `failed` 5xx answers lasting `micros` (in that order). */
function cell(listener: string, route: string, cluster: string, ok: number, failed: number, micros: readonly number[] = []): CellDelta {
  const classes: ClassCounts = [0, 0, ok, 0, 0, failed];
  return { listener, route, cluster, requests: ok + failed, classes, bytesIn: 0, bytesOut: 0, durationSumMicros: 0, latency: sparseOf(micros) };
}

function delta(...cells: CellDelta[]): StatsDelta {
  return { workerId: 1, cells, clusters: [] };
}

describe('TrafficSampler', () => {
  it('one second of two workers: rate, success rate and percentiles per listener, route and cluster', () => {
    const s = new TrafficSampler(0);
    s.record(delta(cell('main', 'api', 'a', 8, 2, [1000, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 5000, 9000])));
    s.record(delta(cell('main', 'web', 'b', 10, 0, Array<number>(10).fill(3000))));
    s.tick(2000); // a two-second window: rates are per second of it
    const j = s.toJSON();
    expect(j.times).toEqual([2000]);
    expect(j.listeners.map((l) => [l.name, l.rate, l.success_rate])).toEqual([['main', [10], [0.9]]]);
    expect(j.routes.map((r) => [r.listener, r.name, r.rate, r.success_rate])).toEqual([
      ['main', 'api', [5], [0.8]],
      ['main', 'web', [5], [1]],
    ]);
    expect(j.clusters.map((c) => c.name)).toEqual(['a', 'b']);
    const api = j.routes[0]!;
    // HdrHistogram's highest equivalent values at 3 significant digits.
    expect([api.p50_ms, api.p90_ms, api.p99_ms, api.p99_9_ms]).toEqual([[1], [5.003], [9.007], [9.007]]);
  });

  it('a second without requests: rate 0, no success rate, no percentiles', () => {
    const s = new TrafficSampler(0);
    s.record(delta(cell('main', '', '', 1, 0, [500])));
    s.tick(1000);
    s.tick(2000);
    const l = s.toJSON().listeners[0]!;
    expect(l.rate).toEqual([1, 0]);
    expect(l.success_rate).toEqual([1, null]);
    expect(l.p50_ms).toEqual([0.5, null]);
  });

  it('percentiles of several sparse arrays (slots repeat across them) are hdr-histogram-js getValueAtPercentile of their sum', () => {
    const micros = fc.array(fc.integer({ min: 1, max: 60_000_000 }), { minLength: 1, maxLength: 200 });
    fc.assert(
      fc.property(fc.array(micros, { minLength: 1, maxLength: 4 }), (parts) => {
        const sparses = parts.map((p) => sparseOf(p)!);
        const sum = sparseOf(parts.flat())!;
        const h = hdrFromSparse(sum);
        const want = [50, 90, 99, 99.9].map((p) => h.getValueAtPercentile(p) / 1000);
        expect(percentilesMs(sparses, [50, 90, 99, 99.9])).toEqual(want);
      }),
    );
  });

  it('the ring keeps the last 900 samples, oldest first', () => {
    const s = new TrafficSampler(0);
    for (let i = 1; i <= SAMPLE_CAPACITY + 5; i++) {
      s.record(delta(cell('main', '', '', i, 0)));
      s.tick(i * 1000);
    }
    const j = s.toJSON();
    expect(j.capacity).toBe(900);
    expect(j.times).toHaveLength(900);
    expect(j.times[0]).toBe(6000);
    expect(j.times.at(-1)).toBe(905_000);
    expect(j.listeners[0]!.rate[0]).toBe(6);
    expect(j.listeners[0]!.rate.at(-1)).toBe(905);
  });

  it('toJSON(after): only the samples taken after that time, every column as long as times', () => {
    const s = new TrafficSampler(0);
    for (let i = 1; i <= 5; i++) {
      s.record(delta(cell('main', 'all', 'app', i, 0, [1000])));
      s.tick(i * 1000);
    }
    const j = s.toJSON(3000);
    expect(j.times).toEqual([4000, 5000]);
    expect(j.routes[0]).toMatchObject({ listener: 'main', name: 'all', rate: [4, 5], success_rate: [1, 1], p50_ms: [1, 1] });
    expect(s.toJSON(5000).times).toEqual([]);
    expect(s.toJSON(5000).clusters[0]!.rate).toEqual([]);
    expect(s.toJSON().times).toHaveLength(5);
  });

  it('at most MAX_NAMES names are sampled; the answer says when the limit is reached', () => {
    const s = new TrafficSampler(0);
    s.record(delta(...Array.from({ length: MAX_NAMES - 1 }, (_, i) => cell(`l${i}`, '', '', 1, 0))));
    s.tick(1000);
    expect(s.toJSON().names_limit_reached).toBe(false);
    s.record(delta(...Array.from({ length: 20 }, (_, i) => cell(`m${i}`, '', '', 1, 0))));
    s.tick(2000);
    const j = s.toJSON();
    expect(j.listeners).toHaveLength(MAX_NAMES);
    expect(j.names_limit_reached).toBe(true);
    expect(j.listeners.filter((l) => l.name.startsWith('m')).map((l) => l.name)).toEqual(['m0']);
  });

  it('a name with no request for the whole ring is dropped; one that is still in it stays', () => {
    const s = new TrafficSampler(0);
    s.record(delta(cell('old', '', '', 1, 0)));
    s.tick(1000);
    for (let i = 2; i <= SAMPLE_CAPACITY; i++) {
      s.record(delta(cell('busy', '', '', 1, 0)));
      s.tick(i * 1000);
    }
    expect(s.toJSON().listeners.map((l) => l.name)).toEqual(['busy', 'old']);
    s.record(delta(cell('busy', '', '', 1, 0)));
    s.tick((SAMPLE_CAPACITY + 1) * 1000);
    expect(s.toJSON().listeners.map((l) => l.name)).toEqual(['busy']);
  });
});

// The worker's flat latency recorder must put every value in the same HdrHistogram slot as
// hdr-histogram-js itself, or the merged percentiles would not be hdr's.
import { describe, expect, it } from 'vitest';
import { Int32Histogram } from 'hdr-histogram-js';
import { HIST_HIGHEST_MICROS, LatencyRecorder, clampMicros, countsIndex, sparseScratch, valueFromIndex } from '../../src/stats/histogram.js';

describe('LatencyRecorder slot layout', () => {
  const reference = new Int32Histogram(1, HIST_HIGHEST_MICROS, 3);

  it('matches hdr-histogram-js at every slot boundary of the 1 µs .. 60 s range', () => {
    const last = countsIndex(HIST_HIGHEST_MICROS);
    for (let i = 0; i <= last; i++) {
      const lo = valueFromIndex(i);
      const hi = reference.highestEquivalentValue(lo);
      for (const v of [lo, hi, hi + 1]) {
        if (v > HIST_HIGHEST_MICROS) continue;
        expect(countsIndex(v)).toBe(reference.countsArrayIndex(v));
      }
      expect(reference.valueFromIndex(i)).toBe(lo);
    }
  });

  it('matches hdr-histogram-js for random values', () => {
    for (let n = 0; n < 50_000; n++) {
      const v = Math.floor(Math.random() ** 4 * HIST_HIGHEST_MICROS);
      expect(countsIndex(v)).toBe(reference.countsArrayIndex(v));
    }
  });

  it('clamps out-of-range durations instead of throwing', () => {
    expect(clampMicros(-5)).toBe(0);
    expect(clampMicros(Number.NaN)).toBe(0);
    expect(clampMicros(12.7)).toBe(12);
    expect(clampMicros(1e12)).toBe(HIST_HIGHEST_MICROS);
    const r = new LatencyRecorder();
    r.record(1e12);
    r.record(-1);
    const h = sparseScratch(r.takeSparse());
    expect(h.totalCount).toBe(2);
    expect(h.maxValue).toBeGreaterThanOrEqual(HIST_HIGHEST_MICROS);
  });

  it('takeSparse → sparseScratch gives the histogram hdr would build from the raw values, and clears', () => {
    const values = [0, 1, 7, 999, 1000, 2047, 2048, 2049, 123_456, 5_000_000, 59_999_999];
    const r = new LatencyRecorder();
    const ref = new Int32Histogram(1, HIST_HIGHEST_MICROS, 3);
    for (const v of values) {
      r.record(v);
      ref.recordValue(v);
    }
    expect(r.total).toBe(values.length);
    const h = sparseScratch(r.takeSparse());
    expect(h.totalCount).toBe(ref.totalCount);
    for (const p of [0, 10, 50, 90, 99, 100]) expect(h.getValueAtPercentile(p)).toBe(ref.getValueAtPercentile(p));
    expect(r.total).toBe(0);
    expect(r.counts.every((n) => n === 0)).toBe(true);
  });
});

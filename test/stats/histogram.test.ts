// The worker's flat latency recorder must put every value in the same HdrHistogram slot as
// hdr-histogram-js itself, or the merged percentiles would not be hdr's.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Float64Histogram, Int32Histogram } from 'hdr-histogram-js';
import type { JsHistogram } from 'hdr-histogram-js';
import { HIST_HIGHEST_MICROS, LatencyRecorder, addSparse, clampMicros, countsIndex, newAccumulator, newScratchHistogram, valueFromIndex } from '../../src/stats/histogram.js';

/** The sparse counts in a histogram of their own. */
function fromSparse(sparse: ArrayLike<number>): JsHistogram {
  const h = newScratchHistogram();
  addSparse(h, sparse);
  return h;
}

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
    const h = fromSparse(r.takeSparse());
    expect(h.totalCount).toBe(2);
    expect(h.maxValue).toBeGreaterThanOrEqual(HIST_HIGHEST_MICROS);
  });

  it('takeSparse → addSparse gives the histogram hdr would build from the raw values, and clears', () => {
    const values = [0, 1, 7, 999, 1000, 2047, 2048, 2049, 123_456, 5_000_000, 59_999_999];
    const r = new LatencyRecorder();
    const ref = new Int32Histogram(1, HIST_HIGHEST_MICROS, 3);
    for (const v of values) {
      r.record(v);
      ref.recordValue(v);
    }
    expect(r.total).toBe(values.length);
    const h = fromSparse(r.takeSparse());
    expect(h.totalCount).toBe(ref.totalCount);
    for (const p of [0, 10, 50, 90, 99, 100]) expect(h.getValueAtPercentile(p)).toBe(ref.getValueAtPercentile(p));
    expect(r.total).toBe(0);
    expect(r.counts.every((n) => n === 0)).toBe(true);
  });
});

describe('addSparse', () => {
  /** Everything a view reads from a histogram: totals, tracked extremes, every slot, percentiles. */
  function state(h: JsHistogram): unknown {
    const counts: number[] = [];
    for (let i = 0; i < h.countsArrayLength; i++) if (h.getCountAtIndex(i) !== 0) counts.push(i, h.getCountAtIndex(i));
    const percentiles = h.totalCount === 0 ? [] : [0, 50, 90, 99, 99.9, 100].map((p) => h.getValueAtPercentile(p));
    return { total: h.totalCount, max: h.maxValue, min: h.minNonZeroValue, counts, percentiles };
  }

  /** hdr-histogram-js's own way: the slots in a histogram of their own, its tracking values established over them. */
  function rebuilt(sparse: ArrayLike<number>): JsHistogram {
    const h = new Int32Histogram(1, HIST_HIGHEST_MICROS, 3);
    for (let k = 0; k < sparse.length; k += 2) h.addToCountAtIndex(sparse[k]!, sparse[k + 1]!);
    h.establishInternalTackingValues();
    return h;
  }

  it('adds into an accumulator exactly as hdr-histogram-js add() of the counts rebuilt in their own histogram, interval after interval', () => {
    const micros = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: HIST_HIGHEST_MICROS }));
    fc.assert(
      fc.property(fc.array(fc.array(micros, { maxLength: 300 }), { minLength: 1, maxLength: 5 }), (intervals) => {
        const ours = newAccumulator();
        const ref = new Float64Histogram(1, HIST_HIGHEST_MICROS, 3);
        const r = new LatencyRecorder();
        for (const values of intervals) {
          for (const v of values) r.record(v);
          const sparse = r.takeSparse();
          addSparse(ours, sparse);
          ref.add(rebuilt(sparse));
          expect(state(ours)).toEqual(state(ref));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('fills a reset histogram as establishing its tracking values over the same slots does, and adds nothing for no counts', () => {
    const h = newScratchHistogram();
    addSparse(h, new Uint32Array(0));
    expect([h.totalCount, h.maxValue, h.getValueAtPercentile(100)]).toEqual([0, 0, 0]);
    const r = new LatencyRecorder();
    for (const v of [0, 0, 3, 3, 4_095, 1_000_000]) r.record(v);
    const sparse = r.takeSparse();
    h.reset();
    addSparse(h, sparse);
    expect(state(h)).toEqual(state(rebuilt(sparse)));
    expect(h.totalCount).toBe(6);
  });
});

// The worker's flat latency recorder must put every value in the same HdrHistogram slot as
// hdr-histogram-js itself, or the merged percentiles would not be hdr's.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Int32Histogram } from 'hdr-histogram-js';
import type { JsHistogram } from 'hdr-histogram-js';
import { HIST_HIGHEST_MICROS, LatencyRecorder, SLOTS, SlotHistogram, clampMicros, countsIndex, valueFromIndex } from '../../src/stats/histogram.js';
import { hdrFromSparse, hdrHistogram } from '../helpers/hdr.js';

/** The sparse counts in a histogram of their own. */
function fromSparse(sparse: ArrayLike<number>): SlotHistogram {
  const h = new SlotHistogram();
  h.addSparse(sparse);
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

  it('takeSparse → SlotHistogram gives the histogram hdr would build from the raw values, and clears', () => {
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
    expect(r.takeSparse()).toEqual(new Uint32Array(0));
  });

  it('keeps the counts of the slots its samples reach, in small chunks, across intervals', () => {
    const r = new LatencyRecorder();
    for (let v = 100; v <= 5_000; v += 7) r.record(v);
    const dense = (countsIndex(HIST_HIGHEST_MICROS) + 1) * Uint32Array.BYTES_PER_ELEMENT; // a flat array of the layout
    expect(r.countBytes).toBeLessThan(dense / 4);
    const first = r.takeSparse();
    expect(r.countBytes).toBeLessThan(dense / 4);
    for (let v = 100; v <= 5_000; v += 7) r.record(v);
    expect(r.takeSparse()).toEqual(first);
    const single = new LatencyRecorder();
    single.record(59_000_000);
    single.record(3);
    expect(single.countBytes).toBe(512);
    expect(Array.from(single.takeSparse())).toEqual([countsIndex(3), 1, countsIndex(59_000_000), 1]);
  });
});

describe('SlotHistogram', () => {
  const PERCENTILES = [0, 1, 25, 50, 90, 99, 99.9, 99.99, 100];

  /** Everything a view reads from a histogram: total, max, every slot with a count, percentiles. */
  function state(h: Pick<JsHistogram, 'totalCount' | 'maxValue' | 'getCountAtIndex' | 'getValueAtPercentile'>): unknown {
    const counts: number[] = [];
    for (let i = 0; i < SLOTS; i++) if (h.getCountAtIndex(i) !== 0) counts.push(i, h.getCountAtIndex(i));
    return { total: h.totalCount, max: h.maxValue, counts, percentiles: PERCENTILES.map((p) => h.getValueAtPercentile(p)) };
  }

  const micros = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 2_000 }),
    fc.integer({ min: 100, max: 20_000 }),
    fc.integer({ min: 0, max: HIST_HIGHEST_MICROS }),
  );

  it('reads as hdr-histogram-js after the same intervals of sparse counts are added, interval after interval', () => {
    fc.assert(
      fc.property(fc.array(fc.array(micros, { maxLength: 300 }), { minLength: 1, maxLength: 5 }), (intervals) => {
        const ours = new SlotHistogram();
        const ref = hdrHistogram();
        const r = new LatencyRecorder();
        for (const values of intervals) {
          for (const v of values) r.record(v);
          const sparse = r.takeSparse();
          ours.addSparse(sparse);
          ref.add(hdrFromSparse(sparse));
          expect(state(ours)).toEqual(state(ref));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('add() of another (a roll-up) equals adding both sets of counts; reset() empties it for a refill', () => {
    fc.assert(
      fc.property(fc.array(micros, { maxLength: 200 }), fc.array(micros, { maxLength: 200 }), (a, b) => {
        const r = new LatencyRecorder();
        for (const v of a) r.record(v);
        const sa = r.takeSparse();
        for (const v of b) r.record(v);
        const sb = r.takeSparse();
        const rollUp = fromSparse(sa);
        rollUp.add(fromSparse(sb));
        const both = fromSparse(sa);
        both.addSparse(sb);
        expect(state(rollUp)).toEqual(state(both));
        rollUp.reset();
        expect([rollUp.totalCount, rollUp.maxValue, rollUp.getValueAtPercentile(50)]).toEqual([0, 0, 0]);
        rollUp.addSparse(sb);
        expect(state(rollUp)).toEqual(state(fromSparse(sb)));
      }),
      { numRuns: 100 },
    );
  });

  it('holds the band of slots its values fill, not the whole layout', () => {
    const r = new LatencyRecorder();
    for (let v = 100; v <= 5_000; v++) r.record(v); // every slot from 100 µs to 5 ms
    const band = fromSparse(r.takeSparse());
    const dense = SLOTS * Float64Array.BYTES_PER_ELEMENT; // hdr-histogram-js's Float64Histogram of the layout
    expect(dense).toBeGreaterThan(130 * 1024);
    expect(band.countBytes).toBeLessThan(dense / 4);
    r.record(250);
    expect(fromSparse(r.takeSparse()).countBytes).toBe(512);
  });

  it('ignores slots outside the layout instead of growing without bound', () => {
    const h = new SlotHistogram();
    h.addSparse([SLOTS, 5, -1, 5, 1e9, 5, Number.NaN, 5]);
    expect([h.totalCount, h.maxValue, h.countBytes]).toEqual([0, 0, 0]);
  });
});

// Latency histograms on both sides of the stats pipe: one HdrHistogram layout (1 µs .. 60 s,
// 3 significant digits, microseconds), a flat recorder for the worker hot path, and the
// hdr-histogram-js rebuild / merge / percentile helpers. Pure functions and data; no I/O.
//
// Why a flat recorder: hdr-histogram-js's JS recordValue() computes the bucket with
// Math.log2/Math.pow and costs ~78 ns; its wasm build ~16 ns but needs per-thread init and
// explicit destroy(). LatencyRecorder.record() computes the *same* HdrHistogram counts index with
// integer ops (clz32, shift) and bumps a Uint32Array slot (a few ns). takeSparse() moves the
// slots out and histogramFromSparse() rebuilds a real hdr-histogram-js histogram of the same
// layout on the main thread, so merging and percentiles are hdr-histogram-js's own. Between the
// threads the counts travel sparse ([slot, count, ...]): no encoding on the worker, whose event loop a 0.4–3 ms deflate of the
// hdr wire format would stall once a second (measured; it showed in p99.9 at fixed rates).
// The index math is checked against hdr-histogram-js slot by slot in test/stats/histogram.test.ts.

import { Float64Histogram, Int32Histogram, type JsHistogram } from 'hdr-histogram-js';

/** Lowest discernible value, µs. */
export const HIST_LOWEST_MICROS = 1;
/** Highest trackable value, µs (60 s). Larger samples are clamped to it. */
export const HIST_HIGHEST_MICROS = 60_000_000;
export const HIST_SIGNIFICANT_DIGITS = 3;

// HdrHistogram layout for (lowest 1, 3 digits): subBucketCount = 2048 (2^11 ≥ 2·10^3),
// subBucketHalfCount = 1024, unitMagnitude = 0, subBucketMask = 2047.
const SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10;
const SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
const SUB_BUCKET_MASK = 2 * SUB_BUCKET_HALF_COUNT - 1;
/** 31 - clz32(subBucketMask) ... bucketIndex = this - clz32(value | subBucketMask). */
const BUCKET_INDEX_BASE = 32 - SUB_BUCKET_HALF_COUNT_MAGNITUDE - 1;

/** HdrHistogram counts-array index of a value in [0, HIST_HIGHEST_MICROS] (an integer). */
export function countsIndex(value: number): number {
  const bucket = BUCKET_INDEX_BASE - Math.clz32(value | SUB_BUCKET_MASK);
  const subBucket = value >>> bucket;
  return ((bucket + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + subBucket - SUB_BUCKET_HALF_COUNT;
}

/** Lowest value that lands in a counts-array index (HdrHistogram valueFromIndex). */
export function valueFromIndex(index: number): number {
  let bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
  let subBucket = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
  if (bucket < 0) {
    subBucket -= SUB_BUCKET_HALF_COUNT;
    bucket = 0;
  }
  return subBucket * 2 ** bucket;
}

const RECORDER_SLOTS = countsIndex(HIST_HIGHEST_MICROS) + 1;

/** Clamp a duration to the histogram range as an integer number of µs (NaN → 0). */
export function clampMicros(micros: number): number {
  if (micros >= HIST_HIGHEST_MICROS) return HIST_HIGHEST_MICROS;
  if (micros > 0) return micros | 0;
  return 0;
}

/**
 * Per-interval latency counts with the HdrHistogram slot layout. One per (route, cluster) cell
 * and per cluster on a worker; allocated on first use (≈69 KiB), reused across intervals.
 */
export class LatencyRecorder {
  readonly counts = new Uint32Array(RECORDER_SLOTS);
  /** Samples since the last takeSparse(). */
  total = 0;
  /** Sum of the (clamped) samples since the last takeSparse(), µs. */
  sumMicros = 0;

  record(micros: number): void {
    const v = clampMicros(micros);
    this.counts[countsIndex(v)]! += 1;
    this.total += 1;
    this.sumMicros += v;
  }

  /** Moves this interval's samples out as sparse [slot, count, slot, count, ...] and clears. */
  takeSparse(): number[] {
    const counts = this.counts;
    const out: number[] = [];
    for (let i = 0; i < counts.length; i++) {
      const n = counts[i]!;
      if (n !== 0) {
        out.push(i, n);
        counts[i] = 0;
      }
    }
    this.total = 0;
    this.sumMicros = 0;
    return out;
  }
}

/** A fixed-range (no auto-resize) Int32 histogram of the standard layout. */
export function newScratchHistogram(): JsHistogram {
  return new Int32Histogram(HIST_LOWEST_MICROS, HIST_HIGHEST_MICROS, HIST_SIGNIFICANT_DIGITS);
}

/**
 * A main-thread accumulator: Float64 counts (≈139 KiB), so totals since start do not wrap at
 * 2^31 the way an Int32 histogram would after hours at high rates. (PackedHistogram would be far
 * smaller but its add() is ~100× slower with large counts: seconds per merge, measured.)
 */
export function newAccumulator(): JsHistogram {
  return new Float64Histogram(HIST_LOWEST_MICROS, HIST_HIGHEST_MICROS, HIST_SIGNIFICANT_DIGITS);
}

/** The hdr histogram of sparse [slot, count, ...] counts (LatencyRecorder.takeSparse). */
export function histogramFromSparse(sparse: readonly number[]): JsHistogram {
  const h = newScratchHistogram();
  let used = 0;
  for (let k = 0; k < sparse.length; k += 2) {
    const slot = sparse[k]!;
    h.addToCountAtIndex(slot, sparse[k + 1]!);
    if (slot + 1 > used) used = slot + 1;
  }
  h.establishInternalTackingValues(used);
  return h;
}

/** Value at a percentile in milliseconds (HdrHistogram's highest equivalent value), null when empty. */
export function percentileMs(h: JsHistogram | null, percentile: number): number | null {
  if (h === null || h.totalCount === 0) return null;
  return h.getValueAtPercentile(percentile) / 1000;
}

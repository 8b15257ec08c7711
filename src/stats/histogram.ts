// Latency histograms on both sides of the stats pipe, in one HdrHistogram layout (1 µs .. 60 s,
// 3 significant digits, microseconds: ~17 000 slots): a flat recorder for the worker hot path
// (recorder.ts) and, on the main thread, SlotHistogram for the totals since start and their
// percentiles. Pure functions and data; no I/O.
//
// Why a flat recorder: hdr-histogram-js's JS recordValue() computes the bucket with
// Math.log2/Math.pow and costs ~78 ns; its wasm build ~16 ns but needs per-thread init and
// explicit destroy(). LatencyRecorder.record() computes the *same* HdrHistogram counts index with
// integer ops (clz32, shift) and bumps a slot (a few ns). takeSparse() moves the slots out, and
// between the threads the counts travel sparse ([slot, count, ...]): no encoding on the worker,
// whose event loop a 0.4–3 ms deflate of the hdr wire format would stall once a second (measured;
// it showed in p99.9 at fixed rates). The index math is checked against hdr-histogram-js slot by
// slot in test/stats/histogram.test.ts.
//
// Why SlotHistogram and not hdr-histogram-js on the main thread: a dense Float64 histogram of the
// layout is 139 KiB whatever it holds, and the main thread keeps one per (listener, route,
// cluster) cell and per cluster: a sidecar with 1000 routes that all saw traffic grew from 77 to
// 253 MiB (measured). SlotHistogram keeps its counts in chunks of CHUNK slots allocated when a
// count first lands in them; the latencies of one route fill a narrow band of slots, so a cell
// costs that band. It adds a worker's sparse counts pair by pair (hdr's add() walked all 17 000
// slots per cell per second: 29.6 ms of main thread for an interval of 1000 busy routes). What the
// views read (totalCount, maxValue, getValueAtPercentile, getCountAtIndex) answers exactly as
// hdr-histogram-js's Float64Histogram does for the same counts: test/stats/histogram.test.ts
// compares them.

import { CHUNK, CHUNK_BITS, CHUNK_MASK, SLOTS, chunkAt, chunkBytes, valueFromIndex } from './recorder.js';

// The layout and the worker-side recorder live in recorder.ts.
export {
  HIST_HIGHEST_MICROS,
  HIST_LOWEST_MICROS,
  HIST_SIGNIFICANT_DIGITS,
  LatencyRecorder,
  SLOTS,
  clampMicros,
  countsIndex,
  valueFromIndex,
} from './recorder.js';

/** A chunk of since-start counts: Float64, so totals do not wrap at 2^32 after long runs at high rates (512 B). */
const newTotalsChunk = (): Float64Array => new Float64Array(CHUNK);

/** The highest value that lands in a slot (HdrHistogram highestEquivalentValue of its lowest value). */
export function highestInSlot(slot: number): number {
  return valueFromIndex(slot + 1) - 1;
}

/**
 * The count a percentile must reach: rounded up less one ulp, as hdr-histogram-js does (99.9 %
 * of 1000 is 999.0000000000001 in floating point), and at least 1.
 */
export function countAtPercentile(percentile: number, total: number): number {
  const fp = (Math.min(percentile, 100) / 100) * total;
  return Math.max(Math.ceil(fp - ulp(fp)), 1);
}

function ulp(x: number): number {
  return x === 0 ? Number.MIN_VALUE : 2 ** (Math.floor(Math.log2(Math.abs(x))) - 52);
}

export class SlotHistogram {
  /** Counts by chunk (slot >> CHUNK_BITS); a hole until a count lands in the chunk. */
  private readonly chunks: Array<Float64Array | undefined> = [];
  private total = 0;
  /** Highest slot with a count; -1 when empty. */
  private maxSlot = -1;

  get totalCount(): number {
    return this.total;
  }

  /** The highest value equivalent to the highest slot with a count (hdr-histogram-js's maxValue); 0 when empty. */
  get maxValue(): number {
    return this.maxSlot < 0 ? 0 : highestInSlot(this.maxSlot);
  }

  getCountAtIndex(slot: number): number {
    const chunk = this.chunks[slot >>> CHUNK_BITS];
    return chunk === undefined ? 0 : chunk[slot & CHUNK_MASK]!;
  }

  /** Adds `n` to a slot of the layout (0 ≤ slot < SLOTS; other slots are ignored, as a typed array would). */
  addToSlot(slot: number, n: number): void {
    if (n === 0 || !(slot >= 0 && slot < SLOTS)) return;
    const chunk = this.chunks[slot >>> CHUNK_BITS] ?? chunkAt(this.chunks, slot >>> CHUNK_BITS, newTotalsChunk);
    chunk[slot & CHUNK_MASK]! += n;
    this.total += n;
    if (slot > this.maxSlot) this.maxSlot = slot;
  }

  /** Adds sparse [slot, count, ...] counts (LatencyRecorder.takeSparse). */
  addSparse(sparse: ArrayLike<number>): void {
    for (let k = 0; k < sparse.length; k += 2) this.addToSlot(sparse[k]!, sparse[k + 1]!);
  }

  /** Adds another histogram's counts. */
  add(other: SlotHistogram): void {
    other.forEachSlot((slot, n) => this.addToSlot(slot, n));
  }

  /** Empties the counts; the chunks stay allocated for the next fill. */
  reset(): void {
    for (const chunk of this.chunks) chunk?.fill(0);
    this.total = 0;
    this.maxSlot = -1;
  }

  /** Calls `fn` for each slot with a count, in ascending slot order. */
  forEachSlot(fn: (slot: number, count: number) => void): void {
    const chunks = this.chunks;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      if (chunk === undefined) continue;
      for (let i = 0; i < CHUNK; i++) if (chunk[i] !== 0) fn((c << CHUNK_BITS) | i, chunk[i]!);
    }
  }

  /**
   * The value at a percentile, as hdr-histogram-js answers it: the highest value equivalent to the
   * first slot where the running count reaches countAtPercentile (the lowest one for percentile 0);
   * 0 when empty.
   */
  getValueAtPercentile(percentile: number): number {
    if (this.total === 0) return 0;
    const wanted = countAtPercentile(percentile, this.total);
    let seen = 0;
    const chunks = this.chunks;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      if (chunk === undefined) continue;
      for (let i = 0; i < CHUNK; i++) {
        seen += chunk[i]!;
        if (seen >= wanted) {
          const slot = (c << CHUNK_BITS) | i;
          return percentile === 0 ? valueFromIndex(slot) : highestInSlot(slot);
        }
      }
    }
    return 0;
  }

  /** Bytes of counts held (the chunks allocated so far). */
  get countBytes(): number {
    return chunkBytes(this.chunks);
  }
}

/** Value at a percentile in milliseconds (HdrHistogram's highest equivalent value), null when empty. */
export function percentileMs(h: SlotHistogram | null, percentile: number): number | null {
  if (h === null || h.totalCount === 0) return null;
  return h.getValueAtPercentile(percentile) / 1000;
}

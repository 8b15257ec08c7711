// Latency histograms on both sides of the stats pipe: one HdrHistogram layout (1 µs .. 60 s,
// 3 significant digits, microseconds), a flat recorder for the worker hot path, and the
// hdr-histogram-js rebuild / merge / percentile helpers. Pure functions and data; no I/O.
//
// Why a flat recorder: hdr-histogram-js's JS recordValue() computes the bucket with
// Math.log2/Math.pow and costs ~78 ns; its wasm build ~16 ns but needs per-thread init and
// explicit destroy(). LatencyRecorder.record() computes the *same* HdrHistogram counts index with
// integer ops (clz32, shift) and bumps a Uint32Array slot (a few ns). takeSparse() moves the
// slots out and fillFromSparse() rebuilds a real hdr-histogram-js histogram of the same
// layout on the main thread, so merging and percentiles are hdr-histogram-js's own. Between the
// threads the counts travel sparse ([slot, count, ...]): no encoding on the worker, whose event loop a 0.4–3 ms deflate of the
// hdr wire format would stall once a second (measured; it showed in p99.9 at fixed rates).
// The index math is checked against hdr-histogram-js slot by slot in test/stats/histogram.test.ts.

import type { JsHistogram } from 'hdr-histogram-js';
// The two histogram classes alone, not the package index: the index also loads the wasm build
// and the log/encoding modules, which cost a fresh process ~12 MiB of RSS (measured: 56 → 44 MiB).
// (require, not import: the files are CommonJS with `exports.default`, which Node's ESM interop
// and vitest's read differently.)
import { createRequire } from 'node:module';
import { HIST_HIGHEST_MICROS, HIST_LOWEST_MICROS, HIST_SIGNIFICANT_DIGITS } from './recorder.js';

// The layout and the worker-side recorder live in recorder.ts (no hdr-histogram-js there).
export { HIST_HIGHEST_MICROS, HIST_LOWEST_MICROS, HIST_SIGNIFICANT_DIGITS, LatencyRecorder, clampMicros, countsIndex, valueFromIndex } from './recorder.js';

const require = createRequire(import.meta.url);
const Float64Histogram = (require('hdr-histogram-js/dist/Float64Histogram.js') as typeof import('hdr-histogram-js/dist/Float64Histogram.js')).default;
const Int32Histogram = (require('hdr-histogram-js/dist/Int32Histogram.js') as typeof import('hdr-histogram-js/dist/Int32Histogram.js')).default;

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

/**
 * The histogram sparseScratch refills. A fresh histogram per merge is ~69 KiB of ArrayBuffer,
 * garbage at once: the main thread merging each thread's event-loop delay every second grew its
 * malloc heap by ~130 KiB/s at idle until a major GC came.
 */
let scratch: JsHistogram | null = null;

/**
 * Sparse [slot, count, ...] counts in this thread's one scratch histogram, for a caller that
 * adds it into another at once: the next call empties and refills it.
 */
export function sparseScratch(sparse: ArrayLike<number>): JsHistogram {
  if (scratch === null) scratch = newScratchHistogram();
  else scratch.reset();
  fillFromSparse(scratch, sparse);
  return scratch;
}

/** Fills an empty (new or reset) histogram `h` with sparse [slot, count, ...] counts. */
export function fillFromSparse(h: JsHistogram, sparse: ArrayLike<number>): void {
  let used = 0;
  for (let k = 0; k < sparse.length; k += 2) {
    const slot = sparse[k]!;
    h.addToCountAtIndex(slot, sparse[k + 1]!);
    if (slot + 1 > used) used = slot + 1;
  }
  h.establishInternalTackingValues(used);
}

/** Value at a percentile in milliseconds (HdrHistogram's highest equivalent value), null when empty. */
export function percentileMs(h: JsHistogram | null, percentile: number): number | null {
  if (h === null || h.totalCount === 0) return null;
  return h.getValueAtPercentile(percentile) / 1000;
}

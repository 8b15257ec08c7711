// Latency histograms on both sides of the stats pipe: one HdrHistogram layout (1 µs .. 60 s,
// 3 significant digits, microseconds), a flat recorder for the worker hot path, and the
// hdr-histogram-js rebuild / merge / percentile helpers. Pure functions and data; no I/O.
//
// Why a flat recorder: hdr-histogram-js's JS recordValue() computes the bucket with
// Math.log2/Math.pow and costs ~78 ns; its wasm build ~16 ns but needs per-thread init and
// explicit destroy(). LatencyRecorder.record() computes the *same* HdrHistogram counts index with
// integer ops (clz32, shift) and bumps a Uint32Array slot (a few ns). takeSparse() moves the
// slots out and addSparse() adds them into a real hdr-histogram-js histogram of the same
// layout on the main thread, so totals and percentiles are hdr-histogram-js's own. Between the
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
 * Adds sparse [slot, count, ...] counts into `h` (same layout): the histogram hdr-histogram-js's
 * `h.add(other)` gives for `other` = the counts rebuilt in a histogram of their own, with the same
 * total, max and min (test/stats/histogram.test.ts compares them), in a pass over the sparse pairs
 * instead of over every slot. add() and establishInternalTackingValues() walk all ~17 000 slots:
 * the main thread merged each thread's event-loop delay that way every second, 50 000 loop turns
 * a second at idle, enough for V8 to optimize those loops with TurboFan ~2 s after start, which
 * pages in the compiler's code and memory (~5 MiB of RSS on an idle sidecar, measured).
 */
export function addSparse(h: JsHistogram, sparse: ArrayLike<number>): void {
  let total = 0;
  let hi = -1;
  let lo = -1;
  for (let k = 0; k < sparse.length; k += 2) {
    const slot = sparse[k]!;
    const n = sparse[k + 1]!;
    if (n === 0) continue;
    h.addToCountAtIndex(slot, n);
    total += n;
    if (slot > hi) hi = slot;
    if (slot !== 0 && (lo === -1 || slot < lo)) lo = slot;
  }
  if (total === 0) return;
  h.addToTotalCount(total);
  h.updateMinAndMax(h.highestEquivalentValue(h.valueFromIndex(hi)));
  if (lo !== -1) h.updateMinAndMax(h.valueFromIndex(lo));
}

/** Value at a percentile in milliseconds (HdrHistogram's highest equivalent value), null when empty. */
export function percentileMs(h: JsHistogram | null, percentile: number): number | null {
  if (h === null || h.totalCount === 0) return null;
  return h.getValueAtPercentile(percentile) / 1000;
}

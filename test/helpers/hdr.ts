// hdr-histogram-js as the reference for outrigger's own histograms (src/stats/histogram.ts).
import { Float64Histogram } from 'hdr-histogram-js';
import type { JsHistogram } from 'hdr-histogram-js';
import { HIST_HIGHEST_MICROS, HIST_LOWEST_MICROS, HIST_SIGNIFICANT_DIGITS } from '../../src/stats/recorder.js';

/** An empty hdr-histogram-js histogram of outrigger's layout. */
export function hdrHistogram(): JsHistogram {
  return new Float64Histogram(HIST_LOWEST_MICROS, HIST_HIGHEST_MICROS, HIST_SIGNIFICANT_DIGITS);
}

/** Sparse [slot, count, ...] counts rebuilt in an hdr-histogram-js histogram, its tracking values established over them. */
export function hdrFromSparse(sparse: ArrayLike<number>): JsHistogram {
  const h = hdrHistogram();
  for (let k = 0; k < sparse.length; k += 2) h.addToCountAtIndex(sparse[k]!, sparse[k + 1]!);
  h.establishInternalTackingValues();
  return h;
}

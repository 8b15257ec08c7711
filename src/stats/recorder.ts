// The worker side of the latency histograms: one HdrHistogram layout (1 µs .. 60 s, 3 significant
// digits, microseconds) and LatencyRecorder, a flat Uint32Array of that layout's slots. Kept apart
// from histogram.ts so that worker threads never load hdr-histogram-js (its module costs a worker
// ~1.4 MiB of heap and more in code; only the main thread merges and reads percentiles).
// Pure data and integer math; no I/O.

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
  /** Lowest and highest slot touched since the last takeSparse() (takeSparse scans only these). */
  private lo = RECORDER_SLOTS;
  private hi = -1;

  record(micros: number): void {
    const v = clampMicros(micros);
    const i = countsIndex(v);
    this.counts[i]! += 1;
    if (i < this.lo) this.lo = i;
    if (i > this.hi) this.hi = i;
    this.total += 1;
    this.sumMicros += v;
  }

  /**
   * Moves this interval's samples out as sparse [slot, count, slot, count, ...] and clears.
   * A typed array, filled in one pass over the touched slots: the stats hand-off runs on the
   * worker's event loop once a second, and a growing JS array plus its element-by-element
   * structured clone cost ~1.6 ms there for a spread-out interval (a typed array clones as one copy).
   */
  takeSparse(): Uint32Array {
    const counts = this.counts;
    const hi = this.hi;
    let used = 0;
    for (let i = this.lo; i <= hi; i++) if (counts[i] !== 0) used++;
    const out = new Uint32Array(used * 2);
    let k = 0;
    for (let i = this.lo; i <= hi; i++) {
      const n = counts[i]!;
      if (n !== 0) {
        out[k++] = i;
        out[k++] = n;
        counts[i] = 0;
      }
    }
    this.lo = RECORDER_SLOTS;
    this.hi = -1;
    this.total = 0;
    this.sumMicros = 0;
    return out;
  }
}

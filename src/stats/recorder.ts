// The worker side of the latency histograms: one HdrHistogram layout (1 µs .. 60 s, 3 significant
// digits, microseconds) and LatencyRecorder, the counts of that layout's slots for one stats
// interval. Kept apart from histogram.ts (the main thread's totals and percentiles), so a worker
// loads only this. Pure data and integer math; no I/O.

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

/** Slots of the layout. */
export const SLOTS = countsIndex(HIST_HIGHEST_MICROS) + 1;

/** Clamp a duration to the histogram range as an integer number of µs (NaN → 0). */
export function clampMicros(micros: number): number {
  if (micros >= HIST_HIGHEST_MICROS) return HIST_HIGHEST_MICROS;
  if (micros > 0) return micros | 0;
  return 0;
}

// Chunked counts, here and in histogram.ts' SlotHistogram: slot s lives at [s & CHUNK_MASK] of
// chunk s >> CHUNK_BITS, a typed array of CHUNK slots made when a count first lands in it.
export const CHUNK_BITS = 6;
/** Slots per chunk: 64. */
export const CHUNK = 1 << CHUNK_BITS;
export const CHUNK_MASK = CHUNK - 1;

/** Chunk `c`, made by `make` when missing (the holes before it filled, so the array stays packed). */
export function chunkAt<T>(chunks: Array<T | undefined>, c: number, make: () => T): T {
  let chunk = chunks[c];
  if (chunk === undefined) {
    while (chunks.length < c) chunks.push(undefined);
    chunk = make();
    chunks[c] = chunk;
  }
  return chunk;
}

/** Bytes of counts the chunks made so far hold. */
export function chunkBytes(chunks: ReadonlyArray<ArrayBufferView | undefined>): number {
  let n = 0;
  for (const chunk of chunks) if (chunk !== undefined) n += chunk.byteLength;
  return n;
}

const newCountsChunk = (): Uint32Array => new Uint32Array(CHUNK);

/**
 * Per-interval latency counts with the HdrHistogram slot layout. One per (route, cluster) cell
 * and per cluster on a worker, reused across intervals. The counts live in chunks of CHUNK slots
 * made when a sample first lands in them: a dense array of the layout is 69 KiB per cell per
 * worker whatever it holds, and a route's latencies fill a narrow band of slots.
 */
export class LatencyRecorder {
  /** Counts by chunk (slot >> CHUNK_BITS); a hole until a sample lands in the chunk. */
  private readonly chunks: Array<Uint32Array | undefined> = [];
  /** Samples since the last takeSparse(). */
  total = 0;
  /** Sum of the (clamped) samples since the last takeSparse(), µs. */
  sumMicros = 0;
  /** Lowest and highest slot touched since the last takeSparse() (takeSparse scans only these). */
  private lo = SLOTS;
  private hi = -1;

  record(micros: number): void {
    const v = clampMicros(micros);
    const i = countsIndex(v);
    const chunk = this.chunks[i >>> CHUNK_BITS] ?? chunkAt(this.chunks, i >>> CHUNK_BITS, newCountsChunk);
    chunk[i & CHUNK_MASK]! += 1;
    if (i < this.lo) this.lo = i;
    if (i > this.hi) this.hi = i;
    this.total += 1;
    this.sumMicros += v;
  }

  /** Bytes of counts held (the chunks made so far). */
  get countBytes(): number {
    return chunkBytes(this.chunks);
  }

  /**
   * Moves this interval's samples out as sparse [slot, count, slot, count, ...] and clears.
   * A typed array, filled in one pass over the touched slots: the stats hand-off runs on the
   * worker's event loop once a second, and a growing JS array plus its element-by-element
   * structured clone cost ~1.6 ms there for a spread-out interval (a typed array clones as one copy).
   */
  takeSparse(): Uint32Array {
    const chunks = this.chunks;
    const lo = this.lo;
    const hi = this.hi;
    let used = 0;
    for (let i = lo; i <= hi; i++) {
      const chunk = chunks[i >>> CHUNK_BITS];
      if (chunk === undefined)
        i |= CHUNK_MASK; // to the chunk's last slot; the loop steps past it
      else if (chunk[i & CHUNK_MASK] !== 0) used++;
    }
    const out = new Uint32Array(used * 2);
    let k = 0;
    for (let i = lo; i <= hi; i++) {
      const chunk = chunks[i >>> CHUNK_BITS];
      if (chunk === undefined) {
        i |= CHUNK_MASK;
        continue;
      }
      const n = chunk[i & CHUNK_MASK]!;
      if (n !== 0) {
        out[k++] = i;
        out[k++] = n;
        chunk[i & CHUNK_MASK] = 0;
      }
    }
    this.lo = SLOTS;
    this.hi = -1;
    this.total = 0;
    this.sumMicros = 0;
    return out;
  }
}

// Small statistics for merging runs: percentile (linear interpolation), median, range, and a
// summary {median, min, max, n} used for every number that is reported across rounds.

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** p in [0, 100]; linear interpolation between closest ranks (numpy's default). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile out of range: ${p}`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Summary of the finite values; null when none. */
export function summarize(values: readonly (number | null | undefined)[]): Summary | null {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (xs.length === 0) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Half the range relative to the median, in percent: how far rounds spread. */
export function spreadPercent(s: Summary): number {
  if (s.median === 0) return 0;
  return ((s.max - s.min) / 2 / Math.abs(s.median)) * 100;
}

/** Pairs values by round and summarises a / b (e.g. ratio to nginx in the same round). */
export function pairedRatio(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Summary | null {
  const out: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y !== undefined && y !== 0) out.push(x / y);
  }
  return summarize(out);
}

/** Pairs values by round and summarises a − b (e.g. latency added over direct). */
export function pairedDiff(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Summary | null {
  const out: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y !== undefined) out.push(x - y);
  }
  return summarize(out);
}

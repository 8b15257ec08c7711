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

/** Values by round (one run per round); the runs with an error or without a finite value are left out. */
export function byRound<T extends { readonly round: number; readonly error?: string }>(
  runs: readonly T[],
  pick: (r: T) => number | null | undefined,
): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of runs) {
    if (r.error !== undefined) continue;
    const v = pick(r);
    if (typeof v === 'number' && Number.isFinite(v)) m.set(r.round, v);
  }
  return m;
}

/** The rounds measured in both: [a's value, b's value] for each, in a's order. */
export function paired(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y !== undefined) out.push([x, y]);
  }
  return out;
}

/** Pairs values by round and summarises a / b (e.g. ratio to nginx in the same round). */
export function pairedRatio(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Summary | null {
  return summarize(paired(a, b).flatMap(([x, y]) => (y !== 0 ? [x / y] : [])));
}

/** Pairs values by round and summarises a − b (e.g. latency added over direct). */
export function pairedDiff(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): Summary | null {
  return summarize(paired(a, b).map(([x, y]) => x - y));
}

/** Robust 3σ of the values: 3 × 1.4826 × their median absolute deviation (1.4826 × MAD estimates σ of a normal distribution); 0 with fewer than 3. */
export function robust3Sigma(xs: readonly number[]): number {
  if (xs.length < 3) return 0;
  const m = median(xs);
  return 3 * 1.4826 * median(xs.map((x) => Math.abs(x - m)));
}

// The dashboard's 15-minute history (GET /dashboard/series), kept on the main thread: every
// worker stats delta the aggregator merges is also added to the current one-second window, and
// once a second the window closes into a ring buffer of 900 samples per listener, route and
// cluster (request rate, success rate, p50/p90/p99/p99.9 of that second). Percentiles come from
// the deltas' sparse HdrHistogram slots, so they describe the second, not the time since start.
// Memory is bounded: 6 Float32Array columns of 900 per name (≈21 KiB), at most MAX_NAMES names
// (≈8.4 MiB; the names beyond are not sampled), and a name that saw no request for 15 minutes is
// dropped.

import type { CellDelta, StatsDelta } from '../stats/delta.js';
import { SLOTS, countAtPercentile, highestInSlot } from '../stats/histogram.js';

export const SAMPLE_INTERVAL_MS = 1000;
/** 15 minutes of one-second samples. */
export const SAMPLE_CAPACITY = 900;
/** Listeners, routes and clusters sampled at most (a config with thousands of busy routes charts the first 400 seen). */
export const MAX_NAMES = 400;

const PERCENTILES = [50, 90, 99, 99.9] as const;

/** What one second of one listener, route or cluster adds up to while it is open. */
class Window {
  requests = 0;
  failures = 0;
  /**
   * The cells' sparse latency counts, kept as they came: merged once, when the window closes
   * (merging each slot into a Map as it arrived cost 13 ms a second for 40 busy cells, measured).
   */
  readonly latencies: Uint32Array[] = [];

  add(cell: CellDelta): void {
    this.requests += cell.requests;
    // As in /stats: a failure is a 5xx or no response at all.
    this.failures += cell.classes[0] + cell.classes[5];
    if (cell.latency !== null) this.latencies.push(cell.latency);
  }

  clear(): void {
    this.requests = 0;
    this.failures = 0;
    this.latencies.length = 0;
  }
}

/** The ring of one listener, route or cluster: one column per measure, NaN where there is nothing. */
class NameSeries {
  readonly window = new Window();
  // Float32: 7 significant digits are plenty for a chart, at half the memory.
  readonly rate = new Float32Array(SAMPLE_CAPACITY).fill(Number.NaN);
  readonly successRate = new Float32Array(SAMPLE_CAPACITY).fill(Number.NaN);
  readonly latencyMs = PERCENTILES.map(() => new Float32Array(SAMPLE_CAPACITY).fill(Number.NaN));
  /** Samples since the last one with a request: at SAMPLE_CAPACITY the whole ring is idle. */
  idleSamples = 0;

  constructor(
    readonly kind: 'listener' | 'route' | 'cluster',
    readonly listener: string,
    readonly name: string,
  ) {}

  /** Closes the window into slot `at`; `seconds` is the window's real length. */
  close(at: number, seconds: number): void {
    const w = this.window;
    this.rate[at] = w.requests / seconds;
    this.successRate[at] = w.requests === 0 ? Number.NaN : (w.requests - w.failures) / w.requests;
    const ms = percentilesMs(w.latencies, PERCENTILES);
    for (let i = 0; i < PERCENTILES.length; i++) this.latencyMs[i]![at] = ms[i]!;
    this.idleSamples = w.requests === 0 ? this.idleSamples + 1 : 0;
    w.clear();
  }
}

/** One listener, route or cluster in GET /dashboard/series; arrays oldest first, null = no request in that second. */
export interface NameSeriesJson {
  readonly listener?: string;
  readonly name: string;
  readonly rate: ReadonlyArray<number | null>;
  readonly success_rate: ReadonlyArray<number | null>;
  readonly p50_ms: ReadonlyArray<number | null>;
  readonly p90_ms: ReadonlyArray<number | null>;
  readonly p99_ms: ReadonlyArray<number | null>;
  readonly p99_9_ms: ReadonlyArray<number | null>;
}

export interface SeriesJson {
  readonly interval_ms: number;
  readonly capacity: number;
  /** True when MAX_NAMES names are sampled: a name not among them has no series. */
  readonly names_limit_reached: boolean;
  /** Unix ms at which each sample closed, oldest first (those after the `after` asked for). */
  readonly times: readonly number[];
  readonly listeners: readonly NameSeriesJson[];
  readonly routes: readonly NameSeriesJson[];
  readonly clusters: readonly NameSeriesJson[];
}

export class TrafficSampler {
  private readonly names = new Map<string, NameSeries>();
  private readonly times = new Float64Array(SAMPLE_CAPACITY);
  /** Samples taken so far (the ring holds the last min(count, capacity)). */
  private count = 0;
  private lastTickMs: number;

  /** Its owner calls tick() every SAMPLE_INTERVAL_MS (run.ts: the main thread's once-a-second timer). */
  constructor(nowMs: number = Date.now()) {
    this.lastTickMs = nowMs;
  }

  /** Adds a worker's delta to the open window (the same deltas the aggregator merges). */
  record(delta: StatsDelta): void {
    for (const cell of delta.cells) {
      this.series('listener', cell.listener, cell.listener)?.window.add(cell);
      if (cell.route !== '') this.series('route', cell.listener, cell.route)?.window.add(cell);
      if (cell.cluster !== '') this.series('cluster', '', cell.cluster)?.window.add(cell);
    }
  }

  /** Closes the open window as the sample taken at `nowMs`; names idle for the whole ring are dropped. */
  tick(nowMs: number): void {
    const at = this.count % SAMPLE_CAPACITY;
    // A late timer (a busy event loop) makes a longer window: the rate divides by its real length.
    const seconds = Math.max(nowMs - this.lastTickMs, 1) / 1000;
    this.lastTickMs = nowMs;
    this.times[at] = nowMs;
    for (const [key, s] of this.names) {
      s.close(at, seconds);
      if (s.idleSamples >= SAMPLE_CAPACITY) this.names.delete(key);
    }
    this.count++;
  }

  /** The samples taken after `afterMs` (unix ms; 0 = all the ring holds): a dashboard that has the older ones asks only for the new. */
  toJSON(afterMs = 0): SeriesJson {
    let n = 0;
    const held = Math.min(this.count, SAMPLE_CAPACITY);
    while (n < held && this.times[(this.count - n - 1) % SAMPLE_CAPACITY]! > afterMs) n++;
    const first = this.count - n;
    const ordered = (column: Float32Array, digits: number): Array<number | null> => {
      const out = new Array<number | null>(n);
      for (let i = 0; i < n; i++) {
        const v = column[(first + i) % SAMPLE_CAPACITY]!;
        out[i] = Number.isNaN(v) ? null : round(v, digits);
      }
      return out;
    };
    const json = (s: NameSeries): NameSeriesJson => ({
      ...(s.kind === 'route' ? { listener: s.listener } : {}),
      name: s.name,
      rate: ordered(s.rate, 2),
      success_rate: ordered(s.successRate, 4),
      p50_ms: ordered(s.latencyMs[0]!, 3),
      p90_ms: ordered(s.latencyMs[1]!, 3),
      p99_ms: ordered(s.latencyMs[2]!, 3),
      p99_9_ms: ordered(s.latencyMs[3]!, 3),
    });
    const of = (kind: NameSeries['kind']): NameSeriesJson[] =>
      [...this.names.values()]
        .filter((s) => s.kind === kind)
        .sort((a, b) => compare(a.listener, b.listener) || compare(a.name, b.name))
        .map(json);
    return {
      interval_ms: SAMPLE_INTERVAL_MS,
      capacity: SAMPLE_CAPACITY,
      names_limit_reached: this.names.size >= MAX_NAMES,
      times: Array.from({ length: n }, (_, i) => this.times[(first + i) % SAMPLE_CAPACITY]!),
      listeners: of('listener'),
      routes: of('route'),
      clusters: of('cluster'),
    };
  }

  /** The series of a name, made on first sight unless MAX_NAMES are sampled already (then null). */
  private series(kind: NameSeries['kind'], listener: string, name: string): NameSeries | null {
    const key = `${kind}\u0000${listener}\u0000${name}`;
    let s = this.names.get(key);
    if (s === undefined) {
      if (this.names.size >= MAX_NAMES) return null;
      s = new NameSeries(kind, listener, name);
      this.names.set(key, s);
    }
    return s;
  }
}

/**
 * The merged counts of one percentile computation, zeroed again after it (the main thread runs
 * one at a time). Adding into it and walking the touched range: 0.65 ms of CPU a second for 40
 * busy cells; sorting the pairs instead cost 4 ms (measured).
 */
const scratch = new Float64Array(SLOTS);

/**
 * Values at `percentiles` (ascending; ms) of the sum of sparse HdrHistogram counts ([slot, count,
 * ...] arrays, LatencyRecorder.takeSparse), as hdr-histogram-js's getValueAtPercentile answers
 * them (the highest value equivalent to the slot that reaches the count); NaN when there are none.
 */
export function percentilesMs(sparses: readonly ArrayLike<number>[], percentiles: readonly number[]): number[] {
  let lo = SLOTS;
  let hi = -1;
  let total = 0;
  for (const s of sparses) {
    for (let i = 0; i < s.length; i += 2) {
      const slot = s[i]!;
      scratch[slot]! += s[i + 1]!;
      total += s[i + 1]!;
      if (slot < lo) lo = slot;
      if (slot > hi) hi = slot;
    }
  }
  const out = percentiles.map(() => Number.NaN);
  const wanted = percentiles.map((p) => countAtPercentile(p, total));
  let next = 0;
  let seen = 0;
  for (let slot = lo; slot <= hi && next < percentiles.length; slot++) {
    const count = scratch[slot]!;
    if (count === 0) continue;
    seen += count;
    while (next < percentiles.length && seen >= wanted[next]!) {
      out[next++] = highestInSlot(slot) / 1000;
    }
  }
  if (hi >= lo) scratch.fill(0, lo, hi + 1);
  return out;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

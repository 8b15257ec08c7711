// The stats message a worker posts to the main thread on an interval: everything recorded since
// the previous one. Plain data only (structured-clone safe): counters as numbers, latency
// histograms as sparse HdrHistogram slot counts (microseconds, see histogram.ts).

import type { CounterDelta } from './counters.js';
import type { LoopDelaySample } from './loop_delay.js';
import type { PathsDelta } from './top_paths.js';

/**
 * Response classes, by index: 0 = no response (status 0: client aborted, connection reset
 * mid-response, or a status outside 100..599), 1..5 = 1xx..5xx.
 */
export const CODE_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type CodeClass = (typeof CODE_CLASSES)[number];
export const CODE_CLASS_COUNT = CODE_CLASSES.length;

/** Counts by response class, indexed like CODE_CLASSES. */
export type ClassCounts = readonly [none: number, c1xx: number, c2xx: number, c3xx: number, c4xx: number, c5xx: number];

/** Requests of one (listener, route, cluster) combination. '' = none (no route / no cluster). */
export interface CellDelta {
  readonly listener: string;
  readonly route: string;
  readonly cluster: string;
  readonly requests: number;
  readonly classes: ClassCounts;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Sum of total request durations, µs (exact; the Prometheus histogram `_sum`). */
  readonly durationSumMicros: number;
  /** Total request durations: sparse HdrHistogram counts [slot, count, ...] of this interval (µs), or null when nothing was recorded. */
  readonly latency: Uint32Array | null;
}

/** Latest gauge values of one cluster on one worker. */
export interface ClusterGauges {
  readonly active: number;
  readonly poolOpen: number;
  readonly poolIdle: number;
}

export interface ClusterDelta {
  readonly name: string;
  readonly connectFailures: number;
  readonly timeouts: number;
  readonly resets: number;
  readonly upstreamSumMicros: number;
  /** Upstream durations (request sent → response complete), µs; null when nothing was recorded. */
  readonly upstreamLatency: Uint32Array | null;
  /** Present when a gauge was set during the interval. */
  readonly gauges: ClusterGauges | null;
}

export interface StatsDelta {
  readonly workerId: number;
  /** Growth of the counters that live in data-plane objects (counters.ts); absent = none. */
  readonly counters?: readonly CounterDelta[];
  /** Only cells and clusters that changed in the interval. */
  readonly cells: readonly CellDelta[];
  readonly clusters: readonly ClusterDelta[];
  /** The busiest paths' growth (top_paths.ts); absent = no request. */
  readonly paths?: PathsDelta;
  /** The worker's event-loop delay over the interval (absent when no sample fell in it). */
  readonly loopDelay?: LoopDelaySample;
}

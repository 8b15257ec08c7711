// Main-thread running totals (since start) that the aggregator keeps and the JSON and Prometheus
// views read: one CellTotals per (listener, route, cluster), one ClusterTotals per cluster.
// Mutable plain state; merging rules live in aggregate.ts.

import { CODE_CLASS_COUNT } from './delta.js';
import { SlotHistogram } from './histogram.js';

/** Counts and latency of requests; shared shape of cells and of the listener/route/cluster roll-ups. */
export class RequestTotals {
  requests = 0;
  /** By response class, indexed like CODE_CLASSES. */
  readonly classes: number[] = new Array<number>(CODE_CLASS_COUNT).fill(0);
  bytesIn = 0;
  bytesOut = 0;
  durationSumMicros = 0;
  /** Total request duration, µs; null until the first sample. */
  latency: SlotHistogram | null = null;

  /** `latency` is another total's histogram, read-only here (copied before the first add). */
  private latencyBorrowed = false;

  /**
   * Adds another total into this one (exact: counts and histogram slots add). For roll-ups:
   * a roll-up of a single total borrows that total's histogram instead of copying it.
   */
  addTotals(other: RequestTotals): void {
    this.requests += other.requests;
    for (let i = 0; i < CODE_CLASS_COUNT; i++) this.classes[i]! += other.classes[i]!;
    this.bytesIn += other.bytesIn;
    this.bytesOut += other.bytesOut;
    this.durationSumMicros += other.durationSumMicros;
    if (other.latency === null) return;
    if (this.latency === null) {
      this.latency = other.latency;
      this.latencyBorrowed = true;
    } else {
      this.addLatency(other.latency);
    }
  }

  addLatency(h: SlotHistogram): void {
    this.ownLatency().add(h);
  }

  /** Adds sparse [slot, count, ...] latency counts (a worker's interval). */
  addLatencySparse(sparse: ArrayLike<number>): void {
    this.ownLatency().addSparse(sparse);
  }

  /** The histogram this total may add into: made on first use, copied if borrowed. */
  private ownLatency(): SlotHistogram {
    if (this.latency === null) {
      this.latency = new SlotHistogram();
    } else if (this.latencyBorrowed) {
      const own = new SlotHistogram();
      own.add(this.latency);
      this.latency = own;
      this.latencyBorrowed = false;
    }
    return this.latency;
  }
}

/** One (listener, route, cluster); '' = no route / no cluster. */
export class CellTotals extends RequestTotals {
  constructor(
    readonly listener: string,
    readonly route: string,
    readonly cluster: string,
  ) {
    super();
  }
}

export class ClusterTotals {
  connectFailures = 0;
  timeouts = 0;
  resets = 0;
  upstreamSumMicros = 0;
  /** Upstream durations, µs; null until the first sample. */
  upstream: SlotHistogram | null = null;

  constructor(readonly name: string) {}

  /** Adds sparse [slot, count, ...] upstream-duration counts (a worker's interval). */
  addUpstreamSparse(sparse: ArrayLike<number>): void {
    this.upstream ??= new SlotHistogram();
    this.upstream.addSparse(sparse);
  }
}

/** Gauges of one cluster, summed over the live workers. */
export interface GaugeSums {
  active: number;
  poolOpen: number;
  poolIdle: number;
}

/** What the JSON and Prometheus views read. */
export interface StatsView {
  readonly configVersion: number;
  readonly workerRestarts: number;
  /** Workers the watchdog found stuck (node.worker_stall_ms). */
  readonly workerStalls: number;
  /** All cells, declared (zero) or seen in a delta. */
  cells(): Iterable<CellTotals>;
  /** All clusters, declared (zero) or seen in a delta. */
  clusters(): Iterable<ClusterTotals>;
  gauges(cluster: string): GaugeSums;
}

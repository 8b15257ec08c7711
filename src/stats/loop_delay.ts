// Event-loop delay, sampling side (one per thread: the main thread and every worker): a timer notes
// how late it ran, into a LatencyRecorder (the latency histograms' slot layout, µs), and take()
// hands over one interval at a time as plain data. Late timers are the sign of a stall: a long GC
// pause, a big synchronous job, a slow message.
//
// The timer's period follows the thread's load: LOOP_DELAY_RESOLUTION_MS while the thread is
// busy, up to LOOP_DELAY_IDLE_MS when it does nothing, in between in proportion. A wake-up costs
// ~0.1 ms of loop time here (and more in the kernel): every 10 ms, that was 1.2 % of a core per
// idle thread, most of an idle sidecar's CPU. Scaled so, sampling costs about BUSY_FRACTION's
// inverse share of the work the thread does (~5 %), and a thread at rest wakes once a second. A
// stall shorter than the period in force can read short by up to that period, so at low load
// short stalls are seen less often; under load, where they delay requests, they are sampled at
// full resolution.
//
// The thread's own periodic job (a worker's heartbeat and stats post, the main thread's
// once-a-second sample) runs from this timer (`job`), whose period is then capped at the job's:
// an idle thread wakes once a second for both, not once for each (timers started a few ms apart
// fire in separate wake-ups).
//
// Why not perf_hooks.monitorEventLoopDelay: its histogram forgets its reference point on reset(),
// so the first ~10 ms after every interval boundary go unmeasured — exactly where the once-a-second
// stats hand-off runs — and it cannot hand over its buckets for an exact since-start merge; nor
// can its period change.

import { performance } from 'node:perf_hooks';
import { LatencyRecorder, clampMicros } from './recorder.js';

/** The shortest sampling period, ms, in force while the thread is busy (monitorEventLoopDelay's default). */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/** The longest period, ms: a thread doing nothing samples once a second. */
export const LOOP_DELAY_IDLE_MS = 1000;

/**
 * The event-loop utilization (active ÷ elapsed) at and above which the period is the shortest;
 * below it the period grows in inverse proportion (half the utilization, twice the period).
 */
export const BUSY_FRACTION = 0.2;

/** The next period, ms, after a period in which the loop was active for `activeMs` of `elapsedMs`. */
export function nextPeriod(activeMs: number, elapsedMs: number, minMs = LOOP_DELAY_RESOLUTION_MS, maxMs = LOOP_DELAY_IDLE_MS): number {
  const u = elapsedMs > 0 ? activeMs / elapsedMs : 1;
  if (!(u > 0)) return maxMs;
  return Math.min(maxMs, Math.max(minMs, Math.round((minMs * BUSY_FRACTION) / u)));
}

/** One thread's event-loop delay over one interval. Plain data (structured-clone safe). */
export interface LoopDelaySample {
  /** `main` or `worker-<id>`. */
  readonly thread: string;
  /** Wall-clock length of the interval, ms. */
  readonly intervalMs: number;
  /** Samples (timer firings) in the interval: intervalMs / LOOP_DELAY_RESOLUTION_MS when the thread is busy, one a second at rest. */
  readonly count: number;
  /** Largest delay, µs (exact, not a histogram bucket). */
  readonly maxMicros: number;
  readonly sumMicros: number;
  /** Sparse [slot, count, ...] of the delays in µs beyond schedule (recorder.ts layout). */
  readonly delays: Uint32Array;
}

export interface LoopDelayOptions {
  /** The shortest period, ms (default LOOP_DELAY_RESOLUTION_MS). */
  readonly minMs?: number;
  /** The longest period, ms (default LOOP_DELAY_IDLE_MS); equal to minMs for a fixed period. */
  readonly maxMs?: number;
  /**
   * The thread's periodic job (a worker's heartbeat and stats, the main thread's once-a-second
   * sample), run from this monitor's timer so that a thread at rest wakes once per period, not
   * once for the sampler and once for the job: at the first tick at least `everyMs` after its last
   * run (less half the shortest period). The period is capped at `everyMs`, so the job runs at
   * most one period late, and exactly every `everyMs` at rest. A stuck loop runs neither.
   */
  readonly job?: LoopJob;
}

export interface LoopJob {
  readonly everyMs: number;
  readonly run: () => void;
}

export class LoopDelayMonitor {
  private readonly recorder = new LatencyRecorder();
  private readonly minMs: number;
  /** The longest period asked for; the one in force (maxMs) is capped by the job's. */
  private readonly idleMs: number;
  private jobEveryMs: number;
  private readonly job: (() => void) | null;
  /** When the job last ran (performance.now()). */
  private jobRanAt: number;
  private timer: NodeJS.Timeout;
  /** When the timer in force was due (performance.now()). */
  private due = 0;
  /** The loop's active time (ms) and the clock when the timer in force was armed. */
  private activeAt: number;
  private armedAt: number;
  private since: number;
  private maxMicros = 0;

  constructor(
    readonly thread: string,
    options: LoopDelayOptions = {},
  ) {
    this.minMs = options.minMs ?? LOOP_DELAY_RESOLUTION_MS;
    this.idleMs = Math.max(this.minMs, options.maxMs ?? LOOP_DELAY_IDLE_MS);
    this.job = options.job?.run ?? null;
    this.jobEveryMs = options.job?.everyMs ?? Infinity;
    this.armedAt = this.since = this.jobRanAt = performance.now();
    this.activeAt = performance.eventLoopUtilization().active;
    this.timer = this.arm(this.armedAt, this.minMs);
  }

  /** The longest period in force: idleMs, or the job's period if shorter (never under minMs). */
  private get maxMs(): number {
    return Math.max(this.minMs, Math.min(this.idleMs, this.jobEveryMs));
  }

  /** A timer for the tick `periodMs` from `now`, due then. */
  private arm(now: number, periodMs: number): NodeJS.Timeout {
    this.due = now + periodMs;
    return setTimeout(this.tick, periodMs).unref();
  }

  private readonly tick = (): void => {
    const now = performance.now();
    const micros = clampMicros((now - this.due) * 1000);
    this.recorder.record(micros);
    if (micros > this.maxMicros) this.maxMicros = micros;
    const active = performance.eventLoopUtilization().active;
    const period = nextPeriod(active - this.activeAt, now - this.armedAt, this.minMs, this.maxMs);
    this.activeAt = active;
    this.armedAt = now;
    this.timer = this.arm(now, period);
    if (this.job !== null && now - this.jobRanAt >= this.jobEveryMs - this.minMs / 2) {
      this.jobRanAt = now;
      this.job();
    }
  };

  /** A new period for the job (a worker's heartbeat follows its stall limit); the timer in force is moved earlier if it is due later than that. */
  setJobEvery(everyMs: number): void {
    this.jobEveryMs = everyMs;
    const now = performance.now();
    if (this.due - now <= this.maxMs) return;
    clearTimeout(this.timer);
    this.timer = this.arm(now, this.maxMs);
  }

  /** The interval since the previous take() (null when no sample fell in it); starts the next one. */
  take(): LoopDelaySample | null {
    const now = performance.now();
    const intervalMs = now - this.since;
    this.since = now;
    const r = this.recorder;
    if (r.total === 0) return null;
    const count = r.total;
    const sumMicros = r.sumMicros;
    const maxMicros = this.maxMicros;
    this.maxMicros = 0;
    return { thread: this.thread, intervalMs, count, maxMicros, sumMicros, delays: r.takeSparse() };
  }

  close(): void {
    clearTimeout(this.timer);
  }
}

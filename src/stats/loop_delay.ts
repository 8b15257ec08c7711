// Event-loop delay, sampling side (one per thread: the main thread and every worker): a timer due
// every LOOP_DELAY_RESOLUTION_MS notes how late it ran, into a LatencyRecorder (the latency
// histograms' slot layout, µs), and take() hands over one interval at a time as plain data. Late
// timers are the sign of a stall: a long GC pause, a big synchronous job, a slow message.
//
// Why not perf_hooks.monitorEventLoopDelay: its histogram forgets its reference point on reset(),
// so the first ~10 ms after every interval boundary go unmeasured — exactly where the once-a-second
// stats hand-off runs — and it cannot hand over its buckets for an exact since-start merge.

import { LatencyRecorder, clampMicros } from './recorder.js';

/**
 * Sampling period, ms. A stall shorter than the period can read short by up to the period.
 * 10 ms is monitorEventLoopDelay's default; 1 ms costs ~2.5 % of a core per idle thread here
 * (measured), too much for a sidecar.
 */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/** One thread's event-loop delay over one interval. Plain data (structured-clone safe). */
export interface LoopDelaySample {
  /** `main` or `worker-<id>`. */
  readonly thread: string;
  /** Wall-clock length of the interval, ms. */
  readonly intervalMs: number;
  /** Samples (timer firings) in the interval: about intervalMs / LOOP_DELAY_RESOLUTION_MS when the loop is free. */
  readonly count: number;
  /** Largest delay, µs (exact, not a histogram bucket). */
  readonly maxMicros: number;
  readonly sumMicros: number;
  /** Sparse [slot, count, ...] of the delays in µs beyond schedule (recorder.ts layout). */
  readonly delays: Uint32Array;
}

export class LoopDelayMonitor {
  private readonly recorder = new LatencyRecorder();
  private readonly timer: NodeJS.Timeout;
  private last = performance.now();
  private since = this.last;
  private maxMicros = 0;

  constructor(readonly thread: string) {
    this.timer = setInterval(this.tick, LOOP_DELAY_RESOLUTION_MS);
    this.timer.unref();
  }

  private readonly tick = (): void => {
    const now = performance.now();
    const micros = clampMicros((now - this.last - LOOP_DELAY_RESOLUTION_MS) * 1000);
    this.last = now;
    this.recorder.record(micros);
    if (micros > this.maxMicros) this.maxMicros = micros;
  };

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
    clearInterval(this.timer);
  }
}

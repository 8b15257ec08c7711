// A cluster's retry budget on one worker (DESIGN.md §4): retries may not multiply load during an
// outage. A retry may start while
//   retries in flight < max(minConcurrent, percent% of the cluster's active requests)   (Envoy)
// and
//   retries in the last 10 s < percent% of requests in the last 10 s + minPerSecond × 10 (Linkerd)
// Counts live in ten one-second buckets; no allocation per request. Times are ms on the worker's
// monotonic clock (the Ticker's: `ticker.now` / `ticker.fresh()`), never Date.now().

import type { RetryBudgetSpec } from '../config/types.js';

const WINDOW_S = 10;

export class RetryBudget {
  private readonly requests = new Float64Array(WINDOW_S);
  private readonly retries = new Float64Array(WINDOW_S);
  private second = 0;
  /** Exchanges currently on a retry try. */
  inFlight = 0;
  /** Retries refused because the budget was spent (stats). */
  exhausted = 0;

  constructor(public spec: RetryBudgetSpec) {}

  /** An exchange made its first retry: it counts among the retries in flight until retryEnded(). */
  retryStarted(): void {
    this.inFlight++;
  }

  retryEnded(): void {
    this.inFlight--;
  }

  /** An original request started (deposits into the rate budget). */
  onRequest(nowMs: number): void {
    this.requests[this.slot(nowMs)]! += 1;
  }

  /** Whether a retry may start now; if so it is counted. `alreadyRetrying`: the asking exchange
   *  is itself counted in `inFlight` (its earlier retry failed), so its next retry adds none. */
  tryAcquire(nowMs: number, activeRequests: number, alreadyRetrying = false): boolean {
    const concurrentCap = Math.max(this.spec.minConcurrent, (this.spec.percent / 100) * activeRequests);
    if (this.inFlight - (alreadyRetrying ? 1 : 0) >= concurrentCap) {
      this.exhausted++;
      return false;
    }
    const slot = this.slot(nowMs);
    let req = 0;
    let ret = 0;
    for (let i = 0; i < WINDOW_S; i++) {
      req += this.requests[i]!;
      ret += this.retries[i]!;
    }
    if (ret >= (this.spec.percent / 100) * req + this.spec.minPerSecond * WINDOW_S) {
      this.exhausted++;
      return false;
    }
    this.retries[slot]! += 1;
    return true;
  }

  /** Moves the window to the current second, clearing buckets that fell out of it. A time before
   *  the window's (another clock) counts in the current second. */
  private slot(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    if (sec < this.second) return this.second % WINDOW_S;
    if (sec !== this.second) {
      const gap = Math.min(WINDOW_S, sec - this.second);
      for (let i = 1; i <= gap; i++) {
        const s = (this.second + i) % WINDOW_S;
        this.requests[s] = 0;
        this.retries[s] = 0;
      }
      this.second = sec;
    }
    return sec % WINDOW_S;
  }
}

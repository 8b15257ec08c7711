// Local rate limit: a token bucket per worker (the config's rate is already divided among the
// workers). Refilled lazily from the clock at each take; no timer. Times are ms on the worker's
// monotonic clock (the Ticker's: `ticker.now` / `ticker.fresh()`), never Date.now().

import type { RateLimitSpec } from '../config/types.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly spec: RateLimitSpec,
    nowMs: number,
  ) {
    this.tokens = spec.burst;
    this.last = nowMs;
  }

  sameSpec(spec: RateLimitSpec): boolean {
    return spec.tokensPerSecond === this.spec.tokensPerSecond && spec.burst === this.spec.burst;
  }

  /** Takes one token; false when the bucket is empty (answer 429). `nowMs`: the ticker's clock. */
  take(nowMs: number): boolean {
    const elapsed = nowMs - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.spec.burst, this.tokens + (elapsed / 1000) * this.spec.tokensPerSecond);
      this.last = nowMs;
    } else if (elapsed < 0) {
      // A time before the last one (a caller on another clock): start over from it rather than
      // refusing until that clock catches up. Never happens on the monotonic clock.
      this.last = nowMs;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

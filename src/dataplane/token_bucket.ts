// Local rate limit: a token bucket per worker (the config's rate is already divided among the
// workers). Refilled lazily from the clock at each take; no timer.

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

  /** Takes one token; false when the bucket is empty (answer 429). */
  take(nowMs: number): boolean {
    const elapsed = nowMs - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.spec.burst, this.tokens + (elapsed / 1000) * this.spec.tokensPerSecond);
      this.last = nowMs;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

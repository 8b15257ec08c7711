// The local rate limit's token bucket on an injected clock: exact counts, no timing.

import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/dataplane/token_bucket.js';
import { ManualClock } from './manual_clock.js';

function passes(bucket: TokenBucket, nowMs: number, tries: number): number {
  let n = 0;
  for (let i = 0; i < tries; i++) if (bucket.take(nowMs)) n++;
  return n;
}

describe('TokenBucket', () => {
  it('a bucket of N with no refill passes exactly N, however long it waits', () => {
    const clock = new ManualClock();
    for (const burst of [1, 5, 100]) {
      const b = new TokenBucket({ tokensPerSecond: 0, burst }, clock.now());
      expect(passes(b, clock.now(), burst * 3)).toBe(burst);
      clock.advance(3_600_000);
      expect(passes(b, clock.now(), 10)).toBe(0);
    }
  });

  it('refills at the configured rate: 4/s gives exactly one token per 250 ms', () => {
    const clock = new ManualClock();
    const b = new TokenBucket({ tokensPerSecond: 4, burst: 2 }, clock.now());
    expect(passes(b, clock.now(), 10)).toBe(2);
    clock.advance(249);
    expect(passes(b, clock.now(), 10)).toBe(0);
    clock.advance(1);
    expect(passes(b, clock.now(), 10)).toBe(1);
    let total = 0;
    for (let i = 0; i < 40; i++) {
      clock.advance(250);
      total += passes(b, clock.now(), 3);
    }
    expect(total).toBe(40); // 10 s at 4/s, never more than the rate once drained
  });

  it('fractions accumulate across takes that each come too early', () => {
    const clock = new ManualClock();
    const b = new TokenBucket({ tokensPerSecond: 2, burst: 1 }, clock.now());
    expect(b.take(clock.now())).toBe(true);
    clock.advance(250);
    expect(b.take(clock.now())).toBe(false); // half a token
    clock.advance(250);
    expect(b.take(clock.now())).toBe(true); // the halves add up
  });

  it('never holds more than the burst after a long idle', () => {
    const clock = new ManualClock();
    const b = new TokenBucket({ tokensPerSecond: 1_000, burst: 7 }, clock.now());
    clock.advance(86_400_000);
    expect(passes(b, clock.now(), 100)).toBe(7);
  });

  it('a time before the last take (a caller on another clock) restarts the refill from it instead of starving', () => {
    const b = new TokenBucket({ tokensPerSecond: 10, burst: 1 }, 10_000);
    expect(b.take(10_000)).toBe(true);
    expect(b.take(5_000)).toBe(false); // empty, and the clock stepped back 5 s
    expect(b.take(5_100)).toBe(true); // 100 ms later on that clock: one token, not 4.9 s of refusals
  });

  it('sameSpec compares the rate and the burst', () => {
    const b = new TokenBucket({ tokensPerSecond: 10, burst: 5 }, 0);
    expect(b.sameSpec({ tokensPerSecond: 10, burst: 5 })).toBe(true);
    expect(b.sameSpec({ tokensPerSecond: 10, burst: 6 })).toBe(false);
    expect(b.sameSpec({ tokensPerSecond: 11, burst: 5 })).toBe(false);
  });
});

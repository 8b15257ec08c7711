// A cluster's retry budget on an injected clock: the concurrency cap (Envoy), the 10-second rate
// cap (Linkerd) with its floor, the window sliding by whole seconds, exact counts.

import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../src/upstream/retry_budget.js';

/** Retries granted out of `tries` asks at `nowMs` (each granted one stays counted). */
function grants(b: RetryBudget, nowMs: number, tries: number, active = 0): number {
  let n = 0;
  for (let i = 0; i < tries; i++) if (b.tryAcquire(nowMs, active)) n++;
  return n;
}

describe('RetryBudget', () => {
  it('caps retries in flight at max(minConcurrent, percent% of active requests)', () => {
    const b = new RetryBudget({ percent: 20, minConcurrent: 3, minPerSecond: 1_000 });
    const t = 50_000;
    for (let i = 0; i < 3; i++) {
      expect(b.tryAcquire(t, 10)).toBe(true);
      b.retryStarted();
    }
    expect(b.tryAcquire(t, 10)).toBe(false); // max(3, 20% of 10) = 3
    expect(b.tryAcquire(t, 20)).toBe(true); // 20% of 20 = 4
    b.retryStarted();
    expect(b.inFlight).toBe(4);
    expect(b.exhausted).toBe(1);
    // An exchange already on a retry asks again: it is counted already, so it adds none.
    expect(b.tryAcquire(t, 20)).toBe(false);
    expect(b.tryAcquire(t, 20, true)).toBe(true);
    b.retryEnded();
    b.retryEnded();
    expect(b.inFlight).toBe(2);
    expect(b.tryAcquire(t, 0)).toBe(true);
  });

  it('caps retries in 10 s at percent% of requests plus minPerSecond × 10, exactly', () => {
    const b = new RetryBudget({ percent: 20, minConcurrent: 1_000, minPerSecond: 0 });
    const t = 100_000;
    for (let i = 0; i < 100; i++) b.onRequest(t);
    expect(grants(b, t, 50)).toBe(20);
    expect(b.exhausted).toBe(30);
    const floor = new RetryBudget({ percent: 20, minConcurrent: 1_000, minPerSecond: 0.5 });
    expect(grants(floor, t, 50)).toBe(5); // no requests: the floor alone, 0.5/s × 10 s
  });

  it('the window slides by whole seconds: what was spent in second S counts until S + 10', () => {
    const b = new RetryBudget({ percent: 0, minConcurrent: 1_000, minPerSecond: 0.3 });
    expect(grants(b, 100_000, 10)).toBe(3);
    expect(grants(b, 105_500, 10)).toBe(0);
    expect(grants(b, 109_999, 10)).toBe(0);
    expect(grants(b, 110_000, 10)).toBe(3); // second 100 left the window
  });

  it('requests deposit only while they are in the window', () => {
    const b = new RetryBudget({ percent: 50, minConcurrent: 1_000, minPerSecond: 0 });
    for (let i = 0; i < 10; i++) b.onRequest(200_000);
    expect(grants(b, 209_000, 10)).toBe(5);
    const later = new RetryBudget({ percent: 50, minConcurrent: 1_000, minPerSecond: 0 });
    for (let i = 0; i < 10; i++) later.onRequest(200_000);
    expect(grants(later, 210_000, 10)).toBe(0);
  });

  it('a gap longer than the window clears it', () => {
    const b = new RetryBudget({ percent: 0, minConcurrent: 1_000, minPerSecond: 0.2 });
    expect(grants(b, 1_000, 5)).toBe(2);
    expect(grants(b, 3_600_000, 5)).toBe(2);
  });

  it('a time before the window (another clock) counts in the current second', () => {
    const b = new RetryBudget({ percent: 0, minConcurrent: 1_000, minPerSecond: 0.2 });
    expect(grants(b, 500_000, 5)).toBe(2);
    expect(grants(b, 1_000, 5)).toBe(0); // not a fresh window
    expect(grants(b, 510_000, 5)).toBe(2);
  });

  it('a changed spec applies to the next decision', () => {
    const b = new RetryBudget({ percent: 0, minConcurrent: 0, minPerSecond: 10 });
    expect(b.tryAcquire(1_000, 100)).toBe(false); // concurrency cap 0
    b.spec = { percent: 0, minConcurrent: 1, minPerSecond: 10 };
    expect(b.tryAcquire(1_000, 100)).toBe(true);
  });
});

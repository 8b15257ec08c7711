// The worker's drain (src/workers/drain.ts), in process: it ends when the exchange that finishes
// the last in-flight request says so (no polling), at once when nothing is in flight, and at the
// timeout with what is still unfinished.
import { describe, expect, it, vi } from 'vitest';
import { Drain } from '../../src/workers/drain.js';

describe('Drain', () => {
  it('nothing in flight: ends at once with 0', async () => {
    expect(await new Drain(() => 0).wait(10_000)).toBe(0);
  });

  it('ends when the last in-flight exchange is done, not before, and without a timer tick', async () => {
    vi.useFakeTimers();
    try {
      let inflight = 2;
      const drain = new Drain(() => inflight);
      let ended: number | null = null;
      const done = drain.wait(10_000).then((n) => (ended = n));
      inflight = 1;
      drain.exchangeDone();
      await Promise.resolve();
      expect(ended).toBeNull();
      inflight = 0;
      drain.exchangeDone();
      await done;
      expect(ended).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('the timeout ends it with what is still in flight; later exchanges change nothing', async () => {
    vi.useFakeTimers();
    try {
      let inflight = 3;
      const drain = new Drain(() => inflight);
      const done = drain.wait(500);
      vi.advanceTimersByTime(500);
      expect(await done).toBe(3);
      inflight = 0;
      drain.exchangeDone();
    } finally {
      vi.useRealTimers();
    }
  });

  it('exchanges done outside a drain are ignored', () => {
    const drain = new Drain(() => 0);
    expect(() => drain.exchangeDone()).not.toThrow();
  });
});

import { describe, expect, it } from 'vitest';
import { defaultRng, seededRng } from '../../src/lb/rng.js';

describe('seededRng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = seededRng(42);
    const b = seededRng(42);
    const c = seededRng(43);
    const sa = Array.from({ length: 8 }, () => a.next());
    const sb = Array.from({ length: 8 }, () => b.next());
    const sc = Array.from({ length: 8 }, () => c.next());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
  });

  it('stays in [0, 1) and is roughly uniform', () => {
    for (const seed of [0, 1, 0xffffffff, -5]) {
      const rng = seededRng(seed);
      const buckets = new Array<number>(10).fill(0);
      const n = 100_000;
      let outOfRange = 0;
      for (let i = 0; i < n; i++) {
        const x = rng.next();
        if (!(x >= 0 && x < 1)) outOfRange++;
        const k = Math.floor(x * 10);
        buckets[k] = (buckets[k] ?? 0) + 1;
      }
      expect(outOfRange).toBe(0);
      for (const count of buckets) expect(Math.abs(count / n - 0.1)).toBeLessThan(0.01);
    }
  });
});

describe('defaultRng', () => {
  it('returns numbers in [0, 1)', () => {
    for (let i = 0; i < 1000; i++) {
      const x = defaultRng.next();
      expect(x >= 0 && x < 1).toBe(true);
    }
  });
});

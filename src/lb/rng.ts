// Random sources for load balancing and weighted splits: a seeded one for tests and
// reproducible benchmarks, and the Math.random-backed default for the data plane.

import type { Rng } from './types.js';

const TWO_POW_32 = 4294967296;

/** mulberry32: 32-bit state, full period 2^32, passes BigCrush's small-state tests; deterministic per seed. */
class Mulberry32 implements Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / TWO_POW_32;
  }
}

/** A fast deterministic Rng; the same seed gives the same sequence. */
export function seededRng(seed: number): Rng {
  return new Mulberry32(seed);
}

/** Math.random-backed Rng (V8's xorshift128+, per isolate, so per worker). */
export const defaultRng: Rng = Object.freeze({ next: Math.random });

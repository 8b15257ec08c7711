import { describe, expect, it } from 'vitest';
import { createLoadBalancer } from '../../src/lb/index.js';
import { seededRng } from '../../src/lb/rng.js';
import { expectClose, hosts, pickShares, shares } from './helpers.js';

describe('random', () => {
  it('is weighted: 1:2:3 over 100k picks within ±2%', () => {
    expectClose(pickShares('random', [1, 2, 3], 1, 100_000), [1 / 6, 2 / 6, 3 / 6], 0.02);
  });

  it('is uniform with equal weights', () => {
    expectClose(pickShares('random', [7, 7, 7, 7], 2, 100_000), [0.25, 0.25, 0.25, 0.25], 0.01);
  });

  it('keeps weight proportions among the healthy hosts', () => {
    const hs = hosts([1, 2, 3]);
    (hs[2] as (typeof hs)[number]).healthy = false;
    const lb = createLoadBalancer('random', hs, seededRng(3));
    expectClose(shares(lb, hs, 100_000), [1 / 3, 2 / 3, 0], 0.01);
    expect(lb.panicking).toBe(false);
  });

  it('keeps weight proportions when one host is excluded', () => {
    const hs = hosts([1, 2, 3]);
    const lb = createLoadBalancer('random', hs, seededRng(4));
    expectClose(shares(lb, hs, 100_000, hs[1]), [1 / 4, 0, 3 / 4], 0.01);
  });

  it('never picks a zero-weight host while a positive-weight one is available', () => {
    expectClose(pickShares('random', [0, 1, 0, 1], 5, 20_000), [0, 0.5, 0, 0.5], 0.02);
  });
});

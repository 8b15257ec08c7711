import { describe, expect, it } from 'vitest';
import { createLoadBalancer } from '../../src/lb/index.js';
import { seededRng } from '../../src/lb/rng.js';
import { expectClose, hosts, pickShares, shares, type TestHost } from './helpers.js';

function setActive(hs: readonly TestHost[], active: readonly number[]): void {
  hs.forEach((h, i) => (h.active = active[i] as number));
}

describe('least_request, equal weights (power of two choices)', () => {
  it('is uniform when all hosts are equally loaded', () => {
    expectClose(pickShares('least_request', [1, 1, 1], 1, 60_000), [1 / 3, 1 / 3, 1 / 3], 0.01);
  });

  it('prefers less-loaded hosts: the most loaded of three is never chosen', () => {
    const hs = hosts([1, 1, 1]);
    setActive(hs, [5, 0, 10]);
    const lb = createLoadBalancer('least_request', hs, seededRng(2));
    const s = shares(lb, hs, 60_000);
    // Two distinct hosts out of three: the least loaded wins 2 of 3 pairs, the middle one 1 of 3.
    expectClose(s, [1 / 3, 2 / 3, 0], 0.01);
    expect(s[2]).toBe(0);
  });

  it('orders pick frequency by load', () => {
    const hs = hosts([1, 1, 1, 1, 1]);
    setActive(hs, [4, 0, 3, 1, 2]);
    const lb = createLoadBalancer('least_request', hs, seededRng(3));
    const s = shares(lb, hs, 100_000);
    // Rank r (0 = least loaded) wins the pairs with the n-1-r more loaded hosts: share (n-1-r)·2/(n(n-1)).
    expectClose(s, [0, 0.4, 0.1, 0.3, 0.2], 0.01);
    expect(s[1]! > s[3]! && s[3]! > s[4]! && s[4]! > s[2]! && s[2]! > s[0]!).toBe(true);
  });

  it('spreads in-flight requests evenly when picks hold a request', () => {
    const hs = hosts([1, 1, 1, 1]);
    const lb = createLoadBalancer('least_request', hs, seededRng(4));
    for (let i = 0; i < 400; i++) lb.pick()!.active++;
    const actives = hs.map((h) => h.active);
    expect(Math.max(...actives) - Math.min(...actives)).toBeLessThanOrEqual(2);
  });

  it('with two hosts, always picks the less loaded one', () => {
    const hs = hosts([1, 1]);
    setActive(hs, [3, 1]);
    const lb = createLoadBalancer('least_request', hs, seededRng(5));
    for (let i = 0; i < 100; i++) expect(lb.pick()).toBe(hs[1]);
  });

  it('draws among healthy hosts only (uniform when equally loaded)', () => {
    const hs = hosts([1, 1, 1, 1]);
    (hs[0] as TestHost).healthy = false;
    const lb = createLoadBalancer('least_request', hs, seededRng(6));
    expectClose(shares(lb, hs, 60_000), [0, 1 / 3, 1 / 3, 1 / 3], 0.01);
  });

  it('honours exclude, including with two hosts', () => {
    const hs = hosts([1, 1]);
    setActive(hs, [0, 9]);
    const lb = createLoadBalancer('least_request', hs, seededRng(7));
    for (let i = 0; i < 100; i++) expect(lb.pick(hs[0])).toBe(hs[1]);
  });

  it('picks the single host', () => {
    const hs = hosts([1]);
    hs[0]!.active = 100;
    const lb = createLoadBalancer('least_request', hs, seededRng(8));
    expect(lb.pick()).toBe(hs[0]);
  });
});

describe('least_request, unequal weights (weight / (active + 1))', () => {
  it('is weight-proportional when idle: 1:2:3 within ±2%', () => {
    expectClose(pickShares('least_request', [1, 2, 3], 9, 100_000), [1 / 6, 2 / 6, 3 / 6], 0.02);
  });

  it('divides each weight by active + 1', () => {
    // 1/1 : 2/4 : 3/3 = 1 : 0.5 : 1
    expectClose(pickShares('least_request', [1, 2, 3], 10, 100_000, [0, 3, 2]), [0.4, 0.2, 0.4], 0.01);
  });

  it('honours exclude and health', () => {
    const hs = hosts([1, 2, 3, 4]);
    (hs[3] as TestHost).healthy = false;
    const lb = createLoadBalancer('least_request', hs, seededRng(11));
    expectClose(shares(lb, hs, 60_000, hs[0]), [0, 0.4, 0.6, 0], 0.01);
  });
});

// Test helpers for load balancers: plain hosts and pick-frequency counting.

import type { LbPolicy } from '../../src/config/types.js';
import { createLoadBalancer } from '../../src/lb/index.js';
import { seededRng } from '../../src/lb/rng.js';
import type { LbHost, LoadBalancer } from '../../src/lb/types.js';

export interface TestHost extends LbHost {
  readonly name: string;
}

export function hosts(weights: readonly number[], names = 'abcdefghijklmnopqrstuvwxyz'): TestHost[] {
  return weights.map((weight, i) => ({ name: names[i] ?? `h${i}`, weight, active: 0, healthy: true }));
}

/** Share of `picks` picks that went to each host, in host order. */
export function shares(lb: LoadBalancer<TestHost>, all: readonly TestHost[], picks: number, exclude: TestHost | null = null): number[] {
  const counts = new Map<TestHost, number>();
  for (let i = 0; i < picks; i++) {
    const h = lb.pick(exclude);
    if (h === null) throw new Error('pick returned null');
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return all.map((h) => (counts.get(h) ?? 0) / picks);
}

export function expectClose(actual: readonly number[], expected: readonly number[], tolerance: number): void {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  actual.forEach((a, i) => {
    const e = expected[i] as number;
    if (Math.abs(a - e) > tolerance) {
      throw new Error(`share[${i}] = ${a.toFixed(4)}, expected ${e.toFixed(4)} ± ${tolerance} (all: ${actual.map((x) => x.toFixed(4)).join(', ')})`);
    }
  });
}

/** Shares of `picks` picks by a `policy` balancer over hosts of these weights (and active counts), seeded. */
export function pickShares(policy: LbPolicy, weights: readonly number[], seed: number, picks: number, active: readonly number[] = []): number[] {
  const hs = hosts(weights);
  active.forEach((a, i) => (hs[i]!.active = a));
  return shares(createLoadBalancer(policy, hs, seededRng(seed)), hs, picks);
}

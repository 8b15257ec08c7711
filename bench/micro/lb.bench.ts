// Load-balancer pick (src/lb): least_request (power of two choices) vs round_robin vs random,
// on 3 and 100 equal-weight healthy hosts, with the caller's active++/-- bookkeeping.

import type { Bench } from 'tinybench';
import { createLoadBalancer, seededRng, type LbHost } from '../../src/lb/index.js';
import type { LbPolicy } from '../../src/config/types.js';

export const title = 'lb: pick least_request vs round_robin vs random';

export function register(bench: Bench): void {
  for (const n of [3, 100]) {
    for (const policy of ['least_request', 'round_robin', 'random'] as const satisfies readonly LbPolicy[]) {
      const hosts: LbHost[] = Array.from({ length: n }, () => ({ weight: 1, active: 0, healthy: true }));
      const lb = createLoadBalancer(policy, hosts, seededRng(42));
      bench.add(`${policy}, ${n} hosts`, () => {
        const h = lb.pick();
        if (h !== null) {
          h.active++;
          h.active--;
        }
      });
    }
  }
}

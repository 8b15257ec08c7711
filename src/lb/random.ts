// `random`: weighted random choice. O(1) (equal weights) or O(log n) (prefix sums) when the
// drawn host is a candidate; an exact O(n) draw among candidates otherwise.

import { BaseLoadBalancer, randomIndex } from './base.js';
import type { LbHost, Rng } from './types.js';

export class RandomLoadBalancer<H extends LbHost> extends BaseLoadBalancer<H> {
  /** prefix[i] = weights[0] + … + weights[i]. */
  private readonly prefix: Float64Array;

  constructor(hosts: readonly H[], rng: Rng) {
    super(hosts, rng);
    this.prefix = new Float64Array(this.count);
    let acc = 0;
    for (let i = 0; i < this.count; i++) {
      acc += this.weights[i] as number;
      this.prefix[i] = acc;
    }
  }

  protected select(): H | null {
    // Draw over all hosts and keep the draw if it is a candidate; otherwise draw exactly among the
    // candidates. The mixture is exactly weight-proportional over candidates:
    // w/W + (W_out/W)·(w/W_in) = w/W_in.
    const h = this.hosts[this.drawAll()] as H;
    if (this.isCandidate(h)) return h;
    return this.weightedCandidate(false);
  }

  private drawAll(): number {
    const n = this.count;
    if (this.equalWeights || this.totalWeight <= 0) return randomIndex(this.rng, n);
    const r = this.rng.next() * this.totalWeight;
    // Smallest i with prefix[i] > r (zero-weight hosts have prefix[i] == prefix[i-1], never chosen).
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.prefix[mid] as number) > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

// `least_request`, as Envoy does it. Equal weights: power of two choices (two distinct random
// hosts, the one with fewer in-flight requests wins, ties to the first drawn). Unequal weights:
// a draw with probability ∝ weight / (active + 1) (Envoy's active_request_bias = 1.0), O(n).

import { BaseLoadBalancer, randomIndex } from './base.js';
import type { LbHost } from './types.js';

export class LeastRequestLoadBalancer<H extends LbHost> extends BaseLoadBalancer<H> {
  protected select(): H | null {
    return this.equalWeights ? this.twoChoices() : this.weightedCandidate(true);
  }

  private twoChoices(): H | null {
    const n = this.count;
    // Fast path: a distinct pair over all hosts, kept when both are candidates. Conditioned on
    // that, it is a uniform distinct pair of candidates, the same as the slow path draws.
    const i = randomIndex(this.rng, n);
    let j = randomIndex(this.rng, n - 1);
    if (j >= i) j++;
    let a = this.hosts[i] as H;
    let b = this.hosts[j] as H;
    if (!this.isCandidate(a) || !this.isCandidate(b)) {
      const m = this.countCandidates();
      if (m <= 1) return m === 0 ? null : this.nthCandidate(0);
      const x = randomIndex(this.rng, m);
      let y = randomIndex(this.rng, m - 1);
      if (y >= x) y++;
      a = this.nthCandidate(x) as H;
      b = this.nthCandidate(y) as H;
    }
    return b.active < a.active ? b : a;
  }
}

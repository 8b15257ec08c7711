// `round_robin`: nginx's smooth weighted round robin (each candidate gains its weight, the
// largest current weight wins and pays back the total), deterministic. Equal weights reduce to
// a plain rotation, done in O(1) when the next host is a candidate. Zero-weight hosts only get
// turns when no positive-weight candidate exists.

import { BaseLoadBalancer } from './base.js';
import type { LbHost, Rng } from './types.js';

export class RoundRobinLoadBalancer<H extends LbHost> extends BaseLoadBalancer<H> {
  /** nginx's current_weight per host (smooth weighted mode). */
  private readonly current: Float64Array;
  /** Next index to try (equal-weights mode). */
  private cursor = 0;

  constructor(hosts: readonly H[], rng: Rng) {
    super(hosts, rng);
    this.current = new Float64Array(this.count);
  }

  protected select(): H | null {
    return this.equalWeights ? this.rotate() : this.smooth();
  }

  private rotate(): H | null {
    const n = this.count;
    let i = this.cursor;
    for (let k = 0; k < n; k++) {
      const h = this.hosts[i] as H;
      if (++i === n) i = 0;
      if (this.isCandidate(h)) {
        this.cursor = i;
        return h;
      }
    }
    return null;
  }

  private smooth(): H | null {
    let total = 0;
    let best = -1;
    let bestWeight = 0;
    for (let i = 0; i < this.count; i++) {
      const w = this.weights[i] as number;
      if (w === 0 || !this.isCandidate(this.hosts[i] as H)) continue;
      const cw = (this.current[i] as number) + w;
      this.current[i] = cw;
      total += w;
      if (best < 0 || cw > bestWeight) {
        best = i;
        bestWeight = cw;
      }
    }
    // Only zero-weight candidates (or none): take turns among them.
    if (best < 0) return this.rotate();
    this.current[best] = bestWeight - total;
    return this.hosts[best] as H;
  }
}

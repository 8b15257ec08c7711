// Shared skeleton of every load balancer: the host list and sanitised weights captured once,
// the candidate filter (health, retry exclusion, panic) and the fallback order between them.
// Subclasses only say how to choose among the current candidates. Allocation-free per pick.

import type { LbHost, LoadBalancer, Rng } from './types.js';

/** A uniform index in [0, n); n >= 1. Clamped so that an Rng returning 1 (or rounding up) stays in range. */
export function randomIndex(rng: Rng, n: number): number {
  const i = (rng.next() * n) | 0;
  return i < n ? (i >= 0 ? i : 0) : n - 1;
}

/** A weight the balancers can do arithmetic with: positive finite, else 0. */
export function sanitiseWeight(weight: number): number {
  return Number.isFinite(weight) && weight > 0 ? weight : 0;
}

export abstract class BaseLoadBalancer<H extends LbHost> implements LoadBalancer<H> {
  panicking = false;

  protected readonly hosts: readonly H[];
  protected readonly count: number;
  /** weights[i] = sanitiseWeight(hosts[i].weight), captured at construction (weights are readonly). */
  protected readonly weights: Float64Array;
  /** Sum of `weights`. */
  protected readonly totalWeight: number;
  /** Every host has the same weight (then the unweighted fast algorithms apply). */
  protected readonly equalWeights: boolean;
  protected readonly rng: Rng;

  // The candidate filter of the pick in progress (fields, not closure captures, so picks allocate nothing).
  private exclude: H | null = null;
  private ignoreHealth = false;

  constructor(hosts: readonly H[], rng: Rng) {
    this.hosts = hosts.slice();
    this.count = this.hosts.length;
    this.rng = rng;
    this.weights = new Float64Array(this.count);
    let total = 0;
    let equal = true;
    for (let i = 0; i < this.count; i++) {
      const w = sanitiseWeight((this.hosts[i] as H).weight);
      this.weights[i] = w;
      total += w;
      if (i > 0 && w !== this.weights[0]) equal = false;
    }
    this.totalWeight = total;
    this.equalWeights = equal;
  }

  pick(exclude: H | null = null): H | null {
    const n = this.count;
    if (n === 0) {
      this.panicking = false;
      return null;
    }
    if (n === 1) {
      const only = this.hosts[0] as H;
      this.panicking = !only.healthy;
      return only;
    }
    this.exclude = exclude;
    this.ignoreHealth = false;
    let chosen = this.select();
    if (chosen !== null) {
      this.panicking = false;
    } else if (exclude !== null && exclude.healthy && this.hosts.includes(exclude)) {
      // The excluded host is the only healthy one: retry on it rather than on a sick host.
      this.panicking = false;
      chosen = exclude;
    } else {
      // No healthy host: fail open over all hosts (Envoy's panic mode).
      this.panicking = true;
      this.ignoreHealth = true;
      // Every host here is `exclude` when select() finds nothing, so exclude is a member.
      chosen = this.select() ?? exclude;
    }
    this.exclude = null;
    return chosen;
  }

  /** Chooses among the current candidates (see isCandidate), or null when there is none. */
  protected abstract select(): H | null;

  protected isCandidate(host: H): boolean {
    return host !== this.exclude && (this.ignoreHealth || host.healthy);
  }

  /** Number of current candidates. O(n). */
  protected countCandidates(): number {
    let m = 0;
    for (let i = 0; i < this.count; i++) if (this.isCandidate(this.hosts[i] as H)) m++;
    return m;
  }

  /** The k-th current candidate in host order (0-based), or null. O(n). */
  protected nthCandidate(k: number): H | null {
    for (let i = 0; i < this.count; i++) {
      const h = this.hosts[i] as H;
      if (this.isCandidate(h) && k-- === 0) return h;
    }
    return null;
  }

  /** A uniformly random current candidate, or null. O(n). */
  protected uniformCandidate(): H | null {
    const m = this.countCandidates();
    return m === 0 ? null : this.nthCandidate(randomIndex(this.rng, m));
  }

  /**
   * A current candidate chosen with probability proportional to weights[i], or with `byLoad` to
   * weights[i] / (active + 1) (least_request); uniform when all candidates weigh 0. O(n).
   */
  protected weightedCandidate(byLoad: boolean): H | null {
    let total = 0;
    let m = 0;
    for (let i = 0; i < this.count; i++) {
      const h = this.hosts[i] as H;
      if (this.isCandidate(h)) {
        m++;
        total += this.drawWeight(i, h, byLoad);
      }
    }
    if (m === 0) return null;
    if (total <= 0) return this.nthCandidate(randomIndex(this.rng, m));
    const r = this.rng.next() * total;
    let acc = 0;
    let last: H | null = null;
    for (let i = 0; i < this.count; i++) {
      const h = this.hosts[i] as H;
      const w = this.drawWeight(i, h, byLoad);
      if (w > 0 && this.isCandidate(h)) {
        acc += w;
        last = h;
        if (r < acc) return h;
      }
    }
    return last; // r rounded up to total
  }

  /** Host i's share in weightedCandidate (0 exactly when weights[i] is 0). */
  private drawWeight(i: number, h: H, byLoad: boolean): number {
    const w = this.weights[i] as number;
    return byLoad ? w / loadDivisor(h.active) : w;
  }
}

/** active + 1, guarding against a caller's counter that went negative. */
function loadDivisor(active: number): number {
  return active > 0 ? active + 1 : 1;
}

// Load-balancer seams: what a host must expose to be balanced, the random source, and the
// picker itself. Per worker and on the hot path; nothing here allocates or touches sockets.

/** What a load balancer reads from an endpoint. The LB never writes to it. */
export interface LbHost {
  /** Relative weight (> 0). A non-positive or non-finite weight counts as 0: such a host is only picked when no positive-weight candidate exists. */
  readonly weight: number;
  /** In-flight requests on this worker (the caller increments and decrements it). */
  active: number;
  /** false = skipped while another candidate is healthy. */
  healthy: boolean;
}

/** A uniform random source. */
export interface Rng {
  /** A number in [0, 1). */
  next(): number;
}

export interface LoadBalancer<H extends LbHost> {
  /**
   * Picks a host, or null when there is none (empty host list).
   *
   * Candidates, in order of preference:
   * 1. healthy hosts other than `exclude`;
   * 2. `exclude` itself, when it is the only healthy host (a retry goes back to it, as Envoy does
   *    once its previous-hosts predicate runs out of choices);
   * 3. panic (no host is healthy): every host other than `exclude`, then `exclude`.
   */
  pick(exclude?: H | null): H | null;
  /** True when the most recent pick found no healthy host and chose among all of them (Envoy's panic mode, with a 0% threshold). */
  readonly panicking: boolean;
}

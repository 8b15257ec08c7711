// The walk both per-cluster trackers (active health checks, outlier detection) make over a config
// version: which clusters to apply, which to stop with a report, which to forget. Main thread,
// on reload only; touches nothing but what its callbacks do.

import type { ClusterSpec } from '../config/types.js';

/** What a tracker does with one config version, given the clusters it tracks now. */
export interface ClusterTracker<S, C> {
  /** The cluster's section for this tracker (healthCheck, outlier); null when off. */
  spec(c: ClusterSpec): S | null;
  /** Starts tracking the cluster, or carries `old` over to the new spec and endpoints. */
  apply(c: ClusterSpec, spec: S, old: C | undefined): void;
  /** Stops tracking; `report` is true when the section was turned off (the cluster stays). */
  drop(name: string, old: C, report: boolean): void;
}

/** Applies clusters with the section on, drops (reporting) tracked ones whose section is off, then drops (silently) tracked ones no longer listed. */
export function updateClusters<S, C>(clusters: readonly ClusterSpec[], tracked: ReadonlyMap<string, C>, t: ClusterTracker<S, C>): void {
  const seen = new Set<string>();
  for (const c of clusters) {
    seen.add(c.name);
    const old = tracked.get(c.name);
    const spec = t.spec(c);
    if (spec === null) {
      if (old !== undefined) t.drop(c.name, old, true);
      continue;
    }
    t.apply(c, spec, old);
  }
  for (const [name, old] of tracked) {
    if (!seen.has(name)) t.drop(name, old, false);
  }
}

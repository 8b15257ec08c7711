// Which discovery source a cluster's `discovery` asks for: one place that maps the config's
// variants (dns, etcd) to the DiscoverySource the manager runs.

import type { ClusterSpec } from '../config/types.js';
import { DnsSource } from './dns.js';
import type { DiscoverySource } from './source.js';

/** What a source may need beyond its cluster's spec (the etcd source: the client of the top-level `discovery.etcd`). */
export type SourceDeps = Record<string, never>;

/** The source for a cluster that has `discovery`. */
export function makeSource(cluster: Pick<ClusterSpec, 'name' | 'discovery'>, _deps: SourceDeps): DiscoverySource {
  const d = cluster.discovery;
  if (d?.kind === 'dns') return new DnsSource(d);
  throw new Error(`cluster ${cluster.name}: no discovery source for ${JSON.stringify(d)}`);
}

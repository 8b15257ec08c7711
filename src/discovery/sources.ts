// Which discovery source a cluster's `discovery` asks for: one place that maps the config's
// variants (dns, etcd) to the DiscoverySource the manager runs.

import type { ClusterSpec } from '../config/types.js';
import { DnsSource } from './dns.js';
import { etcdServiceSource, type EtcdSourceDeps } from './etcd_source.js';
import type { DiscoverySource } from './source.js';

/** What a source may need beyond its cluster's spec. */
export interface SourceDeps {
  /** The client of the top-level `discovery.etcd` and its keys; null when the config has none. */
  readonly etcd: EtcdSourceDeps | null;
}

/** The source for a cluster that has `discovery`. */
export function makeSource(cluster: Pick<ClusterSpec, 'name' | 'discovery'>, deps: SourceDeps): DiscoverySource {
  const d = cluster.discovery;
  if (d?.kind === 'dns') return new DnsSource(d);
  if (d?.kind === 'etcd' && deps.etcd !== null) return etcdServiceSource(deps.etcd, d.service);
  if (d?.kind === 'etcd') throw new Error(`cluster ${cluster.name}: discovery.etcd needs the top-level discovery.etcd (the etcd cluster to read)`);
  throw new Error(`cluster ${cluster.name}: no discovery source for ${JSON.stringify(d)}`);
}

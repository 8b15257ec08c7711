// A one-line human summary of a config delta (delta.ts), for /config/history and logs:
// listeners and clusters added/removed/changed, endpoints added/removed per cluster.

import type { ConfigDelta } from './delta.js';
import { routesChanged } from './delta.js';

export function summarizeDelta(d: ConfigDelta): string {
  if (d.fromVersion === null) return 'initial config';
  const parts: string[] = [];
  for (const l of d.listeners.added) parts.push(`+listener ${l.name}`);
  for (const name of d.listeners.removed) parts.push(`-listener ${name}`);
  for (const c of d.listeners.changed) {
    if (c.moved) parts.push(`listener ${c.spec.name} moved to ${c.spec.host}:${c.spec.port}`);
    if (routesChanged(c.routes)) parts.push(`listener ${c.spec.name} routes changed`);
  }
  for (const c of d.clusters.added) parts.push(`+cluster ${c.name}`);
  for (const name of d.clusters.removed) parts.push(`-cluster ${name}`);
  for (const c of d.clusters.changed) {
    for (const e of c.endpoints.added) parts.push(`cluster ${c.spec.name} +${e.address}`);
    for (const a of c.endpoints.removed) parts.push(`cluster ${c.spec.name} -${a}`);
    if (c.settings || c.tls) parts.push(`cluster ${c.spec.name} settings changed`);
  }
  if (d.node !== null) parts.push('node settings changed');
  return parts.length === 0 ? 'no change' : parts.join(', ');
}

// A one-line human summary of a config delta (delta.ts), for /config/history and logs:
// listeners and clusters added/removed/changed (a listener change names its parts: routes, access
// log, authorization, rate limits, rebind, other settings), endpoints added/removed per cluster.

import type { ConfigDelta } from './delta.js';
import { routesChanged } from './delta.js';

export function summarizeDelta(d: ConfigDelta): string {
  if (d.fromVersion === null) return 'initial config';
  const parts: string[] = [];
  for (const l of d.listeners.added) parts.push(`+listener ${l.name}`);
  for (const name of d.listeners.removed) parts.push(`-listener ${name}`);
  for (const c of d.listeners.changed) {
    if (c.moved) parts.push(`listener ${c.spec.name} moved to ${c.spec.host}:${c.spec.port}`);
    // Every part of a listener change is named; what the delta has no flag for (error detail,
    // timeouts, header limits, ...) is "settings", and a change is never summed up as nothing.
    const what: string[] = [];
    if (routesChanged(c.routes)) what.push('routes');
    if (c.accessLog) what.push('access log');
    if (c.authorization) what.push('authorization');
    if (c.rateLimit || c.routeRateLimits.length > 0) what.push('rate limits');
    if (c.rebind && !c.moved) what.push('rebound');
    if (what.length === 0 && !c.moved) what.push('settings');
    for (const w of what) parts.push(w === 'rebound' ? `listener ${c.spec.name} rebound` : `listener ${c.spec.name} ${w} changed`);
  }
  for (const c of d.clusters.added) parts.push(`+cluster ${c.name}`);
  for (const name of d.clusters.removed) parts.push(`-cluster ${name}`);
  for (const c of d.clusters.changed) {
    for (const e of c.endpoints.added) parts.push(`cluster ${c.name} +${e.address}`);
    for (const a of c.endpoints.removed) parts.push(`cluster ${c.name} -${a}`);
    if (c.settings || c.tls) parts.push(`cluster ${c.name} settings changed`);
  }
  if (d.node !== null) parts.push('node settings changed');
  return parts.length === 0 ? 'no change' : parts.join(', ');
}

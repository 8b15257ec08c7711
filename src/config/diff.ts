// A one-line human summary of what changed between two snapshots, for /config/history and logs:
// listeners and clusters added/removed/changed, endpoints added/removed per cluster.

import type { Snapshot } from './types.js';

export function summarizeDiff(prev: Snapshot | null, next: Snapshot): string {
  if (prev === null) return 'initial config';
  const parts: string[] = [];
  const pl = new Map(prev.listeners.map((l) => [l.name, l]));
  const nl = new Map(next.listeners.map((l) => [l.name, l]));
  for (const name of nl.keys()) if (!pl.has(name)) parts.push(`+listener ${name}`);
  for (const name of pl.keys()) if (!nl.has(name)) parts.push(`-listener ${name}`);
  for (const [name, l] of nl) {
    const p = pl.get(name);
    if (p === undefined) continue;
    if (p.host !== l.host || p.port !== l.port) parts.push(`listener ${name} moved to ${l.host}:${l.port}`);
    if (JSON.stringify(p.routes) !== JSON.stringify(l.routes)) parts.push(`listener ${name} routes changed`);
  }
  const pc = new Map(prev.clusters.map((c) => [c.name, c]));
  const nc = new Map(next.clusters.map((c) => [c.name, c]));
  for (const name of nc.keys()) if (!pc.has(name)) parts.push(`+cluster ${name}`);
  for (const name of pc.keys()) if (!nc.has(name)) parts.push(`-cluster ${name}`);
  for (const [name, c] of nc) {
    const p = pc.get(name);
    if (p === undefined) continue;
    const before = new Set(p.endpoints.map((e) => e.address));
    const after = new Set(c.endpoints.map((e) => e.address));
    for (const a of after) if (!before.has(a)) parts.push(`cluster ${name} +${a}`);
    for (const a of before) if (!after.has(a)) parts.push(`cluster ${name} -${a}`);
    const { endpoints: _pe, ...pRest } = p;
    const { endpoints: _ne, ...nRest } = c;
    if (JSON.stringify(pRest) !== JSON.stringify(nRest)) parts.push(`cluster ${name} settings changed`);
  }
  if (JSON.stringify(prev.node) !== JSON.stringify(next.node)) parts.push('node settings changed');
  return parts.length === 0 ? 'no change' : parts.join(', ');
}

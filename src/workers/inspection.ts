// GET /clusters across workers: every worker's view of its clusters and listeners, summed
// (active requests, counters, connections), an endpoint healthy only if every worker says so.

import type { ClusterView, ListenerView } from './messages.js';

export function mergeClusterViews(views: ReadonlyArray<readonly ClusterView[]>): ClusterView[] {
  type Merged = Omit<ClusterView, 'endpoints'> & { endpoints: Map<string, ClusterView['endpoints'][number]> };
  const out = new Map<string, { -readonly [K in keyof Merged]: Merged[K] }>();
  for (const view of views) {
    for (const c of view) {
      let m = out.get(c.name);
      if (m === undefined) {
        m = { ...c, active: 0, pending: 0, retries_total: 0, retry_budget_exhausted_total: 0, overflow_total: 0, panicking: false, endpoints: new Map() };
        out.set(c.name, m);
      }
      m.active += c.active;
      m.pending += c.pending;
      m.retries_total += c.retries_total;
      m.retry_budget_exhausted_total += c.retry_budget_exhausted_total;
      m.overflow_total += c.overflow_total;
      m.panicking ||= c.panicking;
      for (const e of c.endpoints) {
        const prev = m.endpoints.get(e.address);
        m.endpoints.set(
          e.address,
          prev === undefined
            ? e
            : {
                address: e.address,
                weight: e.weight,
                healthy: prev.healthy && e.healthy,
                ejected: prev.ejected || e.ejected,
                unreachable_workers: prev.unreachable_workers + e.unreachable_workers,
                active: prev.active + e.active,
                connections_open: prev.connections_open + e.connections_open,
                connections_idle: prev.connections_idle + e.connections_idle,
                connections_opened_total: prev.connections_opened_total + e.connections_opened_total,
                tls_handshakes_total: prev.tls_handshakes_total + e.tls_handshakes_total,
                tls_resumed_total: prev.tls_resumed_total + e.tls_resumed_total,
                pipelining_off_workers: prev.pipelining_off_workers + e.pipelining_off_workers,
                pipelining_stops_total: prev.pipelining_stops_total + e.pipelining_stops_total,
                pipelined_moved_total: prev.pipelined_moved_total + e.pipelined_moved_total,
              },
        );
      }
    }
  }
  return [...out.values()].map((m) => ({ ...m, endpoints: [...m.endpoints.values()] }));
}

export function mergeListenerViews(views: ReadonlyArray<readonly ListenerView[]>): ListenerView[] {
  const out = new Map<string, { name: string; allowed: number[] | null; denied: number; handshake_failures: number }>();
  for (const view of views) {
    for (const l of view) {
      let m = out.get(l.name);
      if (m === undefined) {
        m = { name: l.name, allowed: null, denied: 0, handshake_failures: 0 };
        out.set(l.name, m);
      }
      m.handshake_failures += l.handshake_failures;
      if (l.authz !== null) {
        const allowed = (m.allowed ??= []);
        l.authz.allowed.forEach((n, i) => (allowed[i] = (allowed[i] ?? 0) + n));
        m.denied += l.authz.denied;
      }
    }
  }
  return [...out.values()].map((m) => ({
    name: m.name,
    authz: m.allowed === null ? null : { allowed: m.allowed, denied: m.denied },
    handshake_failures: m.handshake_failures,
  }));
}

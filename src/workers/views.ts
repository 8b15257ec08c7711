// One worker's answer to an inspection (GET /clusters): its clusters and listeners as plain
// views, summed across workers by the supervisor.

import type { WorkerRuntime } from './runtime.js';
import type { ClusterView, ListenerView } from './messages.js';

export function clusterViews(runtime: Pick<WorkerRuntime, 'clusters'>): ClusterView[] {
  return [...runtime.clusters.values()].map((c) => ({
    name: c.spec.name,
    lb: c.spec.lb,
    active: c.active,
    pending: c.budget.pending,
    retries_total: c.retriesTotal,
    retry_budget_exhausted_total: c.retryBudget.exhausted,
    overflow_total: c.overflowTotal,
    panicking: c.lb.panicking,
    endpoints: c.endpoints.map((e) => ({
      address: e.address,
      weight: e.weight,
      healthy: e.checkedHealthy,
      ejected: e.ejected,
      unreachable_workers: e.unreachable ? 1 : 0,
      active: e.active,
      connections_open: e.pool.open,
      connections_idle: e.pool.idleCount,
      connections_opened_total: e.pool.counters.connectionsOpened,
      tls_handshakes_total: e.pool.counters.tlsHandshakes,
      tls_resumed_total: e.pool.counters.tlsResumed,
      pipelining_off_workers: e.pool.pipeliningOff ? 1 : 0,
      pipelining_stops_total: e.pool.counters.pipeliningStops,
      pipelined_moved_total: e.pool.counters.pipelinedMoved,
    })),
  }));
}

export function listenerViews(runtime: Pick<WorkerRuntime, 'listeners'>): ListenerView[] {
  return [...runtime.listeners.values()].map((l) => ({ name: l.spec.name, authz: l.authzCounts, handshake_failures: l.handshakeFailures }));
}

// Worker thread entry: owns one WorkerRuntime, applies config snapshots posted by the supervisor
// (acking each version), records stats per request and posts deltas every second, answers
// /clusters inspections, and drains on request. A worker never reads files or the environment;
// everything arrives in messages.

import { CounterDeltas } from '../stats/counters.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { Exchange } from '../dataplane/exchange.js';
import type { ListenerRuntime } from '../dataplane/listener.js';
import type { ProxyError } from '../errors.js';
import type { Cluster } from '../upstream/cluster.js';
import { WorkerStats, type ClusterStatsHandle, type ListenerStatsHandle, type RouteStatsHandle } from '../stats/worker_stats.js';
import { TryOutcome } from '../dataplane/exchange.js';
import { AccessLog } from '../dataplane/access_log.js';
import type { RequestHead } from '../dataplane/request_head.js';
import type { Endpoint } from '../upstream/cluster.js';
import type { ClusterView, FromWorker, OutcomeEvent, ToWorker, WorkerInit } from './messages.js';
import { WorkerRuntime } from './runtime.js';

/** How often a worker tells the supervisor its event loop is alive. */
const HEARTBEAT_MS = 250;
const port = parentPort;
if (port === null) throw new Error('worker_main must run in a worker thread');
const init = workerData as WorkerInit;
const STATS_INTERVAL_MS = 1000;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

const stats = new WorkerStats(init.workerId);

/** Stats handles of one listener for one config version (routes by index). */
interface ListenerHandles {
  readonly spec: ListenerRuntime['spec'];
  readonly listener: ListenerStatsHandle;
  readonly routes: RouteStatsHandle[];
}
const listenerHandles = new WeakMap<ListenerRuntime, ListenerHandles>();
const clusterHandles = new WeakMap<Cluster, ClusterStatsHandle>();

function handlesOf(l: ListenerRuntime): ListenerHandles {
  let h = listenerHandles.get(l);
  if (h === undefined || h.spec !== l.spec) {
    h = { spec: l.spec, listener: stats.listener(l.spec.name), routes: l.spec.routes.map((r) => stats.route(l.spec.name, r.name)) };
    listenerHandles.set(l, h);
  }
  return h;
}

function clusterHandle(c: Cluster): ClusterStatsHandle {
  let h = clusterHandles.get(c);
  if (h === undefined) {
    h = stats.cluster(c.spec.name);
    clusterHandles.set(c, h);
  }
  return h;
}

// Outcomes for outlier detection, batched once per event-loop turn. Successes are only sent when
// they follow a failure (that is all the main thread's consecutive counters need).
let outcomes: OutcomeEvent[] = [];
function flushOutcomes(): void {
  const events = outcomes;
  outcomes = [];
  post({ type: 'outcomes', events });
}

// Access logs by listener name, re-created when a listener's access_log settings change.
const accessLogs = new Map<string, AccessLog>();
function accessLogOf(l: ListenerRuntime): AccessLog | null {
  const spec = l.spec.accessLog;
  if (spec === null) return null;
  let log = accessLogs.get(l.spec.name);
  if (log === undefined || log.spec.path !== spec.path || log.spec.format !== spec.format) {
    log?.flush();
    log = new AccessLog(spec);
    accessLogs.set(l.spec.name, log);
  }
  return log;
}

function logAccess(l: ListenerRuntime, head: RequestHead | null, route: string | null, ex: Exchange | null, status: number, err: ProxyError | null): void {
  const log = accessLogOf(l);
  if (log === null) return;
  log.write({
    listener: l.spec.name,
    route,
    cluster: ex === null ? null : ex.cluster.spec.name,
    upstream: ex === null ? null : ex.endpoint.address,
    method: head?.method ?? '',
    path: head?.target ?? '',
    status,
    duration_ms: ex === null ? 0 : Math.round((ex.endMs - ex.startMs) * 1000) / 1000,
    bytes_in: ex?.bytesIn ?? 0,
    bytes_out: ex?.bytesOut ?? 0,
    request_id: head?.requestId ?? '',
    client: head?.client ?? '',
    peer: head?.peer ?? null,
    error: err === null ? null : err.code,
    detail: err === null ? null : err.message,
    tries: ex?.tries ?? 0,
  });
}

const runtime = new WorkerRuntime({
  onTryOutcome(c: Cluster, e: Endpoint, outcome: TryOutcome): void {
    if (c.spec.outlier === null) return;
    const failed = outcome !== TryOutcome.Success;
    if (!failed && !e.lastOutcomeFailed) return;
    e.lastOutcomeFailed = failed;
    if (outcomes.length === 0) setImmediate(flushOutcomes);
    outcomes.push([c.spec.name, e.address, outcome]);
  },
  onExchangeDone(l: ListenerRuntime, ex: Exchange): void {
    const h = handlesOf(l);
    const c = clusterHandle(ex.cluster);
    const err = ex.error;
    if (err !== null) {
      if (err.code === 'upstream_connect_failed') stats.upstreamConnectFailure(c);
      else if (err.code === 'timeout') stats.upstreamTimeout(c);
      else if (err.code === 'upstream_reset') stats.upstreamReset(c);
    }
    const upstreamUs = ex.upstreamHeadMs > 0 ? (ex.upstreamHeadMs - ex.startMs) * 1000 : 0;
    stats.record(h.listener, h.routes[ex.routeIndex] ?? null, c, ex.status, (ex.endMs - ex.startMs) * 1000, upstreamUs, ex.bytesIn, ex.bytesOut);
    if (l.spec.accessLog !== null) logAccess(l, ex.head, ex.route.name, ex, ex.status, ex.error);
  },
  onLocalReply(l: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null): void {
    const h = handlesOf(l);
    stats.record(h.listener, routeIndex >= 0 ? (h.routes[routeIndex] ?? null) : null, null, err.status, 0, 0, 0, 0);
    if (l.spec.accessLog !== null) logAccess(l, head, routeIndex >= 0 ? (l.spec.routes[routeIndex]?.name ?? null) : null, null, err.status, err);
  },
  onTestStall(_route: string): void {
    if (!init.enableTestHooks) return;
    // A stuck event loop, as an endless loop in a bug would make it (bounded: 10 minutes).
    const until = Date.now() + 600_000;
    while (Date.now() < until) {
      /* spin */
    }
  },
  onTestCrash(route: string): void {
    if (!init.enableTestHooks) return;
    // Crash after the handler returns, the way a real bug in async code would.
    setImmediate(() => {
      throw new Error(`test_crash route "${route}" hit: worker ${init.workerId} crashes on purpose`);
    });
  },
}, init.workerId, Buffer.from(init.ticketKeySeed));

function flushStats(): void {
  for (const c of runtime.clusters.values()) {
    const h = clusterHandle(c);
    let open = 0;
    let idle = 0;
    for (const e of c.endpoints) {
      open += e.pool.open;
      idle += e.pool.idleCount;
    }
    stats.setActive(h, c.active);
    stats.setPoolConnections(h, open, idle);
  }
  observeCounters();
  const counters = counterDeltas.take();
  const delta = stats.takeDelta();
  if (delta.cells.length > 0 || delta.clusters.length > 0 || counters.length > 0) post({ type: 'stats', delta: { ...delta, counters } });
}
const statsTimer = setInterval(flushStats, STATS_INTERVAL_MS);
statsTimer.unref();
// Watchdog: the supervisor restarts a worker whose heartbeats stop (its event loop is stuck).
const heartbeat = setInterval(() => post({ type: 'heartbeat' }), HEARTBEAT_MS);
heartbeat.unref();

// Counters kept in data-plane objects go to the main thread as growth, never as values.
const counterDeltas = new CounterDeltas();
function observeCounters(): void {
  const w = String(init.workerId);
  for (const l of runtime.listeners.values()) {
    const listener = l.spec.name;
    counterDeltas.observe(l, 'outrigger_tls_handshake_failures_total', { listener }, l.handshakeFailures);
    counterDeltas.observe(l.underscores, 'outrigger_headers_with_underscores_dropped_total', { listener }, l.underscores.dropped);
    if (l.connectionsAccepted !== null) counterDeltas.observe(l, 'outrigger_listener_connections_accepted_total', { listener, worker: w }, l.connectionsAccepted);
    const authz = l.authzCounts;
    if (authz !== null) {
      authz.allowed.forEach((n, i) => counterDeltas.observe(authz.allowed, 'outrigger_authz_decisions_total', { listener, rule: String(i), decision: 'allow' }, n));
      counterDeltas.observe(authz.allowed, 'outrigger_authz_decisions_total', { listener, rule: '', decision: 'deny' }, authz.denied);
    }
  }
  for (const c of runtime.clusters.values()) {
    const cluster = c.spec.name;
    counterDeltas.observe(c, 'outrigger_retries_total', { cluster }, c.retriesTotal);
    counterDeltas.observe(c, 'outrigger_overflow_total', { cluster }, c.overflowTotal);
    counterDeltas.observe(c.retryBudget, 'outrigger_retry_budget_exhausted_total', { cluster }, c.retryBudget.exhausted);
    for (const e of c.endpoints) {
      const pc = e.pool.counters;
      counterDeltas.observe(pc, 'outrigger_upstream_tls_handshakes_total', { cluster, endpoint: e.address }, pc.tlsHandshakes);
      counterDeltas.observe(pc, 'outrigger_upstream_tls_resumptions_total', { cluster, endpoint: e.address }, pc.tlsResumed);
    }
  }
}

function inspect(): ClusterView[] {
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
      active: e.active,
      connections_open: e.pool.open,
      connections_idle: e.pool.idleCount,
      connections_opened_total: e.pool.counters.connectionsOpened,
      tls_handshakes_total: e.pool.counters.tlsHandshakes,
      tls_resumed_total: e.pool.counters.tlsResumed,
    })),
  }));
}

// A bug that escapes every handler: report it, close every uWS socket (Node aborts the whole
// process when a thread exits with uWS sockets open), then exit so the supervisor restarts us.
process.on('uncaughtException', (err) => {
  post({ type: 'log', level: 'error', msg: 'worker crashed', fields: { err: err.message } });
  try {
    clearInterval(statsTimer);
    for (const log of accessLogs.values()) log.flush();
    runtime.close();
  } finally {
    setImmediate(() => process.exit(1));
  }
});

// Applies run one at a time, in order.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'apply':
      queue = queue.then(async () => {
        try {
          const listeners = await runtime.apply(msg.snapshot);
          post({ type: 'applied', version: msg.snapshot.version, listeners });
        } catch (e) {
          post({ type: 'apply_failed', version: msg.snapshot.version, error: e instanceof Error ? e.message : String(e) });
        }
      });
      break;
    case 'secrets': {
      const material = msg.material;
      // Before any apply queued after it (a TLS listener needs the material to start).
      runtime.setMaterial(material);
      break;
    }
    case 'endpoint_states': {
      const states = msg.states;
      // After any apply queued before it, so that new endpoints exist.
      queue = queue.then(() => {
        for (const st of states) runtime.setEndpointState(st.cluster, st.address, st.healthy, st.ejected);
      });
      break;
    }
    case 'inspect':
      post({
        type: 'inspect_result',
        id: msg.id,
        version: runtime.version,
        clusters: inspect(),
        listeners: [...runtime.listeners.values()].map((l) => ({ name: l.spec.name, authz: l.authzCounts, handshake_failures: l.handshakeFailures })),
      });
      break;
    case 'drain':
      void drain(msg.timeoutMs);
      break;
    case 'stop':
      clearInterval(statsTimer);
      for (const log of accessLogs.values()) log.flush();
      runtime.close();
      // Exit on the next turn, once uWS has really closed its sockets.
      setImmediate(() => process.exit(0));
      break;
  }
});

async function drain(timeoutMs: number): Promise<void> {
  runtime.stopAccepting();
  const until = Date.now() + timeoutMs;
  while (runtime.inflight > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
  flushStats();
  post({ type: 'drained', unfinished: runtime.inflight });
}

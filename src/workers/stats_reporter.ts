// Worker side of stats: records every finished request (exchange or local reply) into the
// worker's counters and histograms, and once a second posts what grew since the last post to the
// main thread (StatsDelta), with the counters kept in data-plane objects turned into growth.
// Owns the stats handles of the listeners, routes and clusters it has seen, and the worker's
// event-loop delay monitor (posted every interval, so a stalling idle worker shows too).

import type { Exchange } from '../dataplane/exchange.js';
import type { ListenerRuntime } from '../dataplane/listener.js';
import { PASSTHROUGH } from '../dataplane/original_dst.js';
import type { TcpCounters } from '../dataplane/tcp_proxy.js';
import type { ProxyError } from '../errors.js';
import { isGrpcRequest } from '../grpc/wire.js';
import { grpcStatusOf } from '../dataplane/local_reply.js';
import type { RequestHead } from '../dataplane/request_head.js';
import { CounterDeltas } from '../stats/counters.js';
import type { StatsDelta } from '../stats/delta.js';
import { LoopDelayMonitor, type LoopJob } from '../stats/loop_delay.js';
import { WorkerStats, type ClusterStatsHandle, type ListenerStatsHandle, type RouteStatsHandle } from '../stats/worker_stats.js';
import type { Cluster } from '../upstream/cluster.js';

/** Stats handles of one listener for one config version (routes by index). */
interface ListenerHandles {
  readonly spec: ListenerRuntime['spec'];
  readonly listener: ListenerStatsHandle;
  readonly routes: RouteStatsHandle[];
}

/** What the reporter reads when it flushes: the worker's current listeners and clusters, and the listeners a reload closed. */
export interface StatsSource {
  readonly listeners: ReadonlyMap<string, ListenerRuntime>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Closed listeners still finishing connections (or not yet read since their last one ended): their counters keep counting under their name. */
  readonly retiredListeners: ReadonlySet<ListenerRuntime>;
  /** Called once their counters were read: retired listeners with nothing left in flight are forgotten. */
  forgetFinishedRetired(): void;
}

export class StatsReporter {
  private readonly stats: WorkerStats;
  private readonly listenerHandles = new WeakMap<ListenerRuntime, ListenerHandles>();
  private readonly clusterHandles = new WeakMap<Cluster, ClusterStatsHandle>();
  /** Counters kept in data-plane objects go to the main thread as growth, never as values. */
  private readonly counters = new CounterDeltas();
  private readonly worker: string;
  private readonly loopDelay: LoopDelayMonitor;
  /** gRPC calls by listener, route, cluster and grpc-status (outrigger_grpc_responses_total), counted up here. */
  private readonly grpc = new Map<string, { readonly labels: Readonly<Record<string, string>>; value: number }>();

  constructor(
    workerId: number,
    private readonly source: StatsSource,
    /** Posts a delta; `transfer` are its histogram buffers, fresh each flush, moved rather than copied. */
    private readonly post: (delta: StatsDelta, transfer: ArrayBuffer[]) => void,
    /** The worker's periodic job (heartbeat and flush), run from the loop-delay sampler's timer (loop_delay.ts). */
    pulse?: LoopJob,
  ) {
    this.stats = new WorkerStats(workerId);
    this.worker = String(workerId);
    this.loopDelay = new LoopDelayMonitor(`worker-${workerId}`, pulse === undefined ? {} : { job: pulse });
  }

  /** The pulse's new period (the worker's heartbeat follows its stall limit). */
  setPulseEvery(ms: number): void {
    this.loopDelay.setJobEvery(ms);
  }

  exchangeDone(l: ListenerRuntime, ex: Exchange): void {
    const h = this.handlesOf(l);
    const c = this.clusterHandle(ex.cluster);
    const err = ex.error;
    if (err !== null) {
      if (err.code === 'upstream_connect_failed') this.stats.upstreamConnectFailure(c);
      else if (err.code === 'timeout') this.stats.upstreamTimeout(c);
      else if (err.code === 'upstream_reset') this.stats.upstreamReset(c);
    }
    const upstreamUs = ex.upstreamHeadMs > 0 ? (ex.upstreamHeadMs - ex.startMs) * 1000 : 0;
    const route = h.routes[ex.routeIndex] ?? null;
    const totalUs = (ex.endMs - ex.startMs) * 1000;
    this.stats.record(h.listener, route, c, ex.status, totalUs, upstreamUs, ex.bytesIn, ex.bytesOut);
    this.stats.recordPath(h.listener, route, ex.head.method, ex.head.path, ex.status, totalUs);
    if (ex.grpcStatus >= 0) this.countGrpc(l, ex.routeIndex, ex.cluster.spec.name, ex.grpcStatus);
  }

  localReply(l: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null = null): void {
    const h = this.handlesOf(l);
    const route = routeIndex >= 0 ? (h.routes[routeIndex] ?? null) : null;
    this.stats.record(h.listener, route, null, err.status, 0, 0, 0, 0);
    if (head !== null) this.stats.recordPath(h.listener, route, head.method, head.path, err.status, 0);
    // HTTP/2 gRPC requests got the gRPC shape of the reply (h2/downstream.ts).
    if (head !== null && head.protocol === 'HTTP/2' && isGrpcRequest(head.headers)) this.countGrpc(l, routeIndex, '', grpcStatusOf(err));
  }

  private countGrpc(l: ListenerRuntime, routeIndex: number, cluster: string, status: number): void {
    const route = routeIndex >= 0 ? (l.spec.routes[routeIndex]?.name ?? '') : '';
    const key = `${l.spec.name}\u0000${route}\u0000${cluster}\u0000${status}`;
    let e = this.grpc.get(key);
    if (e === undefined) {
      e = { labels: { listener: l.spec.name, route, cluster, grpc_status: String(status) }, value: 0 };
      this.grpc.set(key, e);
    }
    e.value++;
  }

  /** Posts what grew since the last flush and the interval's event-loop delay (nothing when there is neither); whether it posted. */
  flush(): boolean {
    for (const c of this.source.clusters.values()) {
      const h = this.clusterHandle(c);
      let open = 0;
      let idle = 0;
      for (const e of c.endpoints) {
        open += e.pool.open;
        idle += e.pool.idleCount;
      }
      this.stats.setActive(h, c.active);
      this.stats.setPoolConnections(h, open, idle);
    }
    this.observeCounters();
    this.source.forgetFinishedRetired();
    const counters = this.counters.take();
    const delta = this.stats.takeDelta();
    const loopDelay = this.loopDelay.take();
    if (delta.cells.length > 0 || delta.clusters.length > 0 || counters.length > 0 || loopDelay !== null) {
      const transfer: ArrayBuffer[] = [];
      for (const cell of delta.cells) if (cell.latency !== null) transfer.push(cell.latency.buffer as ArrayBuffer);
      for (const c of delta.clusters) if (c.upstreamLatency !== null) transfer.push(c.upstreamLatency.buffer as ArrayBuffer);
      if (loopDelay !== null) transfer.push(loopDelay.delays.buffer as ArrayBuffer);
      this.post(loopDelay === null ? { ...delta, counters } : { ...delta, counters, loopDelay }, transfer);
      return true;
    }
    return false;
  }

  /** Stops the event-loop delay sampling timer, and with it the pulse (the thread is closing). */
  close(): void {
    this.loopDelay.close();
  }

  private observeCounters(): void {
    const d = this.counters;
    for (const l of [...this.source.listeners.values(), ...this.source.retiredListeners]) {
      const listener = l.spec.name;
      d.observe(l, 'outrigger_tls_handshake_failures_total', { listener }, l.handshakeFailures);
      d.observe(l.underscores, 'outrigger_headers_with_underscores_dropped_total', { listener }, l.underscores.dropped);
      if (l.connectionsAccepted !== null)
        d.observe(l, 'outrigger_listener_connections_accepted_total', { listener, worker: this.worker }, l.connectionsAccepted);
      const u = l.upgrades;
      d.observe(u, 'outrigger_upgraded_connections_total', { listener }, u.opened);
      d.observe(u, 'outrigger_upgraded_connections_closed_total', { listener }, u.closed);
      d.observe(u, 'outrigger_upgraded_bytes_total', { listener, direction: 'from_client' }, u.bytesFromClient);
      d.observe(u, 'outrigger_upgraded_bytes_total', { listener, direction: 'from_upstream' }, u.bytesFromUpstream);
      d.observe(u, 'outrigger_upgraded_client_overflows_total', { listener }, u.clientOverflows);
      if (l.tcp !== null) this.observeTcp(listener, l.tcp.counters);
      const passthrough = l.passthrough;
      if (passthrough !== null) this.observeTcp(listener, [[PASSTHROUGH, passthrough]]);
      const det = l.detected;
      if (det !== null) {
        for (const [protocol, n] of det.byProtocol) d.observe(det.byProtocol, 'outrigger_detected_connections_total', { listener, protocol }, n);
        d.observe(det, 'outrigger_detect_timeouts_total', { listener }, det.timeouts);
      }
      const dst = l.destinations;
      if (dst !== null) for (const [kind, n] of dst.byKind) d.observe(dst.byKind, 'outrigger_original_destination_connections_total', { listener, kind }, n);
      const authz = l.authzCounts;
      if (authz !== null) {
        authz.allowed.forEach((n, i) => d.observe(authz.allowed, 'outrigger_authz_decisions_total', { listener, rule: String(i), decision: 'allow' }, n));
        d.observe(authz.allowed, 'outrigger_authz_decisions_total', { listener, rule: '', decision: 'deny' }, authz.denied);
      }
    }
    for (const e of this.grpc.values()) d.observe(e, 'outrigger_grpc_responses_total', e.labels, e.value);
    for (const c of this.source.clusters.values()) {
      const cluster = c.spec.name;
      d.observe(c, 'outrigger_retries_total', { cluster }, c.retriesTotal);
      d.observe(c, 'outrigger_overflow_total', { cluster }, c.overflowTotal);
      d.observe(c.retryBudget, 'outrigger_retry_budget_exhausted_total', { cluster }, c.retryBudget.exhausted);
      for (const e of c.endpoints) {
        const pc = e.pool.counters;
        d.observe(pc, 'outrigger_upstream_tls_handshakes_total', { cluster, endpoint: e.address }, pc.tlsHandshakes);
        d.observe(pc, 'outrigger_upstream_tls_resumptions_total', { cluster, endpoint: e.address }, pc.tlsResumed);
      }
    }
  }

  private observeTcp(listener: string, byCluster: Iterable<readonly [string, TcpCounters]>): void {
    const d = this.counters;
    for (const [cluster, c] of byCluster) {
      for (const [port, n] of c.openedByPort)
        d.observe(c.openedByPort, 'outrigger_tcp_connections_total', { listener, cluster, destination_port: String(port) }, n);
      d.observe(c, 'outrigger_tcp_connections_closed_total', { listener, cluster }, c.closed);
      d.observe(c, 'outrigger_tcp_bytes_total', { listener, cluster, direction: 'from_client' }, c.bytesFromClient);
      d.observe(c, 'outrigger_tcp_bytes_total', { listener, cluster, direction: 'from_upstream' }, c.bytesFromUpstream);
      d.observe(c, 'outrigger_tcp_connection_seconds_total', { listener, cluster }, c.durationSeconds);
      for (const [reason, n] of c.refused) d.observe(c.refused, 'outrigger_tcp_refused_total', { listener, cluster, reason }, n);
    }
  }

  private handlesOf(l: ListenerRuntime): ListenerHandles {
    let h = this.listenerHandles.get(l);
    if (h === undefined || h.spec !== l.spec) {
      h = { spec: l.spec, listener: this.stats.listener(l.spec.name), routes: l.spec.routes.map((r) => this.stats.route(l.spec.name, r.name)) };
      this.listenerHandles.set(l, h);
    }
    return h;
  }

  private clusterHandle(c: Cluster): ClusterStatsHandle {
    let h = this.clusterHandles.get(c);
    if (h === undefined) {
      h = this.stats.cluster(c.spec.name);
      this.clusterHandles.set(c, h);
    }
    return h;
  }
}

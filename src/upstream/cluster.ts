// A cluster as one worker sees it: its endpoints (each with its own connection pool and
// in-flight count), its load balancer, and its pending-request budget. `reconcile` applies a
// cluster change of a config delta: an endpoint present before and after keeps its pool and
// in-flight requests, a removed one drains, a new one starts empty (DESIGN.md §1). A change of
// endpoints alone (discovery) touches only the endpoints it names.

import net from 'node:net';
import type { ClusterChange, EndpointChanges } from '../config/delta.js';
import type { ClusterSpec, EndpointSpec } from '../config/types.js';
import { createLoadBalancer } from '../lb/index.js';
import type { LbHost, LoadBalancer, Rng } from '../lb/types.js';
import { EndpointPool, type EndpointTarget, type PendingBudget, type PoolTls } from './pool.js';
import type { TlsMaterial } from '../tls/material.js';

/** Where mTLS clusters get this sidecar's current certificate material. */
export interface TlsProvider {
  tlsMaterial(): TlsMaterial | null;
}
import { RetryBudget } from './retry_budget.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';

type H2PoolModule = typeof import('./h2_pool.js');
/** The HTTP/2 pool's module (and node:http2 with it), once a cluster of this thread speaks HTTP/2. */
let h2Pools: H2PoolModule | null = null;

/**
 * Loads what `specs` need beyond HTTP/1 (once per thread); awaited before those clusters are
 * built, so that a worker whose clusters all speak HTTP/1 never loads node:http2 for them.
 */
export async function loadClusterProtocols(specs: readonly ClusterSpec[]): Promise<void> {
  if (specs.some((s) => s.protocol === 'http2')) h2Pools ??= await import('./h2_pool.js');
}

/** After a failed connect, the endpoint is out of balancing for this long, doubled per failed probe up to the cap. */
const UNREACHABLE_BASE_MS = 250;
const UNREACHABLE_MAX_MS = 4000;

/**
 * An endpoint of a cluster on one worker. Besides the main thread's verdicts (health checks,
 * outlier ejection), it takes itself out of balancing when a connect to it fails — refused or
 * timed out, nothing of a request sent — as Linkerd balances only over endpoints it can reach:
 * a killed peer that discovery still lists (until its lease expires) then costs one failed
 * connect, not a share of the traffic. A background TCP connect probes it after a backoff; it
 * is back in the set when one succeeds. Alone in its cluster, or when every endpoint is out,
 * the balancer still picks it (panic), so requests fail fast rather than wait.
 */
export class Endpoint implements LbHost, Timed {
  /** As the config or discovery gave it; a new weight replaces it. */
  spec: EndpointSpec;
  weight: number;
  active = 0;
  /** What the load balancer reads: passing health checks, not ejected, and reachable. */
  healthy = true;
  /** Active health check verdict (main thread's, shared by all workers). */
  checkedHealthy = true;
  /** Ejected by outlier detection (main thread's verdict). */
  ejected = false;
  /** Whether the last outcome this worker reported for outlier detection was a failure. */
  lastOutcomeFailed = false;
  /** A connect to it failed and no probe has reached it since (this worker's view). */
  unreachable = false;
  /** Failed connects and probes in a row: the backoff's exponent. */
  private connectFailures = 0;
  /** The probe in flight, if any. */
  private probe: net.Socket | null = null;
  /** The cluster's connect timeout, for the probe too. */
  private readonly connectTimeoutMs: number;
  private retired = false;
  /** Timed: when the next probe starts (while unreachable). */
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  /** HTTP/1 or HTTP/2 by the cluster's protocol (fixed for the endpoint's life: a protocol change replaces the cluster). */
  readonly pool: EndpointTarget;
  constructor(
    readonly address: string,
    spec: EndpointSpec,
    cluster: ClusterSpec,
    budget: PendingBudget,
    private readonly ticker: Ticker,
    tls: PoolTls | null,
  ) {
    this.spec = spec;
    this.weight = spec.weight;
    this.connectTimeoutMs = cluster.pool.connectTimeoutMs;
    if (cluster.protocol === 'http2') {
      if (h2Pools === null) throw new Error(`cluster ${cluster.name} speaks HTTP/2 before loadClusterProtocols() loaded its pool`);
      this.pool = new h2Pools.H2Pool(spec.host, spec.port, cluster.pool, budget, ticker, tls);
    } else {
      this.pool = new EndpointPool(spec.host, spec.port, cluster.pool, budget, ticker, tls);
    }
  }

  /** A try started on this endpoint (least-request input). */
  tryStarted(): void {
    this.active++;
  }

  tryEnded(): void {
    this.active--;
  }

  reweight(spec: EndpointSpec): void {
    this.spec = spec;
    this.weight = spec.weight;
  }

  setState(checkedHealthy: boolean, ejected: boolean): void {
    this.checkedHealthy = checkedHealthy;
    this.ejected = ejected;
    this.refreshHealthy();
  }

  /** A connect to this endpoint failed (refused, timed out): out of balancing until a probe reaches it. */
  connectFailed(): void {
    if (this.retired) return;
    this.connectFailures++;
    if (!this.unreachable) {
      this.unreachable = true;
      this.refreshHealthy();
    }
    if (this.probe !== null) return; // the probe in flight decides
    const backoff = Math.min(UNREACHABLE_MAX_MS, UNREACHABLE_BASE_MS * 2 ** Math.min(this.connectFailures - 1, 16));
    this.deadline = this.ticker.fresh() + backoff;
    this.ticker.add(this);
  }

  /** A try got an answer from this endpoint: whatever failed before, it is reachable. */
  reached(): void {
    if (this.connectFailures === 0) return;
    this.connectFailures = 0;
    this.backInSet();
  }

  /** The endpoint left the config: no more probes, its pool drains. */
  leave(): void {
    this.retire();
    this.pool.drain();
  }

  /** No more probes. */
  retire(): void {
    this.retired = true;
    if (this.timerEntry !== null) this.ticker.delete(this);
    this.probe?.destroy();
    this.probe = null;
  }

  /** Timed: the backoff is over; probe with a bare TCP connect (no request is risked on it). */
  onDeadline(): void {
    if (this.retired || !this.unreachable) return;
    const probe = net.connect({ host: this.spec.host, port: this.spec.port });
    this.probe = probe;
    if (this.connectTimeoutMs > 0) probe.setTimeout(this.connectTimeoutMs, () => probe.destroy(new Error('connect timeout')));
    probe.once('connect', () => {
      this.probeDone(probe);
      this.connectFailures = 0;
      this.backInSet();
    });
    probe.once('error', () => {
      this.probeDone(probe);
      this.connectFailed();
    });
  }

  private probeDone(probe: net.Socket): void {
    probe.destroy();
    if (this.probe === probe) this.probe = null;
  }

  private backInSet(): void {
    if (!this.unreachable) return;
    this.unreachable = false;
    if (this.timerEntry !== null) this.ticker.delete(this);
    this.refreshHealthy();
  }

  private refreshHealthy(): void {
    this.healthy = this.checkedHealthy && !this.ejected && !this.unreachable;
  }
}

export class Cluster {
  spec: ClusterSpec;
  /** In the load balancer's order. */
  endpoints: Endpoint[] = [];
  /** The same endpoints by address. */
  private readonly byAddress = new Map<string, Endpoint>();
  lb: LoadBalancer<Endpoint>;
  readonly budget: PendingBudget;
  readonly retryBudget: RetryBudget;
  /** Requests in flight across the cluster's endpoints on this worker (circuit breaker input). */
  active = 0;
  retriesTotal = 0;
  /** Requests refused with 503 overflow by the circuit breaker. */
  overflowTotal = 0;

  private tls: PoolTls | null;

  constructor(
    spec: ClusterSpec,
    private readonly ticker: Ticker,
    private rng: Rng,
    private readonly tlsProvider: TlsProvider,
  ) {
    this.spec = spec;
    this.budget = { pending: 0, max: spec.pool.maxPending };
    this.retryBudget = new RetryBudget(spec.retryBudget);
    this.tls = this.poolTls(spec);
    for (const e of spec.endpoints) this.byAddress.set(e.address, this.newEndpoint(e, spec));
    this.endpoints = [...this.byAddress.values()];
    this.lb = createLoadBalancer(spec.lb, this.endpoints, rng);
  }

  /**
   * Admits a request under the circuit breaker (max_requests): counts it active and deposits it
   * in the retry budget, or counts an overflow and returns false.
   */
  admit(nowMs: number): boolean {
    if (this.active >= this.spec.maxRequests) {
      this.overflowTotal++;
      return false;
    }
    this.active++;
    this.retryBudget.onRequest(nowMs);
    return true;
  }

  /** An admitted request ended. */
  release(): void {
    this.active--;
  }

  countRetry(): void {
    this.retriesTotal++;
  }

  private poolTls(spec: ClusterSpec): PoolTls | null {
    if (spec.tls === null) return null;
    const provider = this.tlsProvider;
    return { material: () => provider.tlsMaterial(), identities: spec.tls.identities };
  }

  /**
   * Applies a change of this cluster as the config delta describes it: kept endpoints keep their
   * pools and in-flight requests (new weight, pool settings, TLS), removed ones drain, new ones
   * start empty.
   */
  reconcile(change: ClusterChange, rng: Rng): void {
    this.rng = rng;
    if (change.spec === null) this.changeEndpoints(change.endpoints);
    else this.changeSpec(change.spec, change.tls);
    this.lb = createLoadBalancer(this.spec.lb, this.endpoints, this.rng);
  }

  /** Only endpoints changed: the work is the size of the change (plus the balancer's copy of the host list). */
  private changeEndpoints(changes: EndpointChanges): void {
    for (const address of changes.removed) {
      this.byAddress.get(address)?.leave();
      this.byAddress.delete(address);
    }
    for (const e of changes.changed) this.byAddress.get(e.address)?.reweight(e);
    for (const e of changes.added) this.byAddress.set(e.address, this.newEndpoint(e, this.spec));
    this.endpoints = [...this.byAddress.values()];
    this.spec = { ...this.spec, endpoints: this.endpoints.map((e) => e.spec) };
  }

  /** Settings or TLS changed: the endpoints follow the new spec's list. */
  private changeSpec(spec: ClusterSpec, tls: boolean): void {
    if (tls) this.tls = this.poolTls(spec);
    if (spec.protocol !== this.spec.protocol) {
      // Another protocol: every endpoint starts over with a new pool; the old ones drain.
      for (const e of this.byAddress.values()) e.leave();
      this.byAddress.clear();
    }
    const kept = new Map(this.byAddress);
    this.byAddress.clear();
    for (const e of spec.endpoints) {
      const ep = kept.get(e.address);
      kept.delete(e.address);
      if (ep === undefined) {
        this.byAddress.set(e.address, this.newEndpoint(e, spec));
        continue;
      }
      ep.reweight(e);
      ep.pool.spec = spec.pool;
      ep.pool.tls = this.tls;
      this.byAddress.set(e.address, ep);
    }
    for (const gone of kept.values()) gone.leave();
    this.endpoints = [...this.byAddress.values()];
    this.spec = spec;
    this.budget.max = spec.pool.maxPending;
    this.retryBudget.spec = spec.retryBudget;
  }

  private newEndpoint(e: EndpointSpec, spec: ClusterSpec): Endpoint {
    return new Endpoint(e.address, e, spec, this.budget, this.ticker, this.tls);
  }

  /** A new random generator (node.random_seed changed): the load balancer starts over with it. */
  reseed(rng: Rng): void {
    this.rng = rng;
    this.lb = createLoadBalancer(this.spec.lb, this.endpoints, rng);
  }

  endpoint(address: string): Endpoint | undefined {
    return this.byAddress.get(address);
  }

  /** The cluster left the config: drain every endpoint. */
  drain(): void {
    for (const e of this.endpoints) e.leave();
  }

  close(): void {
    for (const e of this.endpoints) {
      e.retire();
      e.pool.close();
    }
  }
}

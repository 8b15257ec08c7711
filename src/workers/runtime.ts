// Everything one worker thread owns: listeners, clusters (pools, LB state), the coarse timer.
// `apply` moves it to a new config version: clusters are reconciled by name (endpoints by
// address), listeners updated in place, re-bound (new address first, then the old one closed),
// added or closed. Nothing here is shared with another thread.

import type { ClusterSpec, ListenerSpec, Snapshot } from '../config/types.js';
import type { ProxyError } from '../errors.js';
import { defaultRng, seededRng } from '../lb/rng.js';
import type { Rng } from '../lb/types.js';
import type { Exchange, TryOutcome } from '../dataplane/exchange.js';
import type { RequestHead } from '../dataplane/request_head.js';
import { ListenerRuntime, type ListenerContext } from '../dataplane/listener.js';
import { Cluster, type Endpoint } from '../upstream/cluster.js';
import { Ticker } from '../upstream/ticker.js';
import type { TlsMaterial } from '../tls/material.js';
import type { BoundListener } from './messages.js';

export interface RuntimeHooks {
  onExchangeDone(listener: ListenerRuntime, ex: Exchange): void;
  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
  onLocalReply(listener: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null): void;
  onTestCrash(route: string): void;
  onTestStall(route: string): void;
}

export class WorkerRuntime implements ListenerContext {
  readonly ticker = new Ticker(25);
  rng: Rng = defaultRng;
  private seeded: number | null = null;
  readonly clusters = new Map<string, Cluster>();
  readonly listeners = new Map<string, ListenerRuntime>();
  /** Listeners whose socket was replaced and that still finish requests. */
  private readonly retired = new Set<ListenerRuntime>();
  version = 0;

  private material: TlsMaterial | null = null;

  constructor(
    private readonly hooks: RuntimeHooks,
    private readonly workerId: number,
    readonly ticketKeySeed: Buffer,
  ) {}

  tlsMaterial(): TlsMaterial | null {
    return this.material;
  }

  /** New certificate material from the main thread: TLS listeners and new upstream connections use it at once. */
  setMaterial(material: TlsMaterial): void {
    this.material = material;
    for (const l of this.listeners.values()) l.setMaterial(material);
  }

  cluster(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  async apply(snapshot: Snapshot): Promise<BoundListener[]> {
    const seed = snapshot.node.randomSeed;
    if (seed !== this.seeded) {
      // Each worker gets its own reproducible stream.
      this.seeded = seed;
      this.rng = seed === null ? defaultRng : seededRng((seed + this.workerId * 0x9e3779b1) >>> 0);
    }
    this.reconcileClusters(snapshot.clusters);
    // Every worker serves every listener (SO_REUSEPORT: the kernel spreads the connections).
    const mine = snapshot.listeners;
    const wanted = new Map(mine.map((l) => [l.name, l]));
    // Bind new and moved listeners first, so that a failure leaves the old ones serving.
    const fresh: Array<[string, ListenerRuntime]> = [];
    try {
      for (const spec of mine) {
        const cur = this.listeners.get(spec.name);
        if (cur !== undefined && sameAddress(cur.spec, spec) && cur.spec.tls === spec.tls && cur.spec.engine === spec.engine) continue;
        const next = new ListenerRuntime(spec, this);
        await next.listen();
        fresh.push([spec.name, next]);
      }
    } catch (e) {
      for (const [, l] of fresh) l.stopAccepting();
      throw e;
    }
    for (const [name, cur] of this.listeners) {
      const spec = wanted.get(name);
      if (spec === undefined) {
        this.retire(cur);
        this.listeners.delete(name);
      } else if (sameAddress(cur.spec, spec) && cur.spec.tls === spec.tls && cur.spec.engine === spec.engine) {
        cur.update(spec);
      }
    }
    for (const [name, next] of fresh) {
      const old = this.listeners.get(name);
      if (old !== undefined) this.retire(old);
      this.listeners.set(name, next);
    }
    for (const l of this.listeners.values()) l.refreshTargets();
    this.version = snapshot.version;
    return [...this.listeners.values()].map((l) => ({ name: l.spec.name, host: l.spec.host, port: l.port }));
  }

  private reconcileClusters(specs: readonly ClusterSpec[]): void {
    const seen = new Set<string>();
    for (const spec of specs) {
      seen.add(spec.name);
      const cur = this.clusters.get(spec.name);
      if (cur === undefined) this.clusters.set(spec.name, new Cluster(spec, this.ticker, this.rng, this));
      else cur.reconcile(spec, this.rng);
    }
    for (const [name, c] of this.clusters) {
      if (!seen.has(name)) {
        c.drain();
        this.clusters.delete(name);
      }
    }
  }

  private retire(l: ListenerRuntime): void {
    l.stopAccepting();
    if (l.inflight > 0) this.retired.add(l);
  }

  /** Exchanges in flight on every listener, current and retired. */
  get inflight(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.inflight;
    for (const l of this.retired) {
      if (l.inflight === 0) this.retired.delete(l);
      else n += l.inflight;
    }
    return n;
  }

  /** Stops accepting on every listener (drain). */
  stopAccepting(): void {
    for (const l of this.listeners.values()) l.stopAccepting();
  }

  /** Closes every listener and client connection at once (before the thread exits). */
  closeSockets(): void {
    for (const l of this.listeners.values()) l.closeAll();
    for (const l of this.retired) l.closeAll();
    this.retired.clear();
  }

  close(): void {
    this.closeSockets();
    for (const c of this.clusters.values()) c.close();
    this.ticker.stop();
  }

  // ListenerContext
  onExchangeDone(listener: ListenerRuntime, ex: Exchange): void {
    this.hooks.onExchangeDone(listener, ex);
  }

  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void {
    this.hooks.onTryOutcome(cluster, endpoint, outcome);
  }

  /** Health and ejection verdicts from the main thread. */
  setEndpointState(cluster: string, address: string, checkedHealthy: boolean, ejected: boolean): void {
    this.clusters.get(cluster)?.endpoint(address)?.setState(checkedHealthy, ejected);
  }

  onLocalReply(listener: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null): void {
    this.hooks.onLocalReply(listener, routeIndex, err, head);
  }

  onTestCrash(route: string): void {
    this.hooks.onTestCrash(route);
  }

  onTestStall(route: string): void {
    this.hooks.onTestStall(route);
  }
}

function sameAddress(a: ListenerSpec, b: ListenerSpec): boolean {
  return a.host === b.host && a.port === b.port;
}

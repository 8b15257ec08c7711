// Everything one worker thread owns: listeners, clusters (pools, LB state), the coarse timer.
// `apply` moves it along a config delta compiled by the main thread (config/delta.ts) without
// comparing specs itself: clusters added, changed (endpoints by address keep their pools) or
// drained; listeners updated in place, re-bound (new socket first, then the old one closed),
// added or closed. An apply is all or nothing: a bind failure leaves the previous config running.
// Nothing here is shared with another thread.

import type { ClusterChange, ConfigDelta, ListenerChange } from '../config/delta.js';
import type { ListenerSpec } from '../config/types.js';
import { defaultRng, seededRng } from '../lb/rng.js';
import type { Rng } from '../lb/types.js';
import { ListenerRuntime, loadEngine, type ListenerContext } from '../dataplane/listener.js';
import { Cluster, loadClusterProtocols } from '../upstream/cluster.js';
import { Ticker } from '../upstream/ticker.js';
import type { TlsMaterial } from '../tls/material.js';
import { Tracer } from '../tracing/tracer.js';
import type { BoundListener } from './messages.js';

/**
 * What the worker does when a request ends or a try's outcome is known (stats, access log,
 * outlier reports, drain) and the test hooks: handed to every listener as they are.
 */
export type RequestObserver = Pick<
  ListenerContext,
  | 'onExchangeDone'
  | 'onTryOutcome'
  | 'onLocalReply'
  | 'onTestCrash'
  | 'onTestStall'
  | 'onUpgradeEnded'
  | 'onTcpEnded'
  | 'onInflightEnded'
  | 'onDestinationRefused'
>;

export class WorkerRuntime implements ListenerContext {
  readonly ticker = new Ticker(25);
  rng: Rng = defaultRng;
  private seeded: number | null = null;
  readonly clusters = new Map<string, Cluster>();
  readonly listeners = new Map<string, ListenerRuntime>();
  /**
   * Listeners a reload closed (removed, or replaced by a re-bound socket): they finish what they
   * carry, and the stats reporter reads their counters until it has read their final values
   * (forgetFinishedRetired), so their last connections count under their name.
   */
  private readonly retired = new Set<ListenerRuntime>();
  version = 0;
  /** Built from the config's `tracing` (null: off); listeners read it per request, so a reload applies at once. */
  tracer: Tracer | null = null;

  private material: TlsMaterial | null = null;
  private socketsClosed = false;

  // The observer's callbacks, called by listeners directly (no forwarding through the runtime).
  readonly onExchangeDone: ListenerContext['onExchangeDone'];
  readonly onTryOutcome: ListenerContext['onTryOutcome'];
  readonly onLocalReply: ListenerContext['onLocalReply'];
  readonly onTestCrash: ListenerContext['onTestCrash'];
  readonly onTestStall: ListenerContext['onTestStall'];
  readonly onUpgradeEnded: ListenerContext['onUpgradeEnded'];
  readonly onTcpEnded: ListenerContext['onTcpEnded'];
  readonly onInflightEnded: ListenerContext['onInflightEnded'];
  readonly onDestinationRefused: ListenerContext['onDestinationRefused'];

  constructor(
    observer: RequestObserver,
    private readonly workerId: number,
    readonly ticketKeySeed: Buffer,
  ) {
    ({
      onExchangeDone: this.onExchangeDone,
      onTryOutcome: this.onTryOutcome,
      onLocalReply: this.onLocalReply,
      onTestCrash: this.onTestCrash,
      onTestStall: this.onTestStall,
      onUpgradeEnded: this.onUpgradeEnded,
      onTcpEnded: this.onTcpEnded,
      onInflightEnded: this.onInflightEnded,
      onDestinationRefused: this.onDestinationRefused,
    } = observer);
  }

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

  /** Applies a config delta compiled for this worker; resolves to the listeners it now serves. */
  async apply(delta: ConfigDelta): Promise<BoundListener[]> {
    await loadClusterProtocols([...delta.clusters.added, ...delta.clusters.changed.flatMap((c) => (c.spec === null ? [] : [c.spec]))]);
    // New clusters first (nothing routes to them yet), so that fresh listeners resolve them.
    const added = delta.clusters.added.map((spec) => new Cluster(spec, this.ticker, this.rng, this));
    for (const c of added) this.clusters.set(c.spec.name, c);
    let fresh: Array<[string, ListenerRuntime]>;
    try {
      fresh = await this.bindFresh(
        delta.listeners.added,
        delta.listeners.changed.filter((c) => c.rebind),
      );
    } catch (e) {
      for (const c of added) {
        this.clusters.delete(c.spec.name);
        c.close();
      }
      throw e;
    }
    const reseeded = delta.node !== null && this.reseed(delta.node.randomSeed);
    if (delta.tracing !== undefined) this.tracer = delta.tracing === null ? null : new Tracer(delta.tracing);
    this.applyClusters(delta.clusters.changed, delta.clusters.removed, reseeded);
    this.applyListeners(delta.listeners.changed, delta.listeners.removed, fresh);
    // Changed clusters too: an inbound original_destination listener's local-app twins follow their settings.
    if (added.length > 0 || delta.clusters.changed.length > 0 || delta.clusters.removed.length > 0) for (const l of this.listeners.values()) l.refreshTargets();
    this.version = delta.version;
    return [...this.listeners.values()].map((l) => ({ name: l.spec.name, host: l.spec.host, port: l.port }));
  }

  /**
   * Binds new and re-bound listeners before anything else changes, so that a failure leaves the
   * old ones serving. A listener re-bound on the same address takes over the old one's socket
   * where both engines allow it (ListenerRuntime.listen).
   */
  private async bindFresh(added: readonly ListenerSpec[], rebound: readonly ListenerChange[]): Promise<Array<[string, ListenerRuntime]>> {
    const fresh: Array<[string, ListenerRuntime]> = [];
    const specs = [
      ...added.map((spec) => ({ spec, replacing: null })),
      ...rebound.map((c) => ({ spec: c.spec, replacing: c.moved ? null : (this.listeners.get(c.spec.name) ?? null) })),
    ];
    try {
      for (const { spec, replacing } of specs) {
        await loadEngine(spec);
        const next = new ListenerRuntime(spec, this);
        await next.listen(replacing);
        fresh.push([spec.name, next]);
      }
    } catch (e) {
      for (const [, l] of fresh) l.stopAccepting();
      throw e;
    }
    return fresh;
  }

  /** A new node.random_seed: each worker gets its own reproducible stream. True when the generator changed. */
  private reseed(seed: number | null): boolean {
    if (seed === this.seeded) return false;
    this.seeded = seed;
    this.rng = seed === null ? defaultRng : seededRng((seed + this.workerId * 0x9e3779b1) >>> 0);
    return true;
  }

  private applyClusters(changed: readonly ClusterChange[], removed: readonly string[], reseeded: boolean): void {
    const touched = new Set<string>();
    for (const change of changed) {
      touched.add(change.name);
      this.clusters.get(change.name)?.reconcile(change, this.rng);
    }
    if (reseeded) for (const c of this.clusters.values()) if (!touched.has(c.spec.name)) c.reseed(this.rng);
    for (const name of removed) {
      this.clusters.get(name)?.drain();
      this.clusters.delete(name);
    }
  }

  private applyListeners(changed: readonly ListenerChange[], removed: readonly string[], fresh: ReadonlyArray<[string, ListenerRuntime]>): void {
    for (const name of removed) {
      const cur = this.listeners.get(name);
      if (cur === undefined) continue;
      this.retire(cur);
      this.listeners.delete(name);
    }
    for (const change of changed) if (!change.rebind) this.listeners.get(change.spec.name)?.update(change);
    for (const [name, next] of fresh) {
      const old = this.listeners.get(name);
      if (old !== undefined) {
        // Connections a retired tcp listener still carries keep counting under its name.
        if (next.tcp !== null && old.tcp !== null) next.tcp.shareCounters(old.tcp);
        this.retire(old);
      }
      this.listeners.set(name, next);
    }
  }

  private retire(l: ListenerRuntime): void {
    l.stopAccepting();
    this.retired.add(l);
  }

  /** Listeners a reload closed that the stats reporter has not yet read for the last time. */
  get retiredListeners(): ReadonlySet<ListenerRuntime> {
    return this.retired;
  }

  /** The stats reporter has read every retired listener's counters: those with nothing in flight are done. */
  forgetFinishedRetired(): void {
    for (const l of this.retired) if (l.inflight === 0) this.retired.delete(l);
  }

  /** Work in flight on every listener, current and retired. */
  get inflight(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.inflight;
    for (const l of this.retired) n += l.inflight;
    return n;
  }

  /** Stops accepting on every listener (drain). */
  stopAccepting(): void {
    for (const l of this.listeners.values()) l.stopAccepting();
  }

  /** Closes every listener and client connection at once (before the thread exits; once: uWS apps close once). */
  closeSockets(): void {
    if (this.socketsClosed) return;
    this.socketsClosed = true;
    for (const l of this.listeners.values()) l.closeAll();
    for (const l of this.retired) l.closeAll();
    this.retired.clear();
  }

  close(): void {
    this.closeSockets();
    for (const c of this.clusters.values()) c.close();
    this.ticker.stop();
  }

  /** Health and ejection verdicts from the main thread. */
  setEndpointState(cluster: string, address: string, checkedHealthy: boolean, ejected: boolean): void {
    this.clusters.get(cluster)?.endpoint(address)?.setState(checkedHealthy, ejected);
  }
}

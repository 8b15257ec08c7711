// The main thread's discovery manager: runs one source (DNS, etcd) per cluster that has
// `discovery`, and puts each endpoint set it reports into the data plane through the workers'
// acknowledged apply path, as an endpoint change of the running snapshot (pools of kept endpoints
// survive, removed ones drain), never as a new config version. Also reports each source's health
// (/ready, /stats, /metrics). Touches the supervisor only through `plane`.

import { parseHostPort } from '../config/address.js';
import { sameValue } from '../config/equal.js';
import type { ClusterSpec, DiscoverySpec, EndpointSpec, Snapshot } from '../config/types.js';
import type { Log } from '../log.js';
import type { DiscoveredEndpoint, DiscoverySource, SourceHealth } from './source.js';
import { isoTime } from '../time.js';

export interface DiscoveryManagerDeps {
  /** Applies a snapshot derived from the one the workers run, at its turn among applies (Supervisor.update). */
  readonly plane: { update(make: (running: Snapshot) => Snapshot): Promise<Snapshot> };
  /** The main-thread parts that follow what the workers run (health checks of new endpoints, stats). */
  readonly applied: (running: Snapshot) => void;
  readonly makeSource: (cluster: ClusterSpec) => DiscoverySource;
  readonly log: Log;
}

/** One discovered cluster's source and its state, as /ready and /stats show it. */
export interface DiscoveryStatus {
  readonly cluster: string;
  readonly source: string;
  readonly ok: boolean;
  /** Stale: the lookup error, and since when (ISO time) the last-known set is served. */
  readonly error?: string;
  readonly since?: string;
  /** Endpoints the cluster has now; null = none found yet. */
  readonly endpoints: number | null;
  /** Sets applied to the workers since the source started. */
  readonly updates: number;
  /** ISO time of the newest applied set; null = none yet. */
  readonly last_update: string | null;
}

class Watched {
  /**
   * The newest set the source reported, by address; null = none yet. A kept address keeps its
   * EndpointSpec object from set to set, so that the workers' deltas see only what changed.
   */
  byAddress: ReadonlyMap<string, EndpointSpec> | null = null;
  /** The set last made into a snapshot's endpoints (sorted by address), and the map it was made from. */
  private sorted: readonly EndpointSpec[] = [];
  private sortedFrom: ReadonlyMap<string, EndpointSpec> = new Map();
  /** The set differs from what the workers were last given. */
  dirty = false;
  health: SourceHealth = { ok: true };
  updates = 0;
  lastUpdateMs: number | null = null;
  constructor(
    readonly spec: DiscoverySpec,
    readonly source: DiscoverySource,
  ) {}

  /** The newest set as a snapshot's endpoints, sorted by address; null = none yet. Made when an apply takes it. */
  get endpoints(): readonly EndpointSpec[] | null {
    if (this.byAddress === null) return null;
    if (this.sortedFrom !== this.byAddress) {
      this.sorted = resorted(this.sorted, this.sortedFrom, this.byAddress);
      this.sortedFrom = this.byAddress;
    }
    return this.sorted;
  }
}

export class DiscoveryManager {
  private readonly watched = new Map<string, Watched>();
  /** The endpoint apply in flight; sets that arrive meanwhile wait for it and go as one. */
  private inFlight: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: DiscoveryManagerDeps) {}

  /** `snapshot` with each discovered cluster's endpoints replaced by its newest known set. */
  overlay(snapshot: Snapshot): Snapshot {
    if (!snapshot.clusters.some((c) => c.discovery !== null && this.watched.get(c.name)?.endpoints != null)) return snapshot;
    const clusters = snapshot.clusters.map((c) => {
      const known = c.discovery === null ? null : (this.watched.get(c.name)?.endpoints ?? null);
      return known === null ? c : { ...c, endpoints: known };
    });
    return { ...snapshot, clusters };
  }

  /**
   * Follows the clusters of the snapshot the workers now run: starts a source for a new
   * discovered cluster, restarts one whose discovery changed (the last set stays until the new
   * source answers), stops those of clusters removed or turned static.
   */
  reconcile(running: Snapshot): void {
    if (this.stopped) return;
    const wanted = new Map(running.clusters.filter((c) => c.discovery !== null).map((c) => [c.name, c]));
    for (const [name, w] of [...this.watched]) {
      const next = wanted.get(name);
      if (next !== undefined && sameValue(next.discovery, w.spec)) continue;
      this.watched.delete(name);
      void this.stopSource(name, w);
      if (next !== undefined) this.start(next, w.byAddress);
    }
    for (const [name, c] of wanted) if (!this.watched.has(name)) this.start(c, null);
  }

  /** Stops every source (drain). */
  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.watched];
    this.watched.clear();
    await Promise.all(all.map(([name, w]) => this.stopSource(name, w)));
  }

  status(): DiscoveryStatus[] {
    return [...this.watched].map(([cluster, w]) => ({
      cluster,
      source: w.source.describe,
      ok: w.health.ok,
      ...(w.health.ok ? {} : { error: w.health.error, since: isoTime(w.health.sinceMs) }),
      endpoints: w.byAddress?.size ?? null,
      updates: w.updates,
      last_update: w.lastUpdateMs === null ? null : isoTime(w.lastUpdateMs),
    }));
  }

  /** The sources' health and updates in the Prometheus text format. */
  prometheus(): string {
    if (this.watched.size === 0) return '';
    const now = Date.now();
    const rows = [...this.watched].map(([cluster, w]) => ({ cluster, w, labels: `cluster="${esc(cluster)}"` }));
    return [
      "# HELP outrigger_discovery_healthy Whether a discovered cluster's source is fresh (1) or serving its last-known endpoints after an error (0).",
      '# TYPE outrigger_discovery_healthy gauge',
      ...rows.map((r) => `outrigger_discovery_healthy{${r.labels},source="${esc(r.w.source.describe)}"} ${r.w.health.ok ? 1 : 0}`),
      '# HELP outrigger_discovery_updates_total Endpoint sets of a discovered cluster applied to the workers.',
      '# TYPE outrigger_discovery_updates_total counter',
      ...rows.map((r) => `outrigger_discovery_updates_total{${r.labels}} ${r.w.updates}`),
      '# HELP outrigger_discovery_last_update_age_seconds Age of the newest endpoint set applied for a discovered cluster (NaN: none yet).',
      '# TYPE outrigger_discovery_last_update_age_seconds gauge',
      ...rows.map((r) => `outrigger_discovery_last_update_age_seconds{${r.labels}} ${r.w.lastUpdateMs === null ? 'NaN' : (now - r.w.lastUpdateMs) / 1000}`),
      '',
    ].join('\n');
  }

  private start(cluster: ClusterSpec, lastKnown: ReadonlyMap<string, EndpointSpec> | null): void {
    let source: DiscoverySource;
    try {
      source = this.deps.makeSource(cluster);
    } catch (e) {
      // The cluster keeps what it has (nothing, at start): the rest of the sidecar serves on.
      this.deps.log.error({ cluster: cluster.name, err: (e as Error).message }, 'discovery source cannot start');
      return;
    }
    const w = new Watched(cluster.discovery!, source);
    w.byAddress = lastKnown;
    this.watched.set(cluster.name, w);
    this.deps.log.info({ cluster: cluster.name, source: w.source.describe }, 'discovery source started');
    w.source.start(
      (set) => this.onSet(cluster.name, w, set),
      (h) => this.onHealth(cluster.name, w, h),
    );
  }

  private async stopSource(name: string, w: Watched): Promise<void> {
    try {
      await w.source.stop();
    } catch (e) {
      this.deps.log.warn({ cluster: name, source: w.source.describe, err: (e as Error).message }, 'discovery source did not stop cleanly');
    }
  }

  private onSet(name: string, w: Watched, set: readonly DiscoveredEndpoint[]): void {
    if (this.watched.get(name) !== w) return; // a stopped source's late answer
    const next = this.toSpecs(name, set, w.byAddress);
    const change = setChange(w.byAddress ?? new Map(), next);
    const same = change.added.length + change.removed.length + change.reweighted.length === 0;
    if (w.byAddress !== null && same) return; // a refresh that found the same set
    const first = w.byAddress === null;
    w.byAddress = next;
    w.dirty = true;
    // Each change at debug: a service in churn changes many times a second (and the main thread
    // writes its log synchronously).
    const fields = { cluster: name, endpoints: next.size, added: listed(change.added), removed: listed(change.removed), reweighted: listed(change.reweighted) };
    if (first) this.deps.log.info(fields, 'discovered endpoints');
    else this.deps.log.debug(fields, 'discovered endpoints changed');
    this.schedule();
  }

  private onHealth(name: string, w: Watched, h: SourceHealth): void {
    if (this.watched.get(name) !== w || w.health.ok === h.ok) return;
    w.health = h;
    if (h.ok) this.deps.log.info({ cluster: name, source: w.source.describe }, 'discovery source fresh again');
    else this.deps.log.warn({ cluster: name, source: w.source.describe, err: h.error }, 'discovery source failing; serving the last-known endpoints');
  }

  /** At most one apply in flight: sets that arrive meanwhile are coalesced into the next one (the newest wins). */
  private schedule(): void {
    if (this.inFlight !== null || this.stopped) return;
    const batch = [...this.watched.values()].filter((w) => w.dirty);
    if (batch.length === 0) return;
    for (const w of batch) w.dirty = false;
    this.inFlight = this.deps.plane
      .update((running) => this.overlay(running))
      .then(
        (applied) => {
          const now = Date.now();
          for (const w of batch) {
            w.updates++;
            w.lastUpdateMs = now;
          }
          this.deps.applied(applied);
        },
        (e: unknown) => this.deps.log.error({ err: (e as Error).message }, 'discovered endpoints not applied; the workers keep the previous ones'),
      )
      .finally(() => {
        this.inFlight = null;
        this.schedule();
      });
  }

  /**
   * A source's set as endpoints by address: valid `ip:port` addresses, once each. The endpoint of
   * an address `known` holds with the same weight is reused as it is (it was checked then).
   */
  private toSpecs(name: string, set: readonly DiscoveredEndpoint[], known: ReadonlyMap<string, EndpointSpec> | null): Map<string, EndpointSpec> {
    const byAddress = new Map<string, EndpointSpec>();
    for (const e of set) {
      const weight = clampWeight(e.weight);
      const same = known?.get(e.address);
      if (same !== undefined && same.weight === weight) {
        byAddress.set(e.address, same);
        continue;
      }
      const hp = parseHostPort(e.address, false);
      if (!hp.ok) {
        this.deps.log.warn({ cluster: name, address: e.address, err: hp.message }, 'discovered endpoint ignored');
        continue;
      }
      byAddress.set(e.address, { address: e.address, host: hp.value.host, port: hp.value.port, weight });
    }
    return byAddress;
  }
}

/** What a new set changes, for the log: the addresses added, removed and re-weighted. */
interface SetChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly reweighted: readonly string[];
}

function setChange(prev: ReadonlyMap<string, EndpointSpec>, next: ReadonlyMap<string, EndpointSpec>): SetChange {
  const added: string[] = [];
  const reweighted: string[] = [];
  for (const [address, e] of next) {
    const p = prev.get(address);
    if (p === undefined) added.push(address);
    else if (p !== e) reweighted.push(address);
  }
  const removed: string[] = [];
  for (const address of prev.keys()) if (!next.has(address)) removed.push(address);
  return { added, removed, reweighted };
}

const LOGGED_ADDRESSES = 10;

/** Addresses for a log line: a whole service's set (the first one, or a big change) is named by its first few and a count. */
function listed(addresses: readonly string[]): readonly string[] {
  if (addresses.length <= LOGGED_ADDRESSES) return addresses;
  return [...addresses.slice(0, LOGGED_ADDRESSES), `... ${addresses.length - LOGGED_ADDRESSES} more`];
}

/**
 * `next` sorted by address, made from the previous sorted set (`prev`, and the same by address)
 * without sorting it all again: kept endpoints keep their order (with their newest spec), the few
 * new ones are sorted and merged in.
 */
function resorted(prev: readonly EndpointSpec[], prevByAddress: ReadonlyMap<string, EndpointSpec>, next: ReadonlyMap<string, EndpointSpec>): EndpointSpec[] {
  const kept: EndpointSpec[] = [];
  for (const e of prev) {
    const now = next.get(e.address);
    if (now !== undefined) kept.push(now);
  }
  const added: EndpointSpec[] = [];
  for (const [address, e] of next) if (!prevByAddress.has(address)) added.push(e);
  added.sort(byAddress);
  const out: EndpointSpec[] = [];
  let i = 0;
  let j = 0;
  while (i < kept.length || j < added.length) {
    if (j === added.length || (i < kept.length && byAddress(kept[i]!, added[j]!) < 0)) out.push(kept[i++]!);
    else out.push(added[j++]!);
  }
  return out;
}

function byAddress(a: EndpointSpec, b: EndpointSpec): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

/** The config's weight range (1-1000): an SRV weight may be 0 (rarely chosen, still an endpoint) or up to 65535. */
function clampWeight(weight: number | undefined): number {
  return weight === undefined ? 1 : Math.min(1000, Math.max(1, Math.round(weight)));
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

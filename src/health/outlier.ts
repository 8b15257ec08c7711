// Passive outlier detection (issue 7), on the main thread: every worker reports each upstream
// outcome here, so the consecutive counters see one stream per endpoint across workers; an
// ejection or its end is reported through one callback that the caller broadcasts. Timers only.

import type { ClusterSpec, EndpointSpec, OutlierSpec } from '../config/types.js';
import { updateClusters } from './clusters.js';
import { isoTime } from '../time.js';

/** `gateway`: 502/503/504 or a locally originated failure (connect failure, reset, timeout).
 *  `5xx`: any other 5xx. `success`: anything else. */
export type Outcome = 'success' | '5xx' | 'gateway';

export interface OutlierOptions {
  /** Clock in ms (Date.now by default); ejection times and decay are measured with it. */
  now?: () => number;
}

export interface OutlierState {
  cluster: string;
  address: string;
  ejected: boolean;
  ejections_total: number;
  /** ISO time the current ejection ends (un-ejection happens at the next sweep after it); null when not ejected. */
  ejected_until: string | null;
  consecutive_5xx: number;
  consecutive_gateway_failure: number;
}

/** Upper bound of one ejection, ms, unless base_ejection_ms is larger (Envoy's max_ejection_time default). */
export const MAX_EJECTION_MS = 300_000;

interface Host {
  readonly cluster: string;
  readonly address: string;
  ejected: boolean;
  /** Clock ms at which the current ejection ends. */
  ejectedUntil: number;
  ejectionsTotal: number;
  /** n of the last ejection: the next one lasts base × 2^n; decays by one per quiet interval. */
  multiplier: number;
  /** Start of the current failure-free, un-ejected stretch (advanced by one interval per decay step). */
  quietSince: number;
  consecutive5xx: number;
  consecutiveGateway: number;
}

interface ClusterState {
  spec: OutlierSpec;
  hosts: Map<string, Host>;
  ejectedCount: number;
  timer: NodeJS.Timeout;
}

export class OutlierDetector {
  private readonly clusters = new Map<string, ClusterState>();
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly onChange: (cluster: string, address: string, ejected: boolean) => void,
    opts: OutlierOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Applies a config version. Endpoints that stay keep their state; removed ones are forgotten
   *  without a callback (as are removed clusters); a cluster whose outlier became null reports
   *  its ejected endpoints un-ejected and stops. A new spec applies from the next outcome. */
  update(clusters: readonly ClusterSpec[]): void {
    if (this.closed) return;
    const now = this.now();
    updateClusters(clusters, this.clusters, {
      spec: (c) => c.outlier,
      apply: (c, spec, old) => this.applyCluster(c.name, c.endpoints, spec, old, now),
      drop: (name, old, report) => this.dropCluster(name, old, report),
    });
  }

  /** One upstream outcome from any worker, in arrival order. Unknown clusters/endpoints (a reload
   *  race) and endpoints currently ejected are ignored. */
  record(cluster: string, address: string, outcome: Outcome): void {
    const cs = this.clusters.get(cluster);
    const h = cs?.hosts.get(address);
    if (cs === undefined || h === undefined) return;
    const now = this.now();
    this.refresh(cs, h, now);
    if (h.ejected) return;
    if (outcome === 'success') {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      return;
    }
    h.quietSince = now;
    h.consecutive5xx++;
    if (outcome === 'gateway') {
      h.consecutiveGateway++;
      if (h.consecutiveGateway >= cs.spec.consecutiveGatewayFailure) {
        // As Envoy: the counter that tripped restarts whether or not the ejection is allowed.
        h.consecutiveGateway = 0;
        this.tryEject(cs, h, now);
      }
    } else {
      h.consecutiveGateway = 0;
    }
    if (h.consecutive5xx >= cs.spec.consecutive5xx) {
      h.consecutive5xx = 0;
      if (!h.ejected) this.tryEject(cs, h, now);
    }
  }

  /** Un-ejects endpoints whose time is up and decays multipliers; runs on each cluster's
   *  `intervalMs` timer, exported for tests with a fake clock. */
  sweep(): void {
    const now = this.now();
    for (const cs of this.clusters.values()) this.sweepCluster(cs, now);
  }

  states(): OutlierState[] {
    const now = this.now();
    const out: OutlierState[] = [];
    for (const cs of this.clusters.values()) {
      this.sweepCluster(cs, now);
      for (const h of cs.hosts.values()) {
        out.push({
          cluster: h.cluster,
          address: h.address,
          ejected: h.ejected,
          ejections_total: h.ejectionsTotal,
          ejected_until: h.ejected ? isoTime(h.ejectedUntil) : null,
          consecutive_5xx: h.consecutive5xx,
          consecutive_gateway_failure: h.consecutiveGateway,
        });
      }
    }
    return out;
  }

  /** Stops the timers and forgets everything; no callback fires afterwards. */
  close(): void {
    this.closed = true;
    for (const cs of this.clusters.values()) clearInterval(cs.timer);
    this.clusters.clear();
  }

  private applyCluster(name: string, endpoints: readonly EndpointSpec[], spec: OutlierSpec, old: ClusterState | undefined, now: number): void {
    const hosts = new Map<string, Host>();
    let ejectedCount = 0;
    for (const ep of endpoints) {
      if (hosts.has(ep.address)) continue;
      const h = old?.hosts.get(ep.address) ?? newHost(name, ep.address, now);
      if (h.ejected) ejectedCount++;
      hosts.set(ep.address, h);
    }
    if (old === undefined) {
      this.clusters.set(name, { spec, hosts, ejectedCount, timer: this.startTimer(name, spec.intervalMs) });
      return;
    }
    if (old.spec.intervalMs !== spec.intervalMs) {
      clearInterval(old.timer);
      old.timer = this.startTimer(name, spec.intervalMs);
    }
    old.spec = spec;
    old.hosts = hosts;
    old.ejectedCount = ejectedCount;
  }

  private startTimer(name: string, intervalMs: number): NodeJS.Timeout {
    const timer = setInterval(() => {
      const cs = this.clusters.get(name);
      if (cs !== undefined) this.sweepCluster(cs, this.now());
    }, intervalMs);
    timer.unref();
    return timer;
  }

  private dropCluster(name: string, cs: ClusterState, reportUnejected: boolean): void {
    clearInterval(cs.timer);
    this.clusters.delete(name);
    if (!reportUnejected) return;
    for (const h of cs.hosts.values()) {
      if (h.ejected) {
        h.ejected = false;
        this.onChange(h.cluster, h.address, false);
      }
    }
  }

  private sweepCluster(cs: ClusterState, now: number): void {
    for (const h of cs.hosts.values()) this.refresh(cs, h, now);
  }

  /** Brings one host up to `now`: ends an ejection whose time is up, or decays its multiplier by
   *  one per full interval spent un-ejected without a failure. */
  private refresh(cs: ClusterState, h: Host, now: number): void {
    if (h.ejected) {
      if (now < h.ejectedUntil) return;
      h.ejected = false;
      cs.ejectedCount--;
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      h.quietSince = now;
      this.onChange(h.cluster, h.address, false);
      return;
    }
    const interval = cs.spec.intervalMs;
    while (h.multiplier > 0 && now - h.quietSince >= interval) {
      h.multiplier--;
      h.quietSince += interval;
    }
  }

  /** Ejects unless that would put more than max_ejection_percent of the cluster's endpoints out;
   *  one endpoint may always be ejected (Envoy: "at least one host regardless of the value"). */
  private tryEject(cs: ClusterState, h: Host, now: number): void {
    this.sweepCluster(cs, now);
    const allowed = cs.ejectedCount === 0 || (100 * (cs.ejectedCount + 1)) / cs.hosts.size <= cs.spec.maxEjectionPercent;
    if (!allowed) return;
    const base = cs.spec.baseEjectionMs;
    const cap = Math.max(base, MAX_EJECTION_MS);
    // As Envoy: the multiplier stops growing once an ejection reaches the cap.
    if (h.multiplier === 0 || base * 2 ** (h.multiplier - 1) < cap) h.multiplier++;
    h.ejected = true;
    h.ejectedUntil = now + Math.min(base * 2 ** (h.multiplier - 1), cap);
    h.ejectionsTotal++;
    cs.ejectedCount++;
    this.onChange(h.cluster, h.address, true);
  }
}

function newHost(cluster: string, address: string, now: number): Host {
  return {
    cluster,
    address,
    ejected: false,
    ejectedUntil: 0,
    ejectionsTotal: 0,
    multiplier: 0,
    quietSince: now,
    consecutive5xx: 0,
    consecutiveGateway: 0,
  };
}

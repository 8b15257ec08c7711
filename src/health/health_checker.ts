// Active health checks (issue 7), run once per sidecar on the main thread: an HTTP/1.1 GET per
// endpoint every `intervalMs` (±10% jitter; HTTP/2 for `protocol: http2` clusters, which may check
// with the gRPC health-checking protocol instead of a GET; a bare TCP connect for `tcp` checks;
// mTLS for `tls` clusters),
// thresholds flip the endpoint's health and report it through one callback; the caller
// broadcasts to workers. The probes themselves (probes.ts: node:http, http2, https, tls) load
// with the first check. Touches only timers and the probes.

import type { ClusterSpec, EndpointSpec, HealthCheckSpec } from '../config/types.js';
import type { TlsMaterial } from '../tls/material.js';
import { updateClusters } from './clusters.js';
import { isoTime } from '../time.js';

export interface HealthCheckerOptions {
  /** Uniform in [0, 1); Math.random by default. Drives the interval jitter. */
  jitterRng?: () => number;
  /** This sidecar's certificate, for the checks of `tls` clusters; without one they fail. */
  material?: () => TlsMaterial | null;
}

export interface HealthCheckState {
  cluster: string;
  address: string;
  healthy: boolean;
  consecutive_failures: number;
  consecutive_successes: number;
  /** ISO time the last check finished; null before the first. */
  last_checked: string | null;
  /** Why the last check failed; null before the first check and after a pass. */
  last_error: string | null;
}

/** Share of the interval each delay may move either way (Envoy's interval_jitter_percent, 10%). */
export const JITTER_FRACTION = 0.1;

/** Delay before the next check: intervalMs × [0.9, 1.1). */
export function jitteredDelayMs(intervalMs: number, rng: () => number): number {
  return intervalMs * (1 - JITTER_FRACTION + 2 * JITTER_FRACTION * clampUnit(rng()));
}

/** Delay before an endpoint's first check: within the first 10% of an interval, so checks start
 *  soon but the endpoints of a cluster do not all fire at once. */
export function firstDelayMs(intervalMs: number, rng: () => number): number {
  return intervalMs * JITTER_FRACTION * clampUnit(rng());
}

function clampUnit(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0.5;
}

/** One endpoint under checks. `live` turns false when it is removed or the checker closes. */
interface Target {
  readonly cluster: string;
  readonly address: string;
  endpoint: EndpointSpec;
  spec: HealthCheckSpec;
  healthy: boolean;
  failures: number;
  successes: number;
  lastChecked: string | null;
  lastError: string | null;
  /** The cluster's protocol and TLS: the checks speak them. */
  protocol: 'http1' | 'http2';
  tls: ClusterSpec['tls'];
  timer: NodeJS.Timeout | null;
  inflight: { destroy(): void } | null;
  live: boolean;
}

export class HealthChecker {
  /** cluster name → address → target. */
  private readonly clusters = new Map<string, Map<string, Target>>();
  private readonly rng: () => number;
  private readonly material: () => TlsMaterial | null;
  private closed = false;

  constructor(
    private readonly onChange: (cluster: string, address: string, healthy: boolean) => void,
    opts: HealthCheckerOptions = {},
  ) {
    this.rng = opts.jitterRng ?? Math.random;
    this.material = opts.material ?? (() => null);
  }

  /** Applies a config version. Endpoints that stay keep their state and counters; a changed
   *  interval re-times the next check; removed endpoints and clusters stop without a callback;
   *  a cluster whose healthCheck became null reports its unhealthy endpoints healthy, then stops. */
  update(clusters: readonly ClusterSpec[]): void {
    if (this.closed) return;
    updateClusters(clusters, this.clusters, {
      spec: (c) => c.healthCheck,
      apply: (c, spec, old) => this.applyCluster(c, spec, old),
      drop: (name, old, report) => this.dropCluster(name, old, report),
    });
  }

  states(): HealthCheckState[] {
    const out: HealthCheckState[] = [];
    for (const targets of this.clusters.values()) {
      for (const t of targets.values()) {
        out.push({
          cluster: t.cluster,
          address: t.address,
          healthy: t.healthy,
          consecutive_failures: t.failures,
          consecutive_successes: t.successes,
          last_checked: t.lastChecked,
          last_error: t.lastError,
        });
      }
    }
    return out;
  }

  /** Stops every timer and aborts in-flight checks; no callback fires afterwards. */
  close(): void {
    this.closed = true;
    for (const targets of this.clusters.values()) {
      for (const t of targets.values()) stop(t);
    }
    this.clusters.clear();
  }

  private applyCluster(
    { name, endpoints, protocol, tls }: Pick<ClusterSpec, 'name' | 'endpoints' | 'protocol' | 'tls'>,
    spec: HealthCheckSpec,
    old: Map<string, Target> | undefined,
  ): void {
    const next = new Map<string, Target>();
    for (const ep of endpoints) {
      if (next.has(ep.address)) continue;
      const kept = old?.get(ep.address);
      if (kept !== undefined) {
        const retime = kept.spec.intervalMs !== spec.intervalMs;
        kept.endpoint = ep;
        kept.spec = spec;
        kept.protocol = protocol;
        kept.tls = tls;
        // An in-flight check schedules the next one with the new spec when it finishes.
        if (retime && kept.timer !== null) {
          clearTimeout(kept.timer);
          this.schedule(kept, jitteredDelayMs(spec.intervalMs, this.rng));
        }
        next.set(ep.address, kept);
      } else {
        const t: Target = {
          cluster: name,
          address: ep.address,
          endpoint: ep,
          spec,
          healthy: true,
          failures: 0,
          successes: 0,
          lastChecked: null,
          lastError: null,
          protocol,
          tls,
          timer: null,
          inflight: null,
          live: true,
        };
        next.set(ep.address, t);
        this.schedule(t, firstDelayMs(spec.intervalMs, this.rng));
      }
    }
    if (old !== undefined) {
      for (const [address, t] of old) if (!next.has(address)) stop(t);
    }
    this.clusters.set(name, next);
  }

  private dropCluster(name: string, targets: Map<string, Target>, reportHealthy: boolean): void {
    this.clusters.delete(name);
    for (const t of targets.values()) {
      stop(t);
      if (reportHealthy && !t.healthy) this.onChange(t.cluster, t.address, true);
    }
  }

  private schedule(t: Target, delayMs: number): void {
    t.timer = setTimeout(() => {
      t.timer = null;
      this.check(t);
    }, delayMs);
    t.timer.unref();
  }

  private check(t: Target): void {
    const finish = (error: string | null): void => {
      t.inflight = null;
      if (!t.live) return;
      this.record(t, error);
      if (t.live) this.schedule(t, jitteredDelayMs(t.spec.intervalMs, this.rng));
    };
    loadProbes().then(
      (probes) => {
        // Stopped (a reload removed it, or the checker closed) while the probes loaded.
        if (t.live) probes.probe(t, this.material(), finish);
      },
      (err: Error) => finish(`health check probes did not load: ${err.message}`),
    );
  }

  private record(t: Target, error: string | null): void {
    t.lastChecked = isoTime(Date.now());
    t.lastError = error;
    if (error === null) {
      t.failures = 0;
      t.successes++;
      if (!t.healthy && t.successes >= t.spec.healthyThreshold) {
        t.healthy = true;
        this.onChange(t.cluster, t.address, true);
      }
    } else {
      t.successes = 0;
      t.failures++;
      if (t.healthy && t.failures >= t.spec.unhealthyThreshold) {
        t.healthy = false;
        this.onChange(t.cluster, t.address, false);
      }
    }
  }
}

/** probes.ts, imported once, at the first check. */
let probesModule: Promise<typeof import('./probes.js')> | null = null;

function loadProbes(): Promise<typeof import('./probes.js')> {
  return (probesModule ??= import('./probes.js'));
}

function stop(t: Target): void {
  t.live = false;
  if (t.timer !== null) clearTimeout(t.timer);
  t.timer = null;
  t.inflight?.destroy();
  t.inflight = null;
}

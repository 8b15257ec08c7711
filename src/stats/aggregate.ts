// Main-thread stats: merges the workers' StatsDeltas into running totals and serves them as the
// `/stats` JSON and the `/metrics` Prometheus text. Counters add; hdr histograms merge exactly
// (decode + add, never averaged percentiles); gauges keep the latest value per worker and are
// summed across workers. Everything configured is declared up front so it shows as zero.
// prom-client loads on the first /metrics scrape (a sidecar nobody scrapes never pays its ~2 MiB
// of heap); event-loop delay per thread (loop_delay.ts) rides along in both views.

import { CounterTotals } from './counters.js';
import type { Snapshot } from '../config/types.js';
import type { CellDelta, ClusterDelta, ClusterGauges, StatsDelta } from './delta.js';
import { CODE_CLASS_COUNT } from './delta.js';
import { buildGrpcJson, buildStatsJson } from './json.js';
import type { StatsJson, WorkerJson } from './json.js';
import { LoopDelayTotals } from './loop_delay_totals.js';
import type { PrometheusExporter } from './prometheus.js';
import { CellTotals, ClusterTotals } from './totals.js';
import { PathTotals } from './top_paths.js';
import type { GaugeSums, StatsView } from './totals.js';

export type { StatsJson } from './json.js';
export type { StatsDelta } from './delta.js';

/** A route to declare; `clusters` are the clusters it can send to (its cluster or split). */
export interface DeclaredRoute {
  readonly listener: string;
  readonly route: string;
  readonly clusters?: readonly string[];
}

export class StatsAggregator {
  private readonly cellTotals = new Map<string, CellTotals>();
  private readonly clusterTotals = new Map<string, ClusterTotals>();
  /** Monotonic totals of the counters that live in data-plane objects (counters.ts). */
  readonly counters = new CounterTotals();
  /** Latest gauges per worker, per cluster. */
  private readonly workerGauges = new Map<number, Map<string, ClusterGauges>>();
  /** Requests finished per worker id since start (every worker that posted a delta has an entry). */
  private readonly workerRequests = new Map<number, number>();
  private configVersion = 0;
  private workerRestarts = 0;
  private workerStalls = 0;
  /** Event-loop delay of the main thread and every worker. */
  readonly loopDelay = new LoopDelayTotals();
  /** The busiest request paths (bounded; `outrigger top`). */
  private readonly paths = new PathTotals();
  private readonly view: StatsView;
  /** Built on the first scrape. */
  private exporter: PrometheusExporter | null = null;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the view's getters have their own `this`
    const self = this;
    this.view = {
      get configVersion() {
        return self.configVersion;
      },
      get workerStalls() {
        return self.workerStalls;
      },
      get workerRestarts() {
        return self.workerRestarts;
      },
      cells: () => this.cellTotals.values(),
      clusters: () => this.clusterTotals.values(),
      gauges: (cluster) => this.gaugeSums(cluster),
    };
  }

  /** Merges one worker's delta. */
  apply(delta: StatsDelta): void {
    if (delta.counters !== undefined) this.counters.apply(delta.counters);
    let requests = 0;
    for (const cell of delta.cells) {
      this.applyCell(cell);
      requests += cell.requests;
    }
    this.workerRequests.set(delta.workerId, (this.workerRequests.get(delta.workerId) ?? 0) + requests);
    for (const c of delta.clusters) this.applyCluster(delta.workerId, c);
    if (delta.paths !== undefined) this.paths.add(delta.paths, Date.now());
    if (delta.loopDelay !== undefined) this.loopDelay.add(delta.loopDelay);
  }

  /** A worker is gone (crashed, replaced): its gauges stop counting; its counters stay. */
  forgetWorker(workerId: number): void {
    this.workerGauges.delete(workerId);
  }

  incWorkerRestarts(): void {
    this.workerRestarts += 1;
  }

  incWorkerStalls(): void {
    this.workerStalls += 1;
  }

  setConfigVersion(v: number): void {
    this.configVersion = v;
  }

  /**
   * Makes every configured listener, route and cluster visible with zero values before any
   * traffic. Call once per config version. A listener shows as its no-route cell
   * (route "", cluster ""); a route as one cell per cluster it can send to (or cluster "" when
   * `clusters` is not given). Zero-valued entries that the new config no longer names are
   * dropped; anything that has counted something stays.
   */
  declare(listeners: readonly string[], routes: readonly DeclaredRoute[], clusters: readonly string[]): void {
    const wantedCells = new Set<string>();
    const wantCell = (listener: string, route: string, cluster: string): void => {
      const key = cellKey(listener, route, cluster);
      wantedCells.add(key);
      this.cell(key, listener, route, cluster);
    };
    for (const l of listeners) wantCell(l, '', '');
    for (const r of routes) {
      if (r.clusters === undefined || r.clusters.length === 0) wantCell(r.listener, r.route, '');
      else for (const c of r.clusters) wantCell(r.listener, r.route, c);
    }
    const wantedClusters = new Set(clusters);
    for (const c of clusters) this.cluster(c);

    for (const [key, cell] of this.cellTotals) {
      if (!wantedCells.has(key) && cell.requests === 0) this.cellTotals.delete(key);
    }
    for (const cell of this.cellTotals.values()) if (cell.cluster !== '') wantedClusters.add(cell.cluster);
    for (const [name, c] of this.clusterTotals) {
      if (!wantedClusters.has(name) && isZeroCluster(c) && !this.hasGauges(name)) this.clusterTotals.delete(name);
    }
  }

  /** declare() from a compiled snapshot: every listener, route (with its clusters) and cluster. */
  declareSnapshot(snapshot: Pick<Snapshot, 'listeners' | 'clusters'>): void {
    const routes: DeclaredRoute[] = [];
    for (const l of snapshot.listeners) {
      for (const r of l.routes) {
        const clusters = r.action.kind === 'cluster' ? [r.action.cluster] : r.action.split.map((s) => s.cluster);
        routes.push({ listener: l.name, route: r.name, clusters: [...new Set(clusters)] });
      }
    }
    this.declare(
      snapshot.listeners.map((l) => l.name),
      routes,
      snapshot.clusters.map((c) => c.name),
    );
    for (const l of snapshot.listeners) {
      this.counters.declare('outrigger_headers_with_underscores_dropped_total', { listener: l.name });
      if (l.tls !== null) this.counters.declare('outrigger_tls_handshake_failures_total', { listener: l.name });
      if (l.tcpFallback !== null && l.tls === null) this.counters.declare('outrigger_detect_timeouts_total', { listener: l.name });
      if (l.authorization !== null) {
        l.authorization.forEach((_r, i) => this.counters.declare('outrigger_authz_decisions_total', { listener: l.name, rule: String(i), decision: 'allow' }));
        this.counters.declare('outrigger_authz_decisions_total', { listener: l.name, rule: '', decision: 'deny' });
      }
    }
    for (const c of snapshot.clusters) {
      for (const m of ['outrigger_retries_total', 'outrigger_retry_budget_exhausted_total', 'outrigger_overflow_total'])
        this.counters.declare(m, { cluster: c.name });
      // Upstream handshakes happen on mTLS clusters only: their configured endpoints show at zero.
      if (c.tls !== null) {
        for (const e of c.endpoints) {
          for (const m of ['outrigger_upstream_tls_handshakes_total', 'outrigger_upstream_tls_resumptions_total'])
            this.counters.declare(m, { cluster: c.name, endpoint: e.address });
        }
      }
    }
  }

  /** /stats sections kept by other main-thread parts (tracing's export queue), by name; added last. */
  readonly sections = new Map<string, () => unknown>();
  /** Prometheus text of other main-thread parts (discovery's sources), by name; appended to /metrics. */
  readonly metricTexts = new Map<string, () => string>();

  toJSON(): StatsJson {
    return {
      ...Object.fromEntries([...this.sections].map(([name, json]) => [name, json()])),
      ...buildStatsJson(this.view),
      workers: this.workersJson(),
      event_loop_delay: this.loopDelay.json(),
      grpc: buildGrpcJson(this.counters.list('outrigger_grpc_responses_total')),
      paths: this.paths.json(),
    };
  }

  /**
   * Requests and accepted connections per worker since start: requests from the cells of each
   * worker's deltas, connections from `outrigger_listener_connections_accepted_total` summed over
   * listeners (null for a worker none of whose listeners counts them: uWS has no accept hook).
   */
  private workersJson(): WorkerJson[] {
    const accepted = new Map<string, number>();
    for (const s of this.counters.list('outrigger_listener_connections_accepted_total')) {
      const w = s.labels['worker'] ?? '';
      accepted.set(w, (accepted.get(w) ?? 0) + s.value);
    }
    const ids = new Set(this.workerRequests.keys());
    for (const w of accepted.keys()) if (/^\d+$/.test(w)) ids.add(Number(w));
    return [...ids]
      .sort((a, b) => a - b)
      .map((worker) => ({ worker, requests: this.workerRequests.get(worker) ?? 0, connections_accepted: accepted.get(String(worker)) ?? null }));
  }

  /**
   * Prometheus text exposition (format 0.0.4) from this aggregator's own prom-client Registry
   * (the totals above and the CounterTotals), then the event-loop delay.
   */
  async prometheus(): Promise<string> {
    if (this.exporter === null) {
      const { PrometheusExporter } = await import('./prometheus.js');
      this.exporter ??= new PrometheusExporter(this.view, this.counters);
    }
    return [await this.exporter.metrics(), this.loopDelay.prometheus(), ...[...this.metricTexts.values()].map((text) => text())].join('\n');
  }

  /** Content-Type for prometheus()'s answer (prom-client's Registry.contentType, known before it loads). */
  get prometheusContentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }

  private applyCell(d: CellDelta): void {
    const t = this.cell(cellKey(d.listener, d.route, d.cluster), d.listener, d.route, d.cluster);
    t.requests += d.requests;
    for (let i = 0; i < CODE_CLASS_COUNT; i++) t.classes[i]! += d.classes[i] ?? 0;
    t.bytesIn += d.bytesIn;
    t.bytesOut += d.bytesOut;
    t.durationSumMicros += d.durationSumMicros;
    if (d.latency !== null) t.addLatencySparse(d.latency);
    if (d.cluster !== '') this.cluster(d.cluster);
  }

  private applyCluster(workerId: number, d: ClusterDelta): void {
    const t = this.cluster(d.name);
    t.connectFailures += d.connectFailures;
    t.timeouts += d.timeouts;
    t.resets += d.resets;
    t.upstreamSumMicros += d.upstreamSumMicros;
    if (d.upstreamLatency !== null) t.addUpstreamSparse(d.upstreamLatency);
    if (d.gauges !== null) {
      let perCluster = this.workerGauges.get(workerId);
      if (perCluster === undefined) {
        perCluster = new Map();
        this.workerGauges.set(workerId, perCluster);
      }
      perCluster.set(d.name, { active: d.gauges.active, poolOpen: d.gauges.poolOpen, poolIdle: d.gauges.poolIdle });
    }
  }

  private cell(key: string, listener: string, route: string, cluster: string): CellTotals {
    let t = this.cellTotals.get(key);
    if (t === undefined) {
      t = new CellTotals(listener, route, cluster);
      this.cellTotals.set(key, t);
    }
    return t;
  }

  private cluster(name: string): ClusterTotals {
    let t = this.clusterTotals.get(name);
    if (t === undefined) {
      t = new ClusterTotals(name);
      this.clusterTotals.set(name, t);
    }
    return t;
  }

  private gaugeSums(cluster: string): GaugeSums {
    const sums: GaugeSums = { active: 0, poolOpen: 0, poolIdle: 0 };
    for (const perCluster of this.workerGauges.values()) {
      const g = perCluster.get(cluster);
      if (g === undefined) continue;
      sums.active += g.active;
      sums.poolOpen += g.poolOpen;
      sums.poolIdle += g.poolIdle;
    }
    return sums;
  }

  private hasGauges(cluster: string): boolean {
    for (const perCluster of this.workerGauges.values()) if (perCluster.has(cluster)) return true;
    return false;
  }
}

const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function cellKey(listener: string, route: string, cluster: string): string {
  return `${listener}\u0000${route}\u0000${cluster}`;
}

function isZeroCluster(c: ClusterTotals): boolean {
  return c.connectFailures === 0 && c.timeouts === 0 && c.resets === 0 && c.upstream === null;
}

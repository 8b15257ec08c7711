// The `/stats` JSON: counts, success rate and latency percentiles per listener, route and cluster,
// with SMI TrafficMetrics field names. Latencies are milliseconds, cumulative since start (exact
// merges of every worker's hdr histograms). success = every response that is not 5xx (1xx–4xx,
// as in SMI: a 404 is the app answering); failure = 5xx plus requests that got no response.

import { CODE_CLASSES } from './delta.js';
import { percentileMs, type SlotHistogram } from './histogram.js';
import type { ThreadLoopDelayJson } from './loop_delay_totals.js';
import type { Series } from './counters.js';
import { RequestTotals } from './totals.js';
import type { StatsView } from './totals.js';
import type { PathsJson } from './top_paths.js';

export interface LatencyJson {
  /** Milliseconds; null when nothing was recorded. */
  readonly p50_response_latency: number | null;
  readonly p90_response_latency: number | null;
  readonly p99_response_latency: number | null;
  readonly p99_9_response_latency: number | null;
  /** Exact mean (from the sum of durations), ms. */
  readonly mean_response_latency: number | null;
}

export interface TrafficJson extends LatencyJson {
  readonly requests: number;
  /** `none` = no response (client aborted / connection reset). */
  readonly responses: Readonly<Record<(typeof CODE_CLASSES)[number], number>>;
  readonly success_count: number;
  readonly failure_count: number;
  /** success_count / requests; null before any request. */
  readonly success_rate: number | null;
  readonly bytes_in: number;
  readonly bytes_out: number;
}

/** Includes the requests that matched no route on this listener. */
export interface ListenerJson extends TrafficJson {
  readonly name: string;
}

export interface RouteJson extends TrafficJson {
  readonly listener: string;
  readonly name: string;
}

export interface ClusterJson extends TrafficJson {
  readonly name: string;
  /** Upstream time (request sent → response complete) of the requests that reached an endpoint. */
  readonly upstream: LatencyJson & { readonly requests: number };
  readonly connect_failures: number;
  readonly timeouts: number;
  readonly resets: number;
  /** Summed over live workers. */
  readonly active_requests: number;
  readonly pool: { readonly open: number; readonly idle: number };
}

/**
 * One worker's traffic since the sidecar started, by worker id (a restarted worker keeps its id
 * and its count continues). `requests` = every request the worker finished (the listeners'
 * `requests` summed); `connections_accepted` = client connections it accepted on node- and
 * strict-engine listeners (uWS has no accept hook: null when none of its listeners counts).
 */
export interface WorkerJson {
  readonly worker: number;
  readonly requests: number;
  readonly connections_accepted: number | null;
}

/** gRPC calls (outrigger_grpc_responses_total): success = grpc-status 0, whatever the HTTP status. */
export interface GrpcTrafficJson {
  readonly calls: number;
  /** Calls by grpc-status ("0", "14", …). */
  readonly grpc_status: Readonly<Record<string, number>>;
  readonly success_count: number;
  readonly failure_count: number;
  readonly success_rate: number | null;
}

/** Only listeners, routes and clusters that have seen gRPC calls; local replies without a cluster count for no cluster. */
export interface GrpcJson {
  readonly listeners: ReadonlyArray<GrpcTrafficJson & { readonly name: string }>;
  readonly routes: ReadonlyArray<GrpcTrafficJson & { readonly listener: string; readonly name: string }>;
  readonly clusters: ReadonlyArray<GrpcTrafficJson & { readonly name: string }>;
}

export function buildGrpcJson(series: readonly Series[]): GrpcJson {
  const listeners = new Map<string, Map<string, number>>();
  const routes = new Map<string, Map<string, number>>();
  const clusters = new Map<string, Map<string, number>>();
  const add = (into: Map<string, Map<string, number>>, key: string, status: string, n: number): void => {
    let m = into.get(key);
    if (m === undefined) {
      m = new Map();
      into.set(key, m);
    }
    m.set(status, (m.get(status) ?? 0) + n);
  };
  for (const s of series) {
    const { listener = '', route = '', cluster = '', grpc_status: status = '' } = s.labels;
    if (s.value === 0) continue;
    add(listeners, listener, status, s.value);
    if (route !== '') add(routes, `${listener}\u0000${route}`, status, s.value);
    if (cluster !== '') add(clusters, cluster, status, s.value);
  }
  const traffic = (m: Map<string, number>): GrpcTrafficJson => {
    let calls = 0;
    const byStatus: Record<string, number> = {};
    for (const [k, n] of [...m].sort((a, b) => Number(a[0]) - Number(b[0]))) {
      byStatus[k] = n;
      calls += n;
    }
    const ok = m.get('0') ?? 0;
    return { calls, grpc_status: byStatus, success_count: ok, failure_count: calls - ok, success_rate: calls === 0 ? null : ok / calls };
  };
  return {
    listeners: [...listeners].map(([name, m]) => ({ name, ...traffic(m) })).sort(byName),
    routes: [...routes]
      .map(([key, m]) => {
        const [listener = '', name = ''] = key.split('\u0000');
        return { listener, name, ...traffic(m) };
      })
      .sort((a, b) => compare(a.listener, b.listener) || compare(a.name, b.name)),
    clusters: [...clusters].map(([name, m]) => ({ name, ...traffic(m) })).sort(byName),
  };
}

export interface StatsJson {
  readonly config_version: number;
  readonly worker_restarts: number;
  readonly worker_stalls: number;
  readonly listeners: readonly ListenerJson[];
  readonly routes: readonly RouteJson[];
  readonly clusters: readonly ClusterJson[];
  /** Per worker that has reported (ascending id): requests and accepted connections since start. */
  readonly workers: readonly WorkerJson[];
  /** Per thread (main, worker-1, …): since start and over the last interval. */
  readonly event_loop_delay: readonly ThreadLoopDelayJson[];
  /** gRPC calls by grpc-status, with their success rate (grpc-status 0). */
  readonly grpc: GrpcJson;
  /** The busiest request paths (bounded, top_paths.ts): counts since each entered the table. */
  readonly paths: PathsJson;
}

export function buildStatsJson(view: StatsView): Omit<StatsJson, 'event_loop_delay' | 'workers' | 'grpc' | 'paths'> {
  const listeners = new Map<string, RequestTotals>();
  const routes = new Map<string, { listener: string; name: string; totals: RequestTotals }>();
  const clusterTraffic = new Map<string, RequestTotals>();
  for (const cell of view.cells()) {
    rollup(listeners, cell.listener).addTotals(cell);
    if (cell.route !== '') {
      const key = `${cell.listener}\u0000${cell.route}`;
      let r = routes.get(key);
      if (r === undefined) {
        r = { listener: cell.listener, name: cell.route, totals: new RequestTotals() };
        routes.set(key, r);
      }
      r.totals.addTotals(cell);
    }
    if (cell.cluster !== '') rollup(clusterTraffic, cell.cluster).addTotals(cell);
  }

  const clusters: ClusterJson[] = [];
  for (const c of view.clusters()) {
    const g = view.gauges(c.name);
    const upstreamCount = c.upstream === null ? 0 : c.upstream.totalCount;
    clusters.push({
      name: c.name,
      ...traffic(clusterTraffic.get(c.name) ?? new RequestTotals()),
      upstream: { requests: upstreamCount, ...latency(c.upstream, c.upstreamSumMicros) },
      connect_failures: c.connectFailures,
      timeouts: c.timeouts,
      resets: c.resets,
      active_requests: g.active,
      pool: { open: g.poolOpen, idle: g.poolIdle },
    });
  }

  return {
    config_version: view.configVersion,
    worker_restarts: view.workerRestarts,
    worker_stalls: view.workerStalls,
    listeners: [...listeners].map(([name, t]) => ({ name, ...traffic(t) })).sort(byName),
    routes: [...routes.values()]
      .map((r) => ({ listener: r.listener, name: r.name, ...traffic(r.totals) }))
      .sort((a, b) => compare(a.listener, b.listener) || compare(a.name, b.name)),
    clusters: clusters.sort(byName),
  };
}

function rollup(into: Map<string, RequestTotals>, key: string): RequestTotals {
  let t = into.get(key);
  if (t === undefined) {
    t = new RequestTotals();
    into.set(key, t);
  }
  return t;
}

function traffic(t: RequestTotals): TrafficJson {
  const k = t.classes;
  const failure = k[0]! + k[5]!;
  const success = t.requests - failure;
  return {
    requests: t.requests,
    responses: { none: k[0]!, '1xx': k[1]!, '2xx': k[2]!, '3xx': k[3]!, '4xx': k[4]!, '5xx': k[5]! },
    success_count: success,
    failure_count: failure,
    success_rate: t.requests === 0 ? null : success / t.requests,
    ...latency(t.latency, t.durationSumMicros),
    bytes_in: t.bytesIn,
    bytes_out: t.bytesOut,
  };
}

function latency(h: SlotHistogram | null, sumMicros: number): LatencyJson {
  const n = h === null ? 0 : h.totalCount;
  return {
    p50_response_latency: percentileMs(h, 50),
    p90_response_latency: percentileMs(h, 90),
    p99_response_latency: percentileMs(h, 99),
    p99_9_response_latency: percentileMs(h, 99.9),
    mean_response_latency: n === 0 ? null : sumMicros / n / 1000,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byName(a: { name: string }, b: { name: string }): number {
  return compare(a.name, b.name);
}

// `outrigger stat`: a table per route and per cluster from a sidecar's GET /stats (like
// `linkerd viz stat`). Rates come from two samples taken one second apart (with --watch: each
// refresh against the one before); the p50/p99 are the sidecar's merged histograms since it
// started (GET /stats keeps no window). `--json` prints counts since start and the interval's
// counts and rates; `--watch` refreshes every second with plain ANSI until SIGINT.

import type { ClusterJson, RouteJson, TrafficJson } from '../stats/json.js';
import { AdminStatsError, adminBase, DEFAULT_ADMIN, DEFAULT_TOKEN_FILE, pause, readToken, sampleStats, type StatsSample } from './admin_stats.js';
import { parseArgsOr } from './args.js';

const HELP = `Usage: outrigger stat [--admin HOST:PORT] [--token-file F] [--json] [--watch]
  Requests per route and per cluster from a sidecar's admin API (GET /stats): requests since start,
  requests per second and success rate over one second (two samples 1 s apart), p50/p99 latency
  since start, in-flight requests per cluster.
      --admin HOST:PORT   the sidecar's admin address (default ${DEFAULT_ADMIN}; remote ones too)
      --token-file F      the admin token (default ${DEFAULT_TOKEN_FILE}: the one a sidecar generates
                          next to its config file; its ready line names it as admin_token_file)
      --json              counts and rates as JSON (with --watch: one JSON document per line)
      --watch             refresh every second until Ctrl-C
  Exit: 0, 1 when the admin API cannot be reached or fails, 2 for bad arguments or a refused token.
`;

/** Samples this far apart make one rate (and one --watch refresh). */
export const SAMPLE_INTERVAL_MS = 1000;

/** Counts since start and over the interval between two samples of one route or cluster. */
export interface StatRates {
  readonly requests: number;
  readonly success_count: number;
  readonly failure_count: number;
  readonly interval_requests: number;
  readonly interval_success: number;
  readonly interval_failures: number;
  readonly rps: number;
  /** Over the interval; null when it saw no request. */
  readonly success_rate: number | null;
  /** Since start, ms; null before any request. */
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
}

export interface RouteStat extends StatRates {
  readonly listener: string;
  readonly route: string;
}

export interface ClusterStat extends StatRates {
  readonly cluster: string;
  readonly active_requests: number;
}

export interface StatReport {
  readonly admin: string;
  readonly interval_s: number;
  readonly routes: readonly RouteStat[];
  readonly clusters: readonly ClusterStat[];
}

/** The report between two samples of one sidecar (a route or cluster new in `cur` counts from zero). */
export function statReport(admin: string, prev: StatsSample, cur: StatsSample): StatReport {
  const seconds = (cur.atMs - prev.atMs) / 1000;
  const routeKey = (r: RouteJson): string => `${r.listener}\u0000${r.name}`;
  const prevRoutes = new Map(prev.stats.routes.map((r) => [routeKey(r), r]));
  const prevClusters = new Map(prev.stats.clusters.map((c) => [c.name, c]));
  return {
    admin,
    interval_s: Number(seconds.toFixed(3)),
    routes: cur.stats.routes.map((r) => ({ listener: r.listener, route: r.name, ...rates(prevRoutes.get(routeKey(r)), r, seconds) })),
    clusters: cur.stats.clusters.map((c: ClusterJson) => ({
      cluster: c.name,
      ...rates(prevClusters.get(c.name), c, seconds),
      active_requests: c.active_requests,
    })),
  };
}

function rates(prev: TrafficJson | undefined, cur: TrafficJson, seconds: number): StatRates {
  const requests = cur.requests - (prev?.requests ?? 0);
  const success = cur.success_count - (prev?.success_count ?? 0);
  return {
    requests: cur.requests,
    success_count: cur.success_count,
    failure_count: cur.failure_count,
    interval_requests: requests,
    interval_success: success,
    interval_failures: cur.failure_count - (prev?.failure_count ?? 0),
    rps: seconds > 0 ? Number((requests / seconds).toFixed(2)) : 0,
    success_rate: requests === 0 ? null : success / requests,
    p50_ms: cur.p50_response_latency,
    p99_ms: cur.p99_response_latency,
  };
}

/** The two tables (routes, then clusters) as text. */
export function renderStat(r: StatReport): string {
  const common = (s: StatRates): string[] => [String(s.requests), s.rps.toFixed(1), percent(s.success_rate), latency(s.p50_ms), latency(s.p99_ms)];
  const routes = table(
    ['LISTENER', 'ROUTE', 'REQUESTS', 'RPS', 'SUCCESS', 'P50', 'P99'],
    r.routes.map((s) => [s.listener, s.route, ...common(s)]),
  );
  const clusters = table(
    ['CLUSTER', 'REQUESTS', 'RPS', 'SUCCESS', 'P50', 'P99', 'ACTIVE'],
    r.clusters.map((s) => [s.cluster, ...common(s), String(s.active_requests)]),
  );
  return `${r.admin}: rates over ${r.interval_s.toFixed(1)} s, latency since start\n\n${routes}\n${clusters}`;
}

/** Left-aligned text columns, right-aligned numbers, two spaces apart. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const numeric = header.map((_h, i) => rows.length > 0 && rows.every((row) => /^[-\d.%]+(ms|s)?$/.test(row[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] === true ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function percent(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(2)}%`;
}

export function latency(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 10) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${ms.toFixed(1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

interface StatOptions {
  readonly base: string;
  readonly tokenFile: string;
  readonly json: boolean;
  readonly watch: boolean;
}

function statOptions(argv: string[]): StatOptions | null {
  const { values, positionals } = parseArgsOr(
    {
      args: argv,
      allowPositionals: true,
      options: {
        admin: { type: 'string' },
        'token-file': { type: 'string' },
        json: { type: 'boolean' },
        watch: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    UsageError,
  );
  if (values.help === true) return null;
  if (positionals.length > 0) throw new AdminStatsError(`unexpected argument "${positionals[0]}"; see outrigger stat --help`, 2);
  return {
    base: adminBase(values.admin ?? DEFAULT_ADMIN),
    tokenFile: values['token-file'] ?? DEFAULT_TOKEN_FILE,
    json: values.json === true,
    watch: values.watch === true,
  };
}

class UsageError extends AdminStatsError {
  constructor(message: string) {
    super(message, 2);
  }
}

export interface StatIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Clears the terminal and homes the cursor before each --watch refresh. */
const CLEAR = '\x1b[H\x1b[2J';

export async function runStat(argv: string[], io: StatIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.on('SIGINT', onSigint);
  try {
    const opts = statOptions(argv);
    if (opts === null) {
      io.stdout.write(HELP);
      return 0;
    }
    const target = { base: opts.base, token: readToken(opts.tokenFile) };
    let prev = await sampleStats(target);
    do {
      await pause(SAMPLE_INTERVAL_MS, stop.signal);
      if (stop.signal.aborted) break;
      const cur = await sampleStats(target);
      const report = statReport(opts.base, prev, cur);
      if (opts.json) io.stdout.write(`${JSON.stringify(report, null, opts.watch ? 0 : 2)}\n`);
      else io.stdout.write(`${opts.watch ? CLEAR : ''}${renderStat(report)}`);
      prev = cur;
    } while (opts.watch && !stop.signal.aborted);
    return 0;
  } catch (e) {
    if (!(e instanceof AdminStatsError)) throw e;
    io.stderr.write(`outrigger stat: ${e.message}\n`);
    return e.exitCode;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

// Paired ratios between two measured things of the same run: CPU µs per request of a config,
// or of one process of a config (the server sidecar of outrigger-mtls), divided by another's,
// round by round (a drift of the machine hits both sides of each ratio alike), with the target
// the issue sets where it sets one (issue 19: node engine ÷ uws engine ≤ 1.3, and the same for
// the strict engine; server sidecar with 2 workers ÷ with 1 worker ≤ 1.15; issue 13: outrigger
// with 2 workers ÷ with 1 worker ≤ 1.1).

import { workerCountsText } from './admin.js';
import type { RunRecord, ThroughputRecord } from './measure.js';
import type { BenchResults } from './results.js';
import { byRound, pairedRatio, summarize, type Summary } from './stats.js';
import { UNPIPELINED_TARGET } from './targets.js';

/** A config's CPU per request, or that of one of its processes (`part`, e.g. `server`). */
export interface CpuOperand {
  readonly config: string;
  readonly part?: string;
}

export interface ComparisonSpec {
  readonly label: string;
  readonly a: CpuOperand;
  readonly b: CpuOperand;
  /** The CPU ratio should be at most this (none: shown for context). */
  readonly target?: number;
}

export interface Comparison extends ComparisonSpec {
  readonly aCpuUsPerReq: Summary | null;
  readonly bCpuUsPerReq: Summary | null;
  /** a ÷ b, paired by round. */
  readonly cpuRatio: Summary | null;
  /** The configs' req/s, a ÷ b, paired by round (of the whole config, also when a part is compared). */
  readonly rpsRatio: Summary | null;
  /** Median CPU ratio ≤ target; null without a target or a ratio. */
  readonly withinTarget: boolean | null;
}

/** `outrigger-mtls · server` style name of an operand. */
export function operandName(o: CpuOperand): string {
  return o.part === undefined ? o.config : `${o.config} · ${o.part}`;
}

/** The comparisons of `npm run bench`: engines, worker counts of the mTLS server sidecar, each against nginx. */
export function benchComparisons(workersN: number): ComparisonSpec[] {
  const mtlsN = `outrigger-mtls-${workersN}w`;
  return [
    ...engineComparisons(),
    ...workerComparisons(workersN),
    {
      label: `server sidecar, ${workersN} workers ÷ 1 worker`,
      a: { config: mtlsN, part: 'server' },
      b: { config: 'outrigger-mtls', part: 'server' },
      target: 1.15,
    },
    { label: 'server sidecar, 1 worker ÷ nginx', a: { config: 'outrigger-mtls', part: 'server' }, b: { config: 'nginx' } },
    { label: `server sidecar, ${workersN} workers ÷ nginx`, a: { config: mtlsN, part: 'server' }, b: { config: 'nginx' } },
    { label: `mTLS path (both sidecars), server ${workersN} workers ÷ 1 worker`, a: { config: mtlsN }, b: { config: 'outrigger-mtls' } },
    // The strict engine as the mTLS server sidecar's listener, against node:https in the same shape.
    {
      label: 'server sidecar on strict ÷ on node, 1 worker',
      a: { config: 'outrigger-mtls-strict', part: 'server' },
      b: { config: 'outrigger-mtls', part: 'server' },
    },
    {
      label: `server sidecar on strict ÷ on node, ${workersN} workers`,
      a: { config: `outrigger-mtls-strict-${workersN}w`, part: 'server' },
      b: { config: mtlsN, part: 'server' },
    },
    {
      label: `server sidecar on strict, ${workersN} workers ÷ 1 worker`,
      a: { config: `outrigger-mtls-strict-${workersN}w`, part: 'server' },
      b: { config: 'outrigger-mtls-strict', part: 'server' },
      target: 1.15,
    },
    { label: 'server sidecar on strict, 1 worker ÷ nginx', a: { config: 'outrigger-mtls-strict', part: 'server' }, b: { config: 'nginx' } },
  ];
}

/**
 * Scaling with workers: N workers' CPU per request ÷ 1 worker's, paired by round (issue 13:
 * ≤ 1.1), on the default engine (strict) and on uws. Also bench:ci's (which runs strict only).
 */
export function workerComparisons(workersN: number): ComparisonSpec[] {
  return [
    {
      label: `default engine (strict), ${workersN} workers ÷ 1 worker`,
      a: { config: `outrigger-strict-${workersN}w` },
      b: { config: 'outrigger-strict-1w' },
      target: 1.1,
    },
    { label: `plaintext uws, ${workersN} workers ÷ 1 worker`, a: { config: `outrigger-${workersN}w` }, b: { config: 'outrigger-1w' }, target: 1.1 },
  ];
}

/**
 * Scaling with workers after a run: the N ÷ 1 worker CPU ratios of workerComparisons that were
 * measured, then each multi-worker plaintext config's requests and accepted connections per
 * worker (GET /stats `workers`, since start).
 */
export function scalingLines(r: Pick<BenchResults, 'comparisons' | 'connections'>, workersN: number): string[] {
  const labels = new Set(workerComparisons(workersN).map((c) => c.label));
  const lines = (r.comparisons ?? []).filter((c) => labels.has(c.label)).map((c) => `- ${comparisonLine(c)}`);
  for (const c of r.connections ?? []) {
    const workers = c.workers ?? null;
    if (c.part !== c.config || workers === null || workers.length < 2) continue;
    lines.push(`- ${c.config} per worker since start: ${workerCountsText(workers) ?? '–'}`);
  }
  return lines;
}

/** outrigger with 1 worker on the strict engine whose cluster pipelines nothing to the upstream (pool.pipeline_plaintext: false). */
const UNPIPELINED = UNPIPELINED_TARGET.name;

/** The listener engines against each other and against nginx and haproxy, and the two peers (also bench:ci's). */
export function engineComparisons(): ComparisonSpec[] {
  return [
    { label: 'node engine ÷ uws engine', a: { config: 'outrigger-node-1w' }, b: { config: 'outrigger-1w' }, target: 1.3 },
    { label: 'uws engine ÷ nginx', a: { config: 'outrigger-1w' }, b: { config: 'nginx' } },
    { label: 'node engine ÷ nginx', a: { config: 'outrigger-node-1w' }, b: { config: 'nginx' } },
    { label: 'strict engine ÷ uws engine', a: { config: 'outrigger-strict-1w' }, b: { config: 'outrigger-1w' }, target: 1.3 },
    { label: 'strict engine ÷ node engine', a: { config: 'outrigger-strict-1w' }, b: { config: 'outrigger-node-1w' } },
    // Issue 13's CPU target: the default config (GETs pipelined to the upstream on 127.0.0.1, pool.pipeline_plaintext: loopback).
    { label: 'strict engine ÷ nginx', a: { config: 'outrigger-strict-1w' }, b: { config: 'nginx' }, target: 1.5 },
    { label: 'strict engine ÷ haproxy', a: { config: 'outrigger-strict-1w' }, b: { config: 'haproxy' } },
    { label: 'haproxy ÷ nginx', a: { config: 'haproxy' }, b: { config: 'nginx' } },
    // Without pipelining to the app (pool.pipeline_plaintext: false; the default before 2026-12-07, and for an app not on loopback).
    { label: 'strict, pipeline_plaintext: false ÷ nginx', a: { config: UNPIPELINED }, b: { config: 'nginx' } },
    { label: 'strict ÷ strict, pipeline_plaintext: false', a: { config: 'outrigger-strict-1w' }, b: { config: UNPIPELINED } },
    // The Node floor (bench/node_relay.ts): what outrigger adds to it, and what Node adds to nginx.
    { label: 'strict engine ÷ node relay', a: { config: 'outrigger-strict-1w' }, b: { config: 'node-relay' } },
    { label: 'node relay ÷ nginx', a: { config: 'node-relay' }, b: { config: 'nginx' } },
  ];
}

type ByRound = Map<number, number>;

function throughputRuns(runs: readonly RunRecord[], config: string): ThroughputRecord[] {
  return runs.filter((r): r is ThroughputRecord => r.kind === 'throughput' && r.variant === 'GET /' && r.config === config && r.error === undefined);
}

function cpuByRound(runs: readonly RunRecord[], o: CpuOperand): ByRound {
  const part = o.part;
  return byRound(throughputRuns(runs, o.config), (r) => (part === undefined ? r.cpuUsPerReq : r.partsCpuUsPerReq?.[part]));
}

/**
 * Every comparison whose two sides were measured in this run (a skipped config drops the
 * comparisons it is in; the report lists it under Skipped).
 */
export function summarizeComparisons(specs: readonly ComparisonSpec[], runs: readonly RunRecord[]): Comparison[] {
  const out: Comparison[] = [];
  for (const spec of specs) {
    const a = cpuByRound(runs, spec.a);
    const b = cpuByRound(runs, spec.b);
    if (a.size === 0 || b.size === 0) continue;
    const cpuRatio = pairedRatio(a, b);
    const rps = (config: string): ByRound => byRound(throughputRuns(runs, config), (r) => r.wrk?.requestsPerSec);
    out.push({
      ...spec,
      aCpuUsPerReq: summarize([...a.values()]),
      bCpuUsPerReq: summarize([...b.values()]),
      cpuRatio,
      rpsRatio: pairedRatio(rps(spec.a.config), rps(spec.b.config)),
      withinTarget: spec.target === undefined || cpuRatio === null ? null : cpuRatio.median <= spec.target,
    });
  }
  return out;
}

/** "node engine ÷ uws engine (outrigger-node-1w ÷ outrigger-1w): CPU/req 1.45× (1.40–1.50), target ≤ 1.30: NO". */
export function comparisonLine(c: Comparison): string {
  const r = c.cpuRatio;
  const ratio = r === null ? '–' : r.n < 2 ? `${r.median.toFixed(2)}×` : `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
  const target = c.target === undefined || c.withinTarget === null ? '' : `, target ≤ ${c.target.toFixed(2)}: ${c.withinTarget ? 'yes' : 'NO'}`;
  return `${c.label} (${operandName(c.a)} ÷ ${operandName(c.b)}): CPU/req ${ratio}${target}`;
}

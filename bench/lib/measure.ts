// One measurement pass over one running config: throughput (wrk, CPU of the proxy tree, of
// each of its processes and of their threads, RSS under load), fixed-rate latency (paced wrk),
// autocannon, and optional body variants. Each run is returned as a raw record; a run that
// fails is recorded with its error, not dropped.

import { runAutocannon, type AutocannonRun } from './autocannon.js';
import { cpuMicrosBetween, microsPerRequest, sampleCpu } from './cpu.js';
import { runHol, type HolPlan, type HolRecord } from './hol.js';
import { errText, runStart, type RunBase } from './record.js';
import { startRssSampler, treeRunQueueNs, type RssStats } from './rss.js';
import type { RunningTarget } from './targets.js';
import { sampleThreads, splitThreads, type ThreadSplit } from './threads.js';
import { runWrk, type WrkResult } from './wrk.js';

export interface Variant {
  readonly name: string;
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly bodyBytes?: number;
}

/** Body variants served by bench/upstream/server.ts. */
export const VARIANTS: readonly Variant[] = [
  { name: 'GET /1k', path: '/1k', method: 'GET' },
  { name: 'GET /64k', path: '/64k', method: 'GET' },
  { name: 'POST /echo 1k', path: '/echo', method: 'POST', bodyBytes: 1024 },
];

/**
 * Seconds of load a freshly started sidecar needs before it is measured: V8's optimizing compiler
 * comes on only after 3 busy seconds in a row, or 1 second at saturation (src/cli/compilers.ts),
 * and then compiles the request path. The sections' warm-ups (gRPC, WebSocket, TCP) last this
 * long; the HTTP sessions' first warm-up (firstWarmupS, 5 s) already does.
 */
export const JIT_WARMUP_S = 4;

export interface MeasurePlan {
  readonly warmupS: number;
  /**
   * Warm-up before a config's first round, when longer than warmupS: the node engine and
   * node:https reach their steady CPU/request only after a few seconds of load (JIT tier-up of
   * llhttp's callbacks and the TLS path), so one second measured them cold in round 1.
   */
  readonly firstWarmupS?: number;
  readonly throughputS: number;
  readonly connections: number;
  readonly wrkThreads: number;
  readonly rates: readonly number[];
  readonly rateS: number;
  readonly rateConnections: number;
  readonly autocannonS: number;
  readonly variants: readonly Variant[];
  readonly variantS: number;
  /** The head-of-line scenario, run through its configs after their fixed-rate runs (bench/lib/hol.ts). */
  readonly hol?: HolPlan;
}

/** The command-line options (node:util parseArgs) that bench:compare, bench:ci and bench:ab all take. */
export const PLAN_OPTIONS = {
  rounds: { type: 'string' },
  duration: { type: 'string' },
  'rate-duration': { type: 'string' },
  out: { type: 'string' },
  'no-install': { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

/** The short plan of `bench:ci` and `bench:ab`: wrk throughput for `throughputS`, one paced rate, no autocannon or body variants. */
export function quickPlan(throughputS: number, rate: number, rateS: number): MeasurePlan {
  return {
    warmupS: 1,
    firstWarmupS: 5,
    throughputS,
    connections: 50,
    wrkThreads: 1,
    rates: [rate],
    rateS,
    rateConnections: 16,
    autocannonS: 0,
    variants: [],
    variantS: 0,
  };
}

export interface ThroughputRecord extends RunBase {
  readonly kind: 'throughput';
  readonly variant: string;
  readonly connections: number;
  readonly durationS: number;
  readonly wrk?: WrkResult;
  /** CPU of the config's process tree during the run, µs, and per completed request. */
  readonly cpuUs?: number;
  readonly cpuUsPerReq?: number | null;
  /** CPU of the shared upstream per request, for context. */
  readonly upstreamCpuUsPerReq?: number | null;
  /** Configs of several processes (outrigger-mtls): CPU µs per request of each tree by name. */
  readonly partsCpuUsPerReq?: Readonly<Record<string, number | null>>;
  /** CPU µs per request of each process's threads (by part name, or the config's name when single). */
  readonly threadsCpuUsPerReq?: Readonly<Record<string, ThreadSplit>>;
  readonly rss?: RssStats;
}

export interface RateRecord extends RunBase {
  readonly kind: 'rate';
  readonly rate: number;
  readonly connections: number;
  readonly durationS: number;
  readonly wrk?: WrkResult;
  readonly cpuUsPerReq?: number | null;
  /**
   * µs per request the config's threads spent runnable but not on a CPU (schedstat run_delay,
   * summed over every thread of its process trees): the machine's delay, not the proxy's work; it
   * adds to the latency when the waiting thread is on the request path (a worker, not the main
   * thread). Absent for direct and in results from before 2026-12-07.
   */
  readonly waitUsPerReq?: number | null;
}

export interface AutocannonRecord extends RunBase {
  readonly kind: 'autocannon';
  readonly connections: number;
  readonly durationS: number;
  readonly result?: AutocannonRun;
}

export type RunRecord = ThroughputRecord | RateRecord | AutocannonRecord | HolRecord;

/** The processes whose threads are split: the parts, or the one process of a single-process config. */
function threadProcs(t: RunningTarget): readonly { readonly name: string; readonly pid: number }[] {
  if (t.parts !== undefined) return t.parts;
  const pid = t.pids[0];
  return t.pids.length === 1 && pid !== undefined ? [{ name: t.spec.name, pid }] : [];
}

/** Per-thread split of every process between two samples (processes gone since are left out). */
function threadSplits(
  procs: readonly { readonly name: string; readonly pid: number }[],
  before: ReadonlyMap<string, ReadonlyMap<number, number>>,
  after: ReadonlyMap<string, ReadonlyMap<number, number>>,
  requests: number,
): Record<string, ThreadSplit> {
  const out: Record<string, ThreadSplit> = {};
  for (const p of procs) {
    const split = splitThreads(p.pid, before.get(p.name) ?? new Map(), after.get(p.name) ?? new Map(), requests);
    if (split !== null) out[p.name] = split;
  }
  return out;
}

async function throughput(
  t: RunningTarget,
  upstreamPid: number,
  round: number,
  variant: Variant | null,
  durationS: number,
  plan: MeasurePlan,
  scriptDir: string,
): Promise<ThroughputRecord> {
  const base = {
    ...runStart(t, round),
    kind: 'throughput' as const,
    variant: variant?.name ?? 'GET /',
    connections: plan.connections,
    durationS,
  };
  const rss = startRssSampler(t.pids);
  const parts = t.parts ?? [];
  const procs = threadProcs(t);
  const up0 = sampleCpu([upstreamPid]);
  const part0 = parts.map((p) => sampleCpu([p.pid]));
  const threads0 = sampleThreads(procs);
  const cpu0 = sampleCpu(t.pids);
  try {
    const wrk = await runWrk({
      url: t.baseUrl + (variant?.path ?? '/'),
      connections: plan.connections,
      threads: plan.wrkThreads,
      durationS,
      scriptDir,
      ...(variant?.method === 'POST' ? { method: 'POST', body: 'x'.repeat(variant.bodyBytes ?? 0) } : {}),
    });
    const cpu1 = sampleCpu(t.pids);
    const threads1 = sampleThreads(procs);
    const part1 = parts.map((p) => sampleCpu([p.pid]));
    const up1 = sampleCpu([upstreamPid]);
    const cpuUs = cpuMicrosBetween(cpu0, cpu1);
    const rssStats = rss.stop();
    const partsCpuUsPerReq: Record<string, number | null> = {};
    parts.forEach((p, i) => {
      const a = part0[i];
      const b = part1[i];
      partsCpuUsPerReq[p.name] = a !== undefined && b !== undefined ? microsPerRequest(cpuMicrosBetween(a, b), wrk.requests) : null;
    });
    return {
      ...base,
      wrk,
      cpuUs,
      cpuUsPerReq: t.pids.length > 0 ? microsPerRequest(cpuUs, wrk.requests) : 0,
      upstreamCpuUsPerReq: microsPerRequest(cpuMicrosBetween(up0, up1), wrk.requests),
      ...(parts.length > 0 ? { partsCpuUsPerReq } : {}),
      ...(procs.length > 0 ? { threadsCpuUsPerReq: threadSplits(procs, threads0, threads1, wrk.requests) } : {}),
      ...(t.pids.length > 0 ? { rss: rssStats } : {}),
    };
  } catch (e) {
    rss.stop();
    return { ...base, error: errText(e) };
  }
}

async function fixedRate(t: RunningTarget, round: number, rate: number, plan: MeasurePlan, scriptDir: string): Promise<RateRecord> {
  const base = {
    ...runStart(t, round),
    kind: 'rate' as const,
    rate,
    connections: plan.rateConnections,
    durationS: plan.rateS,
  };
  const cpu0 = sampleCpu(t.pids);
  const wait0 = treeRunQueueNs(t.pids);
  try {
    const wrk = await runWrk({
      url: `${t.baseUrl}/`,
      connections: plan.rateConnections,
      threads: 1,
      durationS: plan.rateS,
      rate,
      scriptDir,
    });
    const cpuUs = cpuMicrosBetween(cpu0, sampleCpu(t.pids));
    const waitUs = (treeRunQueueNs(t.pids) - wait0) / 1000;
    return {
      ...base,
      wrk,
      cpuUsPerReq: t.pids.length > 0 ? microsPerRequest(cpuUs, wrk.requests) : 0,
      ...(t.pids.length > 0 ? { waitUsPerReq: microsPerRequest(waitUs, wrk.requests) } : {}),
    };
  } catch (e) {
    return { ...base, error: errText(e) };
  }
}

async function cannon(t: RunningTarget, round: number, plan: MeasurePlan): Promise<AutocannonRecord> {
  const base = {
    ...runStart(t, round),
    kind: 'autocannon' as const,
    connections: plan.connections,
    durationS: plan.autocannonS,
  };
  try {
    const result = await runAutocannon({ url: `${t.baseUrl}/`, connections: plan.connections, durationS: plan.autocannonS });
    return { ...base, result };
  } catch (e) {
    return { ...base, error: errText(e) };
  }
}

/** All runs for one config in one round, in a fixed order. */
export async function measureConfig(
  t: RunningTarget,
  upstreamPid: number,
  round: number,
  plan: MeasurePlan,
  scriptDir: string,
  log: (s: string) => void,
): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  const warmupS = round === 1 ? Math.max(plan.warmupS, plan.firstWarmupS ?? 0) : plan.warmupS;
  if (warmupS > 0) {
    try {
      await runWrk({ url: `${t.baseUrl}/`, connections: plan.connections, threads: plan.wrkThreads, durationS: warmupS, scriptDir });
    } catch (e) {
      log(`  ${t.spec.name}: warmup failed: ${errText(e)}`);
    }
  }
  const tp = await throughput(t, upstreamPid, round, null, plan.throughputS, plan, scriptDir);
  out.push(tp);
  const partsText =
    tp.partsCpuUsPerReq !== undefined
      ? ` (${Object.entries(tp.partsCpuUsPerReq)
          .map(([k, v]) => `${k} ${v?.toFixed(1) ?? '-'}`)
          .join(' + ')})`
      : '';
  log(
    `  ${t.spec.name}: ${tp.error ?? `${tp.wrk?.requestsPerSec.toFixed(0)} req/s, ${tp.cpuUsPerReq?.toFixed(1) ?? '-'}${partsText} CPU µs/req, p99 ${tp.wrk?.latency.p99Us} µs`}`,
  );
  for (const rate of plan.rates) {
    const r = await fixedRate(t, round, rate, plan, scriptDir);
    out.push(r);
    log(
      `  ${t.spec.name} @${rate}/s: ${r.error ?? `p50 ${r.wrk?.latency.p50Us} p99 ${r.wrk?.latency.p99Us} p99.9 ${r.wrk?.latency.p999Us} µs, late ${r.wrk?.late}`}`,
    );
  }
  if (plan.hol?.configs.includes(t.spec.name) === true) {
    const h = await runHol(t, round, plan.hol, scriptDir);
    out.push(h);
    log(
      `  ${t.spec.name} head-of-line @${h.rate}/s: ${h.error ?? `fast p50 ${h.fast?.p50Us ?? '-'} p99 ${h.fast?.p99Us ?? '-'} µs, slow p50 ${h.slow?.p50Us ?? '-'} µs, late ${h.wrk?.late ?? '-'}`}`,
    );
  }
  if (plan.autocannonS > 0) {
    const a = await cannon(t, round, plan);
    out.push(a);
    log(`  ${t.spec.name} autocannon: ${a.error ?? `${a.result?.requestsPerSec.toFixed(0)} req/s, p99 ${a.result?.latencyP99Ms} ms`}`);
  }
  for (const v of plan.variants) {
    const r = await throughput(t, upstreamPid, round, v, plan.variantS, plan, scriptDir);
    out.push(r);
    log(`  ${t.spec.name} ${v.name}: ${r.error ?? `${r.wrk?.requestsPerSec.toFixed(0)} req/s, ${r.cpuUsPerReq?.toFixed(1) ?? '-'} CPU µs/req`}`);
  }
  return out;
}

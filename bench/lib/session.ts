// One bench session: install/find the tools, start the upstream and every config, measure the
// configs interleaved for several rounds (order rotated each round), read each outrigger
// process's accepted connections and requests per worker (GET /stats), stop everything, and return
// results.json's content. Shared by compare.ts (npm run bench) and ci.ts.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConnections, workerCountsText, type ConnectionsReading } from './admin.js';
import { summarizeComparisons, type ComparisonSpec } from './comparisons.js';
import { summarizeHol } from './hol.js';
import { clockTicksPerSecond } from './procfs.js';
import { measureConfig, type MeasurePlan, type RunRecord } from './measure.js';
import { readLoopDelay, type LoopDelayReading } from './memory.js';
import { ensureTools, type ToolStatus } from './peers.js';
import { sleep } from './proc.js';
import type { BenchResults } from './results.js';
import { IDLE_CPU_UNTIL_MS, IDLE_RSS_AT_MS, STARTUP_RSS_AT_MS, startKeptIdleWatch, treeCpuNs, treeRssKb, type KeptIdleReading } from './rss.js';
import { summarizeRuns } from './summary.js';
import { startTarget, startUpstream, type RunningTarget, type TargetKind, type TargetSpec } from './targets.js';
import { summarizeThreads } from './threads.js';

/**
 * Reads the RSS of `pids` `at.startupMs` and `at.idleMs` after `startedAt` (ms since the epoch)
 * into `into[name]`, and their CPU time from `at.idleMs` to `at.cpuUntilMs` (ms of CPU per second).
 */
export async function readIdleRss(
  name: string,
  pids: readonly number[],
  startedAt: number,
  into: { startup: Record<string, number>; idle: Record<string, number>; cpu?: Record<string, number> },
  at = { startupMs: STARTUP_RSS_AT_MS, idleMs: IDLE_RSS_AT_MS, cpuUntilMs: IDLE_CPU_UNTIL_MS },
): Promise<void> {
  if (pids.length === 0) return;
  await sleep(Math.max(0, startedAt + at.startupMs - Date.now()));
  into.startup[name] = treeRssKb(pids);
  await sleep(Math.max(0, startedAt + at.idleMs - Date.now()));
  into.idle[name] = treeRssKb(pids);
  if (into.cpu === undefined) return;
  const t0 = performance.now();
  const ns0 = treeCpuNs(pids);
  await sleep(Math.max(0, startedAt + at.cpuUntilMs - Date.now()));
  const ns1 = treeCpuNs(pids);
  const seconds = (performance.now() - t0) / 1000;
  if (seconds > 0) into.cpu[name] = (ns1 - ns0) / 1e6 / seconds;
}

export interface SessionOptions {
  readonly repoRoot: string;
  readonly targets: readonly TargetSpec[];
  readonly rounds: number;
  readonly plan: MeasurePlan;
  readonly quick: boolean;
  readonly install: boolean;
  /** Paired ratios to report (those whose configs were measured). */
  readonly comparisons?: readonly ComparisonSpec[];
  /**
   * A config to start once more, first, and keep idle for the whole session (only its start-up
   * probe reaches it): its RSS every few seconds from IDLE_RSS_AT_MS on (results `keptIdle`).
   * Named `<config>-kept-idle`, it is not one of `targets` and no round measures it.
   */
  readonly keptIdle?: TargetSpec;
  readonly log: (s: string) => void;
}

/** GET /stats `connections` of every outrigger process of the running configs, logged as read. */
async function readAllConnections(running: readonly RunningTarget[], log: (s: string) => void): Promise<ConnectionsReading[]> {
  const out: ConnectionsReading[] = [];
  for (const t of running) {
    for (const a of t.admin ?? []) {
      const r = await readConnections(t.spec.name, a);
      out.push(r);
      const text = r.listeners?.map((l) => `${l.listener} ${JSON.stringify(l.accepted_by_worker)}`).join(', ');
      log(`connections accepted per worker, ${t.spec.name}/${a.part}: ${r.note ?? (text || 'no listener counted')}`);
      const counts = workerCountsText(r.workers);
      if (counts !== null) log(`requests and connections per worker, ${t.spec.name}/${a.part}: ${counts}`);
    }
  }
  return out;
}

export async function runSession(opts: SessionOptions): Promise<BenchResults> {
  const log = opts.log;
  const startedAt = new Date().toISOString();
  const loadavgStart = loadavg();
  const peerTool = (kind: TargetKind): string | null => (kind === 'nginx' || kind === 'nginx-pair' ? 'nginx' : kind === 'haproxy' ? 'haproxy' : null);
  const needed = ['wrk', ...new Set(opts.targets.map((t) => peerTool(t.kind)).filter((t) => t !== null))];
  const tools: ToolStatus[] = ensureTools(needed, opts.install, log);
  const toolMap = new Map(tools.map((t) => [t.tool, t]));
  const wrk = toolMap.get('wrk');
  if (wrk?.path == null) throw new Error(`wrk is required: ${wrk?.reason ?? 'missing'}`);

  const tmp = mkdtempSync(join(tmpdir(), 'outrigger-bench-'));
  const running: RunningTarget[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const idleRssKb: Record<string, number> = {};
  const startupRssKb: Record<string, number> = {};
  const idleCpuMsPerS: Record<string, number> = {};
  const rssReadings: Array<Promise<void>> = [];
  const runs: RunRecord[] = [];
  let connections: ConnectionsReading[] = [];
  const loopDelay: LoopDelayReading[] = [];
  let upstream: Awaited<ReturnType<typeof startUpstream>> | null = null;
  let keptIdle: { target: RunningTarget; watch: ReturnType<typeof startKeptIdleWatch> } | null = null;
  let keptIdleReading: KeptIdleReading | null = null;
  try {
    upstream = await startUpstream(opts.repoRoot);
    log(`upstream (uWS) on 127.0.0.1:${upstream.port}, pid ${upstream.proc.pid}`);
    if (opts.keptIdle !== undefined) {
      const spec = { ...opts.keptIdle, name: `${opts.keptIdle.name}-kept-idle` };
      const r = await startTarget(spec, { repoRoot: opts.repoRoot, tmpDir: tmp, upstreamPort: upstream.port, tools: toolMap });
      if (r.ok) {
        keptIdle = { target: r.target, watch: startKeptIdleWatch(opts.keptIdle.name, r.target.pids, Date.now()) };
        log(`started ${spec.name}: kept idle for the whole run, its RSS read every few seconds`);
      } else {
        log(`SKIPPED ${spec.name}: ${r.reason}`);
      }
    }
    for (const spec of opts.targets) {
      const r = await startTarget(spec, { repoRoot: opts.repoRoot, tmpDir: tmp, upstreamPort: upstream.port, tools: toolMap });
      if (r.ok) {
        running.push(r.target);
        rssReadings.push(readIdleRss(spec.name, r.target.pids, Date.now(), { startup: startupRssKb, idle: idleRssKb, cpu: idleCpuMsPerS }));
        log(`started ${spec.name}: ${r.target.baseUrl} (${r.target.description})`);
      } else {
        const reason = r.reason.length > 700 ? `${r.reason.slice(0, 700)}…` : r.reason;
        skipped.push({ name: spec.name, reason });
        log(`SKIPPED ${spec.name}: ${r.reason}`);
      }
    }
    await Promise.all(rssReadings);

    for (let round = 1; round <= opts.rounds; round++) {
      const offset = (round - 1) % Math.max(1, running.length);
      const order = [...running.slice(offset), ...running.slice(0, offset)];
      log(`round ${round}/${opts.rounds}: ${order.map((t) => t.spec.name).join(', ')}`);
      for (const t of order) {
        runs.push(...(await measureConfig(t, upstream.proc.pid, round, opts.plan, tmp, log)));
      }
    }
    connections = await readAllConnections(running, log);
    for (const t of running) for (const a of t.admin ?? []) loopDelay.push(await readLoopDelay(t.spec.name, a));
    keptIdleReading = keptIdle?.watch.stop() ?? null;
  } finally {
    keptIdle?.watch.stop();
    await keptIdle?.target.stop();
    for (const t of running) await t.stop();
    await upstream?.proc.stop();
    rmSync(tmp, { recursive: true, force: true });
  }

  const configs = running.map((t) => t.spec.name);
  const summary = summarizeRuns(configs, runs, idleRssKb, {
    rates: opts.plan.rates,
    variants: opts.plan.variants.map((v) => v.name),
  });
  const cpu0 = cpus()[0];
  return {
    schema: 'outrigger-bench/1',
    meta: {
      startedAt,
      finishedAt: new Date().toISOString(),
      quick: opts.quick,
      rounds: opts.rounds,
      plan: { ...opts.plan, variants: opts.plan.variants.map((v) => v.name) },
      host: {
        cpus: cpus().length,
        cpuModel: cpu0?.model.trim() ?? 'unknown',
        node: process.version,
        kernel: release(),
        loadavgStart,
        loadavgEnd: loadavg(),
        clkTck: clockTicksPerSecond(),
      },
      tools,
      upstream: 'uWebSockets.js hello world (bench/upstream/server.ts), 1 thread',
    },
    configs: running.map((t) => ({ name: t.spec.name, description: t.description })),
    skipped,
    idleRssKb,
    startupRssKb,
    idleCpuMsPerS,
    ...(keptIdleReading !== null ? { keptIdle: keptIdleReading } : {}),
    runs,
    summary,
    comparisons: summarizeComparisons(opts.comparisons ?? [], runs),
    threads: summarizeThreads(runs),
    connections,
    loopDelay,
    ...(opts.plan.hol !== undefined ? { hol: summarizeHol(opts.plan.hol, runs) } : {}),
  };
}

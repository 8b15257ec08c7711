// Resident memory of a process tree: the sum of VmRSS over its processes (threads share one
// address space, so a multi-threaded process counts once), and a sampler that keeps the peak
// and mean while a load runs.

import { processCpuNs, processRunQueueNs, processTree, readVmRssKb } from './procfs.js';
import { summarize } from './stats.js';

/**
 * When each config's resident memory is read, counted from its own start (configs start one after
 * another, so one moment for all would read the first ones older than the last): at start-up, and
 * idle once V8's memory reducer has first run (~8 s after start; measured on a 1-worker sidecar:
 * 70.7-71.2 MiB until 7 s, 63.6-65.5 from 9 s to 25 s). The idle reading is the one the targets
 * and bench:ci's gate use.
 */
export const STARTUP_RSS_AT_MS = 1000;
export const IDLE_RSS_AT_MS = 15_000;
/** Idle CPU is the tree's CPU time from IDLE_RSS_AT_MS to this age, per second. */
export const IDLE_CPU_UNTIL_MS = 25_000;

/** Every live process of the trees rooted at `roots`, each once. */
function treePids(roots: readonly number[]): Set<number> {
  const seen = new Set<number>();
  for (const root of roots) for (const pid of processTree(root)) seen.add(pid);
  return seen;
}

/** `perPid` of every live process of the trees rooted at `roots`, summed (each process once). */
function sumOverTrees(roots: readonly number[], perPid: (pid: number) => number): number {
  let sum = 0;
  for (const pid of treePids(roots)) sum += perPid(pid);
  return sum;
}

export function treeRssKb(roots: readonly number[]): number {
  return sumOverTrees(roots, (pid) => readVmRssKb(pid) ?? 0);
}

/** CPU time of the trees rooted at `roots`, ns (threads of every process, schedstat). */
export function treeCpuNs(roots: readonly number[]): number {
  return sumOverTrees(roots, processCpuNs);
}

/** Time the threads of the trees rooted at `roots` waited for a CPU while runnable, ns (schedstat's run_delay). */
export function treeRunQueueNs(roots: readonly number[]): number {
  return sumOverTrees(roots, processRunQueueNs);
}

export interface RssStats {
  readonly peakKb: number;
  readonly meanKb: number;
  readonly samples: number;
}

/** Samples the tree's RSS every `everyMs` until stop() is called. */
export function startRssSampler(roots: readonly number[], everyMs = 250): { stop(): RssStats } {
  let peak = 0;
  let sum = 0;
  let n = 0;
  const take = (): void => {
    if (roots.length === 0) return;
    const kb = treeRssKb(roots);
    peak = Math.max(peak, kb);
    sum += kb;
    n++;
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop(): RssStats {
      clearInterval(timer);
      take();
      return { peakKb: peak, meanKb: n > 0 ? sum / n : 0, samples: n };
    },
  };
}

/** A config kept idle for a whole session (no traffic but the start-up probe): its RSS over time. */
export interface KeptIdleReading {
  /** The config it runs (started a second time, beside the measured one). */
  readonly config: string;
  /** Seconds after its start of the first and last sample. */
  readonly fromS: number;
  readonly toS: number;
  readonly samples: number;
  readonly medianKb: number;
  readonly minKb: number;
  readonly maxKb: number;
}

/** Every KEPT_IDLE_EVERY_MS from IDLE_RSS_AT_MS after its start, the RSS of a config nobody sends traffic to. */
export const KEPT_IDLE_EVERY_MS = 5000;

/**
 * Samples the trees' RSS every `everyMs` from `fromMs` after `startedAt` until stop(), which
 * returns the reading (null when no sample was taken: the session ended first).
 */
export function startKeptIdleWatch(
  config: string,
  roots: readonly number[],
  startedAt: number,
  at = { fromMs: IDLE_RSS_AT_MS, everyMs: KEPT_IDLE_EVERY_MS },
): { stop(): KeptIdleReading | null } {
  const samples: Array<{ t: number; kb: number }> = [];
  const take = (): void => {
    const kb = treeRssKb(roots);
    if (kb > 0) samples.push({ t: Date.now(), kb });
  };
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(
    () => {
      take();
      interval = setInterval(take, at.everyMs);
    },
    Math.max(0, startedAt + at.fromMs - Date.now()),
  );
  return {
    stop(): KeptIdleReading | null {
      clearTimeout(first);
      clearInterval(interval);
      const kb = summarize(samples.map((x) => x.kb));
      if (kb === null) return null;
      return {
        config,
        fromS: Math.round((samples[0]!.t - startedAt) / 1000),
        toS: Math.round((samples[samples.length - 1]!.t - startedAt) / 1000),
        samples: kb.n,
        medianKb: kb.median,
        minKb: kb.min,
        maxKb: kb.max,
      };
    },
  };
}

// Where a process's CPU goes, thread by thread, during a throughput run: its main thread, its
// busiest other threads and the rest (V8 and libuv helpers). An outrigger worker is one thread,
// but Node names every thread "node", so workers are told apart by CPU, not by name: a process
// whose 2 workers both carry load shows two busy threads of similar weight (balance near 1),
// a 1-worker process one busy thread and small helpers (balance near 0).

import { ticksToMicros } from './cpu.js';
import type { RunRecord } from './measure.js';
import { threadTicks } from './procfs.js';
import { summarize, type Summary } from './stats.js';

/** CPU µs per request of one process: its main thread, and every other thread that ran, busiest first. */
export interface ThreadSplit {
  readonly main: number;
  readonly others: readonly number[];
}

export type ThreadTicks = ReadonlyMap<number, number>;

/** Ticks per thread of each named process, now. */
export function sampleThreads(procs: readonly { readonly name: string; readonly pid: number }[]): Map<string, ThreadTicks> {
  return new Map(procs.map((p) => [p.name, threadTicks(p.pid)]));
}

/** The split between two samples of process `pid`; null without requests. */
export function splitThreads(pid: number, before: ThreadTicks, after: ThreadTicks, requests: number, clkTck?: number): ThreadSplit | null {
  if (requests <= 0) return null;
  const perReq = (ticks: number): number => ticksToMicros(ticks, clkTck) / requests;
  let main = 0;
  const others: number[] = [];
  for (const [tid, t] of after) {
    const d = Math.max(0, t - (before.get(tid) ?? 0));
    if (tid === pid) main = perReq(d);
    else if (d > 0) others.push(perReq(d));
  }
  return { main, others: others.sort((a, b) => b - a) };
}

/** One process of one config across rounds. */
export interface ThreadSummary {
  readonly config: string;
  readonly process: string;
  readonly main: Summary | null;
  readonly busiest: Summary | null;
  readonly second: Summary | null;
  readonly rest: Summary | null;
  /** Second-busiest ÷ busiest thread, per round: near 1 when two workers share the load. */
  readonly balance: Summary | null;
}

/** Per config and process, from the GET / throughput runs that carry a thread split. */
export function summarizeThreads(runs: readonly RunRecord[]): ThreadSummary[] {
  const groups = new Map<string, { config: string; process: string; splits: ThreadSplit[] }>();
  for (const r of runs) {
    if (r.kind !== 'throughput' || r.variant !== 'GET /' || r.error !== undefined) continue;
    for (const [process, split] of Object.entries(r.threadsCpuUsPerReq ?? {})) {
      const key = `${r.config}\u0000${process}`;
      const g = groups.get(key) ?? { config: r.config, process, splits: [] };
      g.splits.push(split);
      groups.set(key, g);
    }
  }
  return [...groups.values()].map(({ config, process, splits }) => ({
    config,
    process,
    main: summarize(splits.map((s) => s.main)),
    busiest: summarize(splits.map((s) => s.others[0] ?? 0)),
    second: summarize(splits.map((s) => s.others[1] ?? 0)),
    rest: summarize(splits.map((s) => s.others.slice(2).reduce((a, b) => a + b, 0))),
    balance: summarize(splits.map((s) => ((s.others[0] ?? 0) > 0 ? (s.others[1] ?? 0) / (s.others[0] ?? 1) : null))),
  }));
}

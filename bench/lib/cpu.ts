// CPU accounting for a process tree from /proc samples. utime+stime of /proc/<pid>/stat covers
// every thread of a process (worker threads included); children are found by walking the tree
// at each sample. Ticks are USER_HZ (getconf CLK_TCK), so resolution is 1/CLK_TCK s per sample.

import { clockTicksPerSecond, processTree, readProcStat, type ProcStat } from './procfs.js';

/** One sample: ticks (utime+stime+cutime+cstime) per pid of the tree, at a wall-clock time. */
export interface CpuSample {
  readonly atMs: number;
  readonly ticks: ReadonlyMap<number, number>;
}

export function ticksOf(st: Pick<ProcStat, 'utime' | 'stime' | 'cutime' | 'cstime'>): number {
  return st.utime + st.stime + st.cutime + st.cstime;
}

/** Builds a sample from already-parsed stats (used by tests with fixed /proc text). */
export function sampleFromStats(stats: readonly ProcStat[], atMs: number): CpuSample {
  const ticks = new Map<number, number>();
  for (const st of stats) ticks.set(st.pid, ticksOf(st));
  return { atMs, ticks };
}

/** Samples the trees rooted at `roots` now. Processes that vanished are left out. */
export function sampleCpu(roots: readonly number[]): CpuSample {
  const stats: ProcStat[] = [];
  const seen = new Set<number>();
  for (const root of roots) {
    for (const pid of processTree(root)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      const st = readProcStat(pid);
      if (st !== null) stats.push(st);
    }
  }
  return sampleFromStats(stats, Date.now());
}

/**
 * Ticks used between two samples. A pid in both counts its growth; a pid that appeared in
 * `after` counts everything it has (it started inside the window). A pid that exited inside
 * the window is lost unless its parent reaped it (then it shows in the parent's cutime/cstime).
 */
export function deltaTicks(before: CpuSample, after: CpuSample): number {
  let sum = 0;
  for (const [pid, t] of after.ticks) {
    const b = before.ticks.get(pid);
    sum += b === undefined ? t : Math.max(0, t - b);
  }
  return sum;
}

export function ticksToMicros(ticks: number, clkTck: number = clockTicksPerSecond()): number {
  return (ticks * 1e6) / clkTck;
}

/** CPU µs used by the tree between two samples. */
export function cpuMicrosBetween(before: CpuSample, after: CpuSample, clkTck?: number): number {
  return ticksToMicros(deltaTicks(before, after), clkTck);
}

/** CPU µs per request; null when there were no requests. */
export function microsPerRequest(cpuMicros: number, requests: number): number | null {
  return requests > 0 ? cpuMicros / requests : null;
}

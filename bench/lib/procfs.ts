// Reads of /proc for the bench harness: per-process CPU ticks (all threads), RSS, and the
// process tree under a pid. Pure parsers are exported separately so tests can feed them
// captured text. Linux only; nothing here writes.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat that the harness uses (see proc(5)). */
export interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  readonly state: string;
  readonly ppid: number;
  /** User-mode clock ticks of all threads of this process (field 14). */
  readonly utime: number;
  /** Kernel-mode clock ticks of all threads (field 15). */
  readonly stime: number;
  /** Ticks of waited-for (reaped) children (fields 16, 17). */
  readonly cutime: number;
  readonly cstime: number;
  readonly numThreads: number;
  /** Start time after boot, in ticks (field 22). */
  readonly starttime: number;
}

/**
 * Parses one /proc/<pid>/stat line. `comm` may hold spaces and parentheses, so the fields are
 * counted from the last ')'.
 */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  // rest[0] is field 3 (state)
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const field = (n: number): number => {
    const v = rest[n - 3];
    if (v === undefined) throw new Error(`/proc/<pid>/stat line has no field ${n}`);
    const num = Number(v);
    if (!Number.isFinite(num)) throw new Error(`/proc/<pid>/stat field ${n} is not a number: ${v}`);
    return num;
  };
  return {
    pid,
    comm,
    state: rest[0] ?? '?',
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
    numThreads: field(20),
    starttime: field(22),
  };
}

/** VmRSS from /proc/<pid>/status, in KiB; null when absent (kernel threads, zombies). */
export function parseVmRssKb(statusText: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(statusText);
  return m?.[1] !== undefined ? Number(m[1]) : null;
}

/** Context switches of one thread from its /proc/<pid>/task/<tid>/status: voluntary (it slept) and involuntary (it was preempted). */
export interface ContextSwitches {
  readonly voluntary: number;
  readonly involuntary: number;
}

/** The voluntary_ctxt_switches and nonvoluntary_ctxt_switches lines of a status file; zeros when absent. */
export function parseContextSwitches(statusText: string): ContextSwitches {
  const v = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(statusText);
  const n = /^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(statusText);
  return { voluntary: v?.[1] !== undefined ? Number(v[1]) : 0, involuntary: n?.[1] !== undefined ? Number(n[1]) : 0 };
}

let clkTck: number | undefined;

/** USER_HZ from `getconf CLK_TCK` (cached); 100 when getconf is missing or odd. */
export function clockTicksPerSecond(): number {
  if (clkTck !== undefined) return clkTck;
  let v = 100;
  try {
    const out = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim());
    if (Number.isInteger(out) && out > 0) v = out;
  } catch {
    // keep the default
  }
  clkTck = v;
  return v;
}

export function readProcStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export function readVmRssKb(pid: number): number | null {
  try {
    return parseVmRssKb(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

/** Direct children of pid, found by scanning /proc (works on every kernel config). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const st = readProcStat(Number(name));
    if (st !== null && st.ppid === pid) out.push(st.pid);
  }
  return out;
}

/** pid and all its live descendants (breadth first). */
export function processTree(pid: number): number[] {
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    if (readProcStat(p) === null) continue;
    tree.push(p);
    queue.push(...childPids(p));
  }
  return tree;
}

/** Calls `use` with /proc/<pid>/task/<tid>/<file> of every thread of pid; none when the process is gone, a thread that ends meanwhile is skipped. */
function eachThreadFile(pid: number, file: string, use: (text: string) => void): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    try {
      use(readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8'));
    } catch {
      // the thread ended between the listing and the read (or left a line that does not parse)
    }
  }
}

/**
 * Nanoseconds on a CPU of every thread of pid (/proc/<pid>/task/<tid>/schedstat's first field):
 * finer than utime+stime's ticks (10 ms here), for the little CPU an idle process uses. 0 when
 * the process is gone.
 */
export function processCpuNs(pid: number): number {
  return schedstatSum(pid, 0);
}

/**
 * Nanoseconds every thread of pid spent runnable but not on a CPU (schedstat's second field, the
 * kernel's run_delay): waiting behind other threads, or for an idle vCPU to be woken. 0 when the
 * process is gone.
 */
export function processRunQueueNs(pid: number): number {
  return schedstatSum(pid, 1);
}

/** Field `index` of every thread's /proc/<pid>/task/<tid>/schedstat, summed. */
function schedstatSum(pid: number, index: 0 | 1): number {
  let ns = 0;
  eachThreadFile(pid, 'schedstat', (text) => (ns += Number(text.split(' ')[index]) || 0));
  return ns;
}

/** Context switches of every thread of pid, summed (a thread that ended is not counted; zeros when the process is gone). */
export function processContextSwitches(pid: number): ContextSwitches {
  let voluntary = 0;
  let involuntary = 0;
  eachThreadFile(pid, 'status', (text) => {
    const c = parseContextSwitches(text);
    voluntary += c.voluntary;
    involuntary += c.involuntary;
  });
  return { voluntary, involuntary };
}

/** utime+stime of each thread of pid (/proc/<pid>/task/<tid>/stat); empty when the process is gone. */
export function threadTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  eachThreadFile(pid, 'stat', (text) => {
    const st = parseProcStat(text);
    out.set(st.pid, st.utime + st.stime);
  });
  return out;
}

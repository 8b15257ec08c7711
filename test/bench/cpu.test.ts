// CPU and memory accounting of the bench harness, from fixed /proc text and from real /proc
// samples of real child processes (a busy process, a busy worker thread, a grandchild).
// Assertions never depend on how fast the machine is: children run until a condition holds.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { treeRunQueueNs } from '../../bench/lib/rss.js';
import { cpuMicrosBetween, deltaTicks, sampleCpu, sampleFromStats, ticksToMicros, microsPerRequest } from '../../bench/lib/cpu.js';
import {
  clockTicksPerSecond,
  parseContextSwitches,
  parseProcStat,
  parseVmRssKb,
  processContextSwitches,
  processCpuNs,
  processRunQueueNs,
  processTree,
  readProcStat,
  readVmRssKb,
  threadTicks,
} from '../../bench/lib/procfs.js';

// A real line from /proc/<pid>/stat of a node process, with a comm that holds spaces and ')'.
const STAT_LINE =
  '4242 (node (worker) x) S 4200 4242 4200 0 -1 4194560 12345 0 0 0 731 129 7 3 20 0 11 0 987654 1234567168 23456 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function spawnNode(code: string): ChildProcess {
  const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return c;
}

/** Waits (bounded) for `f` to give a value: polls with vi.waitFor. */
function until<T>(f: () => T | null | undefined | false, what: string, limitMs = 30_000): Promise<T> {
  return vi.waitFor(
    () => {
      const v = f();
      if (v === null || v === undefined || v === false) throw new Error(`still waiting for ${what}`);
      return v;
    },
    { timeout: limitMs, interval: 20 },
  );
}

describe('procfs parsers (fixed text)', () => {
  it('parses /proc/<pid>/stat with spaces and parentheses in comm', () => {
    const st = parseProcStat(STAT_LINE);
    expect(st).toMatchObject({
      pid: 4242,
      comm: 'node (worker) x',
      state: 'S',
      ppid: 4200,
      utime: 731,
      stime: 129,
      cutime: 7,
      cstime: 3,
      numThreads: 11,
      starttime: 987654,
    });
  });

  it('rejects a line that is not a stat line', () => {
    expect(() => parseProcStat('garbage')).toThrow(/not a \/proc/);
  });

  it('reads VmRSS in KiB from /proc/<pid>/status', () => {
    expect(parseVmRssKb('Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t   51234 kB\nThreads:\t11\n')).toBe(51234);
    expect(parseVmRssKb('Name:\tkthreadd\nThreads:\t1\n')).toBeNull();
  });

  it('reads context switches from a thread status file', () => {
    const text = 'Name:\tnode\nThreads:\t1\nvoluntary_ctxt_switches:\t1520\nnonvoluntary_ctxt_switches:\t37\n';
    expect(parseContextSwitches(text)).toEqual({ voluntary: 1520, involuntary: 37 });
    expect(parseContextSwitches('Name:\tzombie\n')).toEqual({ voluntary: 0, involuntary: 0 });
  });

  it('turns tick deltas into µs with USER_HZ', () => {
    const a = sampleFromStats([parseProcStat(STAT_LINE)], 0);
    const later = STAT_LINE.replace(' 731 129 7 3 ', ' 931 179 7 3 ');
    const b = sampleFromStats([parseProcStat(later), parseProcStat(STAT_LINE.replace(/^4242/, '4243'))], 1000);
    // pid 4242 grew by 200 + 50 ticks; pid 4243 is new, so all its 731+129+7+3 ticks count.
    expect(deltaTicks(a, b)).toBe(250 + 870);
    expect(cpuMicrosBetween(a, b, 100)).toBe(1120 * 10_000);
    expect(ticksToMicros(3, 250)).toBe(12_000);
    expect(microsPerRequest(1_000_000, 50_000)).toBe(20);
    expect(microsPerRequest(5, 0)).toBeNull();
  });

  it('gets CLK_TCK from getconf', () => {
    const hz = clockTicksPerSecond();
    expect(Number.isInteger(hz) && hz > 0).toBe(true);
  });
});

describe('CPU accounting from real /proc samples', () => {
  it('counts a busy child process, consistent with the tick math', async () => {
    const child = spawnNode('for(;;){}');
    const pid = child.pid as number;
    const before = await until(() => readProcStat(pid) !== null && sampleCpu([pid]), 'child in /proc');
    // Wait until the child has burned at least 5 ticks beyond the first sample.
    const after = await until(() => {
      const s = sampleCpu([pid]);
      return deltaTicks(before, s) >= 5 ? s : null;
    }, 'child CPU ticks');
    const ticks = deltaTicks(before, after);
    const us = cpuMicrosBetween(before, after);
    expect(us).toBeGreaterThan(0);
    expect(us).toBe((ticks * 1e6) / clockTicksPerSecond());
    // The sample agrees with the raw fields of /proc/<pid>/stat.
    const st = readProcStat(pid);
    expect(st).not.toBeNull();
    const now = (st?.utime ?? 0) + (st?.stime ?? 0) + (st?.cutime ?? 0) + (st?.cstime ?? 0);
    expect(now).toBeGreaterThanOrEqual(after.ticks.get(pid) ?? Infinity);
  });

  it('counts CPU of worker threads in the process figure', async () => {
    const child = spawnNode("const { Worker } = require('node:worker_threads'); new Worker('for(;;){}', { eval: true }); setInterval(() => {}, 1000);");
    const pid = child.pid as number;
    // Wait until some thread other than the main one has 5 ticks.
    const busyTid = await until(() => {
      for (const [tid, ticks] of threadTicks(pid)) if (tid !== pid && ticks >= 5) return tid;
      return null;
    }, 'busy worker thread');
    const thread = readProcStat(busyTid);
    const proc = readProcStat(pid);
    expect(thread).not.toBeNull();
    expect(proc).not.toBeNull();
    // The process's utime+stime covers every thread, so it is at least the busy thread's.
    expect((proc?.utime ?? 0) + (proc?.stime ?? 0)).toBeGreaterThanOrEqual((thread?.utime ?? 0) + (thread?.stime ?? 0));
    expect(sampleCpu([pid]).ticks.get(pid) ?? 0).toBeGreaterThanOrEqual(5);
    // Per thread (/proc/<pid>/task/<tid>/stat, not /proc/<tid>/stat, which reads like the whole
    // process): the spinning worker thread is its own entry and soon outgrows the main thread,
    // which only started the process (a few ticks) and then sleeps.
    const threads = await until(() => {
      const t = threadTicks(pid);
      const main = t.get(pid) ?? 0;
      return [...t].some(([tid, n]) => tid !== pid && n >= main + 5) ? t : null;
    }, 'a worker thread busier than the main thread in /proc/<pid>/task');
    expect(threads.has(pid)).toBe(true);
    expect(threads.size).toBeGreaterThan(2);
    expect(threadTicks(-1).size).toBe(0);
  });

  it('sums the context switches of every thread of a process', async () => {
    // The worker sleeps 200 times (voluntary switches of its own thread, not the main thread's).
    const child = spawnNode(
      "const { Worker } = require('node:worker_threads'); new Worker('const a = new Int32Array(new SharedArrayBuffer(4)); for (let i = 0; i < 200; i++) Atomics.wait(a, 0, 0, 1); setInterval(() => {}, 1000);', { eval: true }); setInterval(() => {}, 1000);",
    );
    const pid = child.pid as number;
    // Only a sum over /proc/<pid>/task/* gets 200 beyond the main thread's own count.
    const [total, mainOnly] = await until(() => {
      const main = parseContextSwitches(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
      const all = processContextSwitches(pid);
      return all.voluntary >= main.voluntary + 200 ? [all, main] : null;
    }, 'the worker thread sleeping 200 times');
    expect(total.involuntary).toBeGreaterThanOrEqual(mainOnly.involuntary);
    expect(processContextSwitches(-1)).toEqual({ voluntary: 0, involuntary: 0 });
  });

  it('counts the time threads were runnable without a CPU (schedstat run_delay), over every thread and the tree', async () => {
    // Two spinning threads (main and worker) held to one CPU: whenever one runs, the other is
    // runnable and waits, so the worker's wait grows as surely as its CPU time does. (The main
    // thread alone may also wait behind other processes on that CPU: the condition is on the worker.)
    const code = "const { Worker } = require('node:worker_threads'); new Worker('for(;;){}', { eval: true }); for(;;){}";
    const child = spawn('taskset', ['-c', '0', process.execPath, '-e', code], { stdio: 'ignore' });
    children.push(child);
    const pid = child.pid as number;
    /** Each thread's run_delay, read here line by line (not by the functions under test). */
    const waits = (): Map<number, number> =>
      new Map(readdirSync(`/proc/${pid}/task`).map((tid) => [Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1])]));
    const seen = await until(() => {
      const w = waits();
      return [...w].some(([tid, ns]) => tid !== pid && ns >= 20e6) ? w : null;
    }, 'a thread besides the main one waiting 20 ms for the one CPU');
    const sumSeen = [...seen.values()].reduce((a, b) => a + b, 0);
    expect(sumSeen).toBeGreaterThan(seen.get(pid) ?? 0);
    // The counters only grow and no thread of the child ends, so a reading between two sums of
    // the lines lies between them: every thread's run_delay, not its CPU time or the main's alone.
    const sum = (): number => [...waits().values()].reduce((a, b) => a + b, 0);
    const before = sum();
    const read = processRunQueueNs(pid);
    const after = sum();
    expect(before).toBeGreaterThanOrEqual(sumSeen);
    expect(read).toBeGreaterThanOrEqual(before);
    expect(read).toBeLessThanOrEqual(after);
    expect(processCpuNs(pid)).toBeGreaterThan(0);
    // The tree from this test's process holds the child: at least its wait.
    expect(treeRunQueueNs([process.pid])).toBeGreaterThanOrEqual(sumSeen);
    expect(processRunQueueNs(-1)).toBe(0);
  });

  it('walks the process tree to grandchildren and sums their RSS', async () => {
    const child = spawnNode(
      "const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], {stdio: 'ignore'}); console.log(c.pid); setInterval(()=>{},1000); process.on('SIGTERM', () => { c.kill(); process.exit(0); });",
    );
    const grandchild = await new Promise<number>((resolve) => {
      child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    });
    try {
      const tree = await until(() => {
        const t = processTree(child.pid as number);
        return t.includes(grandchild) ? t : null;
      }, 'grandchild in tree');
      expect(tree[0]).toBe(child.pid);
      expect(sampleCpu([child.pid as number]).ticks.has(grandchild)).toBe(true);
      expect(readVmRssKb(grandchild) ?? 0).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});

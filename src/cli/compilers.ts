// V8's compilers stay off while the sidecar starts; Sparkplug comes on once it serves, TurboFan
// once it is busy (main.ts turns both off before the command loads).
//
// Start-up runs once in every isolate (main, config check, each worker): ~150 modules' top-level
// code and node's ESM resolver. With the compilers on, the resolver grew hot enough for TurboFan
// (--trace-opt: getPathFromURLPosix, normalizeString, URL #updateContext), which paged in the
// compiler's own code (~3 MiB of node's binary), and Sparkplug kept baseline code for functions
// that never run again. Measured on a 1-worker strict sidecar, VmRSS 15 s after start: 63.8-64.3
// MiB → 59.0-59.1 (RssFile 43.8 → 40.4), and the ready line ~25 ms later (~360 → ~385 ms).
//
// `run` turns Sparkplug on with its ready line, before the first request that follows it: Sparkplug
// off for a sidecar's whole life saved 1 MiB but doubled p99.9 at 1000 req/s (code that runs once
// a second stayed interpreted). TurboFan waits until the process has used at least BUSY_CPU_MS of
// CPU in each of BUSY_SECONDS seconds in a row, or SATURATED_CPU_MS in one (OptimizerWhenBusy,
// ticked by the main thread's once-a-second job): an idle sidecar's once-a-second code (the stats
// hand-off's `takeSparse`, the main thread's percentiles) otherwise grew "hot and stable" after
// ~70 s and paged the compiler in all the same: VmRSS 61.2 → 65.0 MiB, RssFile 40.5 → 43.8
// (--trace-opt: reset, countAtPercentile). The request
// path at any real rate costs far more than BUSY_CPU_MS and is optimized a few seconds after it
// starts, within a second under a load test (Sparkplug alone costs ~1.7× TurboFan's CPU per
// request at saturation). In a row, because V8's memory reducer costs an idle sidecar 100-140 ms
// of CPU a second for one or two seconds ~8 s after start (measured with 1, 2 and 4 workers).
// Every other command turns both on at once.
//
// A process started with its own choice of these flags (node --jitless, --no-opt, ...) keeps it:
// nothing is switched. `--jitless` in particular must never meet `--turbofan` at run time.

import v8 from 'node:v8';

const OWN_CHOICE = /--(?:no-)?(?:jitless|opt|turbofan|sparkplug|always-sparkplug|max-opt)(?:[=\s]|$)/;

/**
 * CPU the whole process (every thread) uses in a busy second, at least. An idle sidecar uses ~1-3
 * ms a second (its timers, health checks, the stats hand-off); one request costs ~0.1-0.3 ms
 * here, so ~100 requests a second are busy.
 */
export const BUSY_CPU_MS = 20;
/** Busy seconds in a row that turn TurboFan on: more than a memory reducer's GC spans. */
export const BUSY_SECONDS = 3;
/** CPU in one second that turns TurboFan on at once: half a core, ~4× an idle memory reducer's second. */
export const SATURATED_CPU_MS = 500;

/** Milliseconds of the process's CPU (user + system, every thread) from reading `a` to reading `b` of process.cpuUsage(). */
export function cpuMsBetween(a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number {
  return (b.user - a.user + b.system - a.system) / 1000;
}

/** Whether the process was started with flags of its own for V8's compilers. */
export function compilersChosenByUser(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return OWN_CHOICE.test(`${execArgv.join(' ')} ${nodeOptions ?? ''}`);
}

let sparkplugOff = false;
let turbofanOff = false;

/** Start-up begins: V8 compiles nothing (unless the process chose its compilers itself). */
export function compilersOff(): void {
  if (sparkplugOff || turbofanOff || compilersChosenByUser(process.execArgv, process.env['NODE_OPTIONS'])) return;
  sparkplugOff = true;
  turbofanOff = true;
  v8.setFlagsFromString('--no-turbofan');
  v8.setFlagsFromString('--no-sparkplug');
}

/** Start-up is over: V8's baseline compiler (Sparkplug) compiles again. A no-op unless compilersOff() switched it off. */
export function baselineCompilerOn(): void {
  if (!sparkplugOff) return;
  sparkplugOff = false;
  v8.setFlagsFromString('--sparkplug');
}

/** V8's optimizing compiler (TurboFan) compiles again. A no-op unless compilersOff() switched it off. */
export function optimizingCompilerOn(): void {
  if (!turbofanOff) return;
  turbofanOff = false;
  v8.setFlagsFromString('--turbofan');
}

/** Both compilers on: every command but `run`, at once. */
export function compilersOn(): void {
  baselineCompilerOn();
  optimizingCompilerOn();
}

/** Whether TurboFan is still held off by compilersOff(). */
export function optimizingCompilerHeld(): boolean {
  return turbofanOff;
}

/**
 * Turns TurboFan on at the BUSY_SECONDS-th tick in a row that finds the process used BUSY_CPU_MS
 * or more of CPU since the tick before (ticks come once a second), or at the first that finds
 * SATURATED_CPU_MS. Reads process.cpuUsage(): all threads, so the workers' traffic of any kind
 * (HTTP, TCP, WebSocket) counts.
 */
export class OptimizerWhenBusy {
  private last: NodeJS.CpuUsage | null = null;
  private busySeconds = 0;

  /**
   * @param onBusy called once, when TurboFan comes on, with the CPU of the last second in ms.
   * @param held whether there is anything to turn on (tests replace it and cpuUsage).
   */
  constructor(
    private readonly onBusy: (cpuMs: number) => void,
    private readonly cpuUsage: () => NodeJS.CpuUsage = () => process.cpuUsage(),
    private readonly held: () => boolean = optimizingCompilerHeld,
  ) {}

  /** From now on, ticks count (the ready line): start-up's CPU is not "busy". A no-op when TurboFan is not held off. */
  arm(): void {
    if (this.held()) this.last = this.cpuUsage();
  }

  tick(): void {
    if (this.last === null) return;
    const now = this.cpuUsage();
    const cpuMs = cpuMsBetween(this.last, now);
    this.last = now;
    this.busySeconds = cpuMs < BUSY_CPU_MS ? 0 : this.busySeconds + 1;
    if (this.busySeconds < BUSY_SECONDS && cpuMs < SATURATED_CPU_MS) return;
    this.last = null;
    optimizingCompilerOn();
    this.onBusy(cpuMs);
  }
}

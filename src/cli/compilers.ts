// V8's compilers stay off while the sidecar starts and come on once it serves (main.ts turns
// them off before the command loads). Start-up runs once in every isolate (main, config check, each
// worker): ~150 modules' top-level code and node's ESM resolver. With the compilers on, the
// resolver grew hot enough for TurboFan (--trace-opt: getPathFromURLPosix, normalizeString, URL
// #updateContext), which paged in the compiler's own code (~3 MiB of node's binary), and
// Sparkplug kept baseline code for functions that never run again. Measured on a 1-worker strict
// sidecar, VmRSS 15 s after start: 63.8-64.3 MiB → 59.0-59.1 (RssFile 43.8 → 40.4), and the
// ready line ~25 ms later (~360 → ~385 ms).
//
// `run` turns them on with its ready line, before the first request that follows it, and every
// other command at once: the request path is compiled as it always was. Sparkplug off for a
// sidecar's whole life saved 1 MiB but doubled p99.9 at 1000 req/s (code that runs once a second
// stayed interpreted); that is why this is a start-up switch only.
//
// A process started with its own choice of these flags (node --jitless, --no-opt, ...) keeps it:
// nothing is switched. `--jitless` in particular must never meet `--turbofan` at run time.

import v8 from 'node:v8';

const OWN_CHOICE = /--(?:no-)?(?:jitless|opt|turbofan|sparkplug|always-sparkplug|max-opt)(?:[=\s]|$)/;

/** Whether the process was started with flags of its own for V8's compilers. */
export function compilersChosenByUser(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return OWN_CHOICE.test(`${execArgv.join(' ')} ${nodeOptions ?? ''}`);
}

let off = false;

/** Start-up begins: V8 compiles nothing (unless the process chose its compilers itself). */
export function compilersOff(): void {
  if (off || compilersChosenByUser(process.execArgv, process.env['NODE_OPTIONS'])) return;
  off = true;
  v8.setFlagsFromString('--no-turbofan');
  v8.setFlagsFromString('--no-sparkplug');
}

/** Start-up is over: V8 compiles hot code again (a no-op unless compilersOff() switched them off). */
export function compilersOn(): void {
  if (!off) return;
  off = false;
  v8.setFlagsFromString('--sparkplug');
  v8.setFlagsFromString('--turbofan');
}

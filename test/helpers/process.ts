// The built CLI (`dist/src/cli/main.js`) as a real child process: JSON log lines parsed as they
// arrive, bounded waits for a line or for the exit, SIGTERM then SIGKILL on stop. The sidecar
// launcher (`run`) and the signer (`ca serve`) are both built on this.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from './live.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface LogEntry {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface CliProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Raw stdout lines so far. */
  logs(): string[];
  /** Parsed JSON log lines so far (a line that is not JSON becomes `{ msg: line }`). */
  entries(): LogEntry[];
  stdout(): string;
  stderr(): string;
  /** Resolves with the first log entry that satisfies `pred`; rejects on exit or after `timeoutMs`. */
  waitForLog(pred: (e: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** Resolves with the exit code (null when killed by a signal); rejects after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<number | null>;
  exited(): boolean;
  /** SIGTERM, wait for the exit (SIGKILL after 15 s); resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `node [nodeArgs] dist/src/cli/main.js ...args`, behind `prefix` when given (`ip netns
 * exec NAME`: inside a network namespace, test/helpers/netns.ts); stopped by closeAll().
 * `stdoutFile`: the process writes its stdout to this file, read from there as it grows. For V8's
 * trace flags (--trace-opt, --trace-generalization), which print to the same stdout from every
 * thread with C stdio: node makes a stdout pipe non-blocking, and a trace printed while the pipe
 * is full is lost; a file never is.
 */
export function spawnCli(
  args: readonly string[],
  env: Record<string, string> = {},
  prefix: readonly string[] = [],
  nodeArgs: readonly string[] = [],
  stdoutFile?: string,
): CliProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run "npx tsc -p tsconfig.json" first`);
  const [cmd, ...cmdArgs] = [...prefix, process.execPath, ...nodeArgs, CLI, ...args];
  const outFd = stdoutFile === undefined ? null : openSync(stdoutFile, 'w+');
  const child = spawn(cmd!, cmdArgs, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', outFd ?? 'pipe', 'pipe'] });
  const lines: string[] = [];
  const entries: LogEntry[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  let exitCode: number | null | undefined;
  const exitWaiters: Array<(code: number | null) => void> = [];
  const logWaiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...logWaiters]) w();
  };

  const onStdout = (s: string): void => {
    stdout += s;
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(line);
      entries.push(logEntry(line));
    }
    wake();
  };
  // A file: read what was added every 20 ms, and the rest once the process has exited (this
  // 'close' listener runs before the one below that settles the waits).
  if (outFd === null) {
    child.stdout!.setEncoding('utf8').on('data', onStdout);
  } else {
    let at = 0;
    const chunk = Buffer.alloc(1 << 16);
    const decoder = new TextDecoder();
    const readFile = (): void => {
      for (let n; (n = readSync(outFd, chunk, 0, chunk.length, at)) > 0; at += n) onStdout(decoder.decode(chunk.subarray(0, n), { stream: true }));
    };
    const poll = setInterval(readFile, 20);
    child.on('close', () => {
      clearInterval(poll);
      readFile();
      closeSync(outFd);
    });
  }
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  // 'close', not 'exit': stdout has been read to the end.
  child.on('close', (code, signal) => {
    exitCode = signal !== null ? null : code;
    for (const w of exitWaiters.splice(0)) w(exitCode);
    wake();
  });

  const dump = (): string => `\nstderr:\n${stderr}\nstdout:\n${lines.join('\n')}`;
  const waitForLog = (pred: (e: LogEntry) => boolean, timeoutMs = 10_000): Promise<LogEntry> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = entries.find(pred);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (exitCode !== undefined) {
          done();
          reject(new Error(`process exited (code ${String(exitCode)}) before the expected log line${dump()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line${dump()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        logWaiters.delete(check);
      };
      logWaiters.add(check);
      check();
    });
  const exit = (timeoutMs = 15_000): Promise<number | null> => {
    if (exitCode !== undefined) return Promise.resolve(exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms${dump()}`)), timeoutMs);
      exitWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  };
  const stop = async (): Promise<number | null> => {
    if (exitCode !== undefined) return exitCode;
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.kill('SIGTERM');
    const code = await exit(20_000).catch(() => null);
    clearTimeout(kill);
    return code;
  };
  track({ close: stop });
  return {
    pid: child.pid!,
    child,
    logs: () => lines.slice(),
    entries: () => entries.slice(),
    stdout: () => stdout,
    stderr: () => stderr,
    waitForLog,
    exit,
    exited: () => exitCode !== undefined,
    stop,
  };
}

/**
 * A stdout line as a log entry: the JSON object of a log line, or `{msg: line}` for anything else.
 * A log line may come after text of V8's own that has no line end yet (`node --trace-opt` prints
 * `[marking 0x… ` and the rest of its line after other writes): then the object that ends the line is
 * the entry (CI, 2026-12-07: the compilers test missed its log line behind such a prefix).
 */
export function logEntry(line: string): LogEntry {
  for (let at = line.startsWith('{') ? 0 : line.indexOf('{"'); at >= 0; at = line.indexOf('{"', at + 1)) {
    try {
      const v: unknown = JSON.parse(line.slice(at));
      if (typeof v === 'object' && v !== null) return v as LogEntry;
    } catch {
      // not one whole object from here to the end: a later '{"' may start one
    }
  }
  return { msg: line };
}

// Child processes of the harness: start one, wait until it is ready (a stdout/stderr line
// matching a pattern, or a TCP port that accepts), stop it (SIGTERM, then SIGKILL after a
// grace period). Every process started here is remembered and killed if the harness exits, so
// a failed run leaves nothing behind.

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

export interface StartOptions {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Ready when a line of stdout/stderr matches. */
  readonly readyLine?: RegExp;
  /** Ready when 127.0.0.1:<port> accepts a connection. */
  readonly readyPort?: number;
  readonly timeoutMs?: number;
}

export interface Started {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** The last ~64 KiB of stdout+stderr. */
  output(): string;
  /** The first line that matched readyLine (null when ready came from the port). */
  readonly readyLineText: string | null;
  /** SIGTERM, SIGKILL after graceMs; resolves with the exit code (or the signal's name). */
  stop(graceMs?: number): Promise<number | string | null>;
}

const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Resolves true when 127.0.0.1:port accepts a TCP connection. */
export function portAccepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startProcess(opts: StartOptions): Promise<Started> {
  hookExit();
  const child = spawn(opts.cmd, [...opts.args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let buf = '';
  let partial = '';
  let readyLineText: string | null = null;
  let onLine: ((line: string) => void) | null = null;
  const onData = (d: string): void => {
    buf += d;
    if (buf.length > 65536) buf = buf.slice(-65536);
    partial += d;
    let i: number;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      onLine?.(line);
    }
    if (partial.length > 65536) partial = '';
  };
  child.stdout?.setEncoding('utf8').on('data', onData);
  child.stderr?.setEncoding('utf8').on('data', onData);
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal);
    });
    child.once('error', () => {
      live.delete(child);
      resolve('spawn-error');
    });
  });

  const timeoutMs = opts.timeoutMs ?? 15_000;
  const ready = new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${opts.name}: not ready after ${timeoutMs} ms`)), timeoutMs);
    const done = (): void => {
      clearTimeout(deadline);
      resolve();
    };
    void exited.then((code) => {
      clearTimeout(deadline);
      reject(new Error(`${opts.name}: exited (${String(code)}) before ready`));
    });
    if (opts.readyLine !== undefined) {
      const re = opts.readyLine;
      onLine = (line) => {
        if (readyLineText === null && re.test(line)) {
          readyLineText = line;
          done();
        }
      };
    } else if (opts.readyPort !== undefined) {
      const port = opts.readyPort;
      const poll = async (): Promise<void> => {
        while (child.exitCode === null && child.signalCode === null) {
          if (await portAccepts(port)) {
            done();
            return;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      void poll();
    } else {
      done();
    }
  });

  const started: Started = {
    name: opts.name,
    pid: child.pid ?? -1,
    child,
    output: () => buf,
    get readyLineText() {
      return readyLineText;
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  try {
    await ready;
  } catch (e) {
    await started.stop(1000);
    const tail = buf.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${(e as Error).message}${tail ? `\n--- output ---\n${tail}` : ''}`);
  }
  return started;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

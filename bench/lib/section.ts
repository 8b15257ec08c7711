// What the self-contained protocol sections of `npm run bench` (WebSocket, TCP) share: the set of
// configs that started (or why one was skipped), each with the pids whose CPU it is charged, the
// two-sidecar mTLS pair, the per-round rotation of the order, running a load tool to its end, and
// the runs that failed.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Started } from './proc.js';
import { initBenchCa, runOutrigger } from './targets.js';

/** A config that answered its probe: where load goes, and the process trees its CPU is read from. */
export interface SectionTarget {
  readonly name: string;
  readonly description: string;
  /** The 127.0.0.1 port load goes to. */
  readonly port: number;
  /** Empty for the upstream alone (its CPU column is 0 by definition). */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

export interface Skipped {
  readonly name: string;
  readonly reason: string;
}

/** A measured run that failed (its load tool exited non-zero): left out of the medians, listed under the table. */
export interface FailedRun {
  readonly config: string;
  readonly round: number;
  readonly reason: string;
}

/** The configs of one section as they start: each either joins `started` or lands in `skipped` with its reason. */
export class SectionTargets {
  readonly started: SectionTarget[] = [];
  readonly skipped: Skipped[] = [];

  /** Runs `start`; a throw skips `name` with the error's message. */
  async attempt(name: string, start: () => Promise<void>): Promise<void> {
    try {
      await start();
    } catch (e) {
      this.skipped.push({ name, reason: (e as Error).message });
    }
  }

  /** Adds a config whose processes are up, once `probe` (null = fine) says it carries the protocol; else stops them and skips it. */
  async add(name: string, description: string, port: number, procs: readonly Started[], probe: (port: number) => Promise<string | null>): Promise<void> {
    const stop = async (): Promise<void> => {
      for (const p of [...procs].reverse()) await p.stop();
    };
    const problem = await probe(port);
    if (problem !== null) {
      await stop();
      this.skipped.push({ name, reason: problem });
      return;
    }
    this.started.push({ name, description, port, pids: procs.map((p) => p.pid), stop });
  }

  async stopAll(): Promise<void> {
    for (const t of this.started) await t.stop();
  }
}

/** Runs one measurement; a throw is logged and recorded in `failed` instead of ending the section (null then). */
export async function recordFailure<T>(
  failed: FailedRun[],
  config: string,
  round: number,
  log: (s: string) => void,
  measure: () => Promise<T>,
): Promise<T | null> {
  try {
    return await measure();
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0] ?? '';
    log(`FAILED ${config} in round ${round}: ${reason}`);
    failed.push({ config, round, reason });
    return null;
  }
}

/** The configs in round `round`'s order: each round starts with a different one, so drift over the run spreads over all of them. */
export function rotated<T>(targets: readonly T[], round: number): T[] {
  const offset = targets.length === 0 ? 0 : (round - 1) % targets.length;
  return [...targets.slice(offset), ...targets.slice(0, offset)];
}

/**
 * The two-sidecar mTLS pair: an embedded CA in `dir/ca`, the server sidecar from
 * `serverYaml(caDir)`, then the client sidecar from `clientYaml(caDir)`; both stopped if the
 * second does not start. Returns [server, client].
 */
export async function startMtlsPair(
  cli: string,
  dir: string,
  label: string,
  serverYaml: (caDir: string) => string,
  clientYaml: (caDir: string) => string,
): Promise<[Started, Started]> {
  const caDir = join(dir, 'ca');
  const bad = initBenchCa(cli, caDir);
  if (bad !== null) throw new Error(bad);
  writeFileSync(join(dir, `${label}-server.yaml`), serverYaml(caDir));
  writeFileSync(join(dir, `${label}-client.yaml`), clientYaml(caDir));
  const server = await runOutrigger(`${label}/server`, cli, join(dir, `${label}-server.yaml`), dir);
  const client = await runOutrigger(`${label}/client`, cli, join(dir, `${label}-client.yaml`), dir).catch(async (e: unknown) => {
    await server.stop();
    throw e;
  });
  return [server, client];
}

/** Runs a command to its end; its stdout (rejects with the tail of its output on a non-zero exit or after `timeoutMs`). */
export function runToEnd(cmd: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${String(code)}: ${(err || out).trim().slice(-300)}`));
    });
  });
}

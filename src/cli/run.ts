// `outrigger run`: loads the config, starts the supervisor (which spawns the workers), prints the
// `ready` line, and on SIGTERM/SIGINT drains in-flight requests and exits 0.

import type { CompileOptions } from '../config/load.js';
import { formatProblems, loadConfigFile } from '../config/load.js';
import { PortInUseError, Supervisor } from '../workers/supervisor.js';
import { createLogger } from './log.js';

export interface RunOptions {
  readonly file: string;
  readonly logLevel: string;
  readonly compile: CompileOptions;
}

export async function runSidecar(opts: RunOptions): Promise<number> {
  const log = createLogger(opts.logLevel);
  const loaded = await loadConfigFile(opts.file, opts.compile);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  for (const w of loaded.warnings) log.warn({ path: w.path, line: w.line }, w.message);

  const supervisor = new Supervisor({ log, enableTestHooks: opts.compile.enableTestHooks });
  let snapshot;
  try {
    snapshot = await supervisor.start(loaded.snapshot);
  } catch (e) {
    if (e instanceof PortInUseError) {
      process.stderr.write(`outrigger: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  log.info(
    {
      version: snapshot.version,
      workers: snapshot.node.workers,
      listeners: supervisor.listeners.map((l) => ({ name: l.name, address: `${l.host}:${l.port}` })),
    },
    'ready',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, drain_timeout_ms: snapshot.node.drainTimeoutMs }, 'draining');
      void supervisor.drain(snapshot.node.drainTimeoutMs).then((unfinished) => {
        log.info({ unfinished }, 'stopped');
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

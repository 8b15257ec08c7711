// Signals and drain: SIGTERM, SIGINT and POST /drain (or /shutdown) start one drain: stop
// watching and checking, deregister from etcd (other sidecars stop picking this one while it
// still accepts), let in-flight requests finish on every worker (bounded by
// node.drain_timeout_ms), close the admin server, and resolve the exit code (0).

import type { Logger } from 'pino';

/** What a drain does, in order: stop the main-thread parts, drain the workers, then close what is left. */
export interface DrainSteps {
  /** The drain timeout now (the running config's node.drain_timeout_ms). */
  timeoutMs(): number;
  /** Stops reloads, health checks, outlier detection and certificate rotation. */
  stopBackground(): void;
  /** Removes this sidecar's etcd registration and mesh status key (bounded; resolves at once when there is none). */
  deregister(): Promise<void>;
  /** Stops accepting on every worker and waits for in-flight requests; resolves to those left unfinished. */
  drainWorkers(timeoutMs: number): Promise<number>;
  /** After the workers: the admin server. */
  closeRest(): Promise<void>;
}

export class Shutdown {
  private draining = false;
  private finish: (code: number) => void = () => {};
  /** Resolves with the process exit code once a drain has finished. */
  readonly done = new Promise<number>((resolve) => (this.finish = resolve));

  constructor(
    private readonly steps: DrainSteps,
    private readonly log: Logger,
  ) {}

  /** From now on SIGTERM and SIGINT drain too. */
  handleSignals(): void {
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGINT', () => this.stop('SIGINT'));
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Starts the drain (once; later calls do nothing). */
  stop(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    const timeout = this.steps.timeoutMs();
    this.log.info({ reason, drain_timeout_ms: timeout }, 'draining');
    this.steps.stopBackground();
    void this.steps
      .deregister()
      .then(() => this.steps.drainWorkers(timeout))
      .then(async (unfinished) => {
        await this.steps.closeRest();
        this.log.info({ unfinished }, 'stopped');
        this.finish(0);
      });
  }
}

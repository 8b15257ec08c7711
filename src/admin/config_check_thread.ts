// The sidecar's config checks (config_check.ts) in a worker thread, so that the config layer
// (zod, yaml, js-yaml, the schema) does not stay loaded on the main thread. The thread starts
// with a check and ends IDLE_MS after the last answer (or at end(): the start-up check's thread
// ends before the workers start): a burst of reloads or PUT /config shares one thread (a start
// costs ~0.1-1 s of module loading), an idle sidecar has none. The main thread
// keeps only the plain answers, their config parts frozen again (a structured clone is not).
import { Worker } from 'node:worker_threads';
import { deepFreeze } from '../config/freeze.js';
import type { CheckConfig, CheckedConfig, CheckRequest } from './config_check.js';

const CHECK_WORKER_URL = new URL('./config_check_worker.js', import.meta.url);
/** How long the thread outlives its last answer. */
const IDLE_MS = 2000;

type Answer = { readonly id: number; readonly answer: CheckedConfig } | { readonly id: number; readonly error: string };

interface Waiting {
  resolve(answer: CheckedConfig): void;
  reject(e: Error): void;
}

export class ConfigCheckThread {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  /** `workerUrl`: the thread's module (a test hands in a stand-in). */
  constructor(private readonly workerUrl: URL = CHECK_WORKER_URL) {}

  readonly check: CheckConfig = (request: CheckRequest) =>
    new Promise((resolve, reject) => {
      if (this.idleTimer !== null) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      const id = this.nextId++;
      this.waiting.set(id, { resolve, reject });
      (this.worker ?? this.start()).postMessage({ id, request });
    });

  private start(): Worker {
    const worker = new Worker(this.workerUrl);
    // A check in flight does not keep the process alive; the admin server and the workers do.
    worker.unref();
    worker.on('message', (m: Answer) => this.answer(m));
    worker.on('error', (e) => this.lost(worker, e));
    worker.on('exit', (code) => this.lost(worker, new Error(`config check: the worker thread ended (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private answer(m: Answer): void {
    const waiting = this.waiting.get(m.id);
    this.waiting.delete(m.id);
    if ('answer' in m) waiting?.resolve(frozen(m.answer));
    else waiting?.reject(new Error(m.error));
    if (this.waiting.size === 0) this.endWhenIdle();
  }

  /** Ends the thread now, without waiting IDLE_MS (call with no check in flight); the next check starts a new one. */
  async end(): Promise<void> {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }

  private endWhenIdle(): void {
    this.idleTimer = setTimeout(() => void this.end(), IDLE_MS);
    this.idleTimer.unref();
  }

  /** The thread failed or ended unasked: its waiting checks fail; the next check starts a new one. */
  private lost(worker: Worker, e: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    for (const waiting of this.waiting.values()) waiting.reject(e);
    this.waiting.clear();
  }
}

/** The answer with what compile.ts froze frozen again: the snapshot, the admin spec, the source and the etcd specs. */
function frozen(answer: CheckedConfig): CheckedConfig {
  if (!answer.ok) return answer;
  for (const part of [answer.snapshot, answer.admin, answer.source, answer.etcd, answer.registration]) deepFreeze(part);
  return answer;
}

// Messages between the supervisor (main thread) and worker threads. Plain data only.

import type { Snapshot } from '../config/types.js';

export interface WorkerInit {
  readonly workerId: number;
  readonly enableTestHooks: boolean;
}

export type ToWorker =
  | { readonly type: 'apply'; readonly snapshot: Snapshot }
  | { readonly type: 'drain'; readonly timeoutMs: number }
  | { readonly type: 'stop' };

export interface BoundListener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export type FromWorker =
  | { readonly type: 'applied'; readonly version: number; readonly listeners: readonly BoundListener[] }
  | { readonly type: 'apply_failed'; readonly version: number; readonly error: string }
  | { readonly type: 'drained'; readonly unfinished: number }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly msg: string; readonly fields?: Record<string, unknown> }
  | { readonly type: 'stats'; readonly delta: unknown };

// Messages between the supervisor (main thread) and worker threads. Plain data only.

import type { ConfigDelta } from '../config/delta.js';
import type { Outcome } from '../health/outlier.js';
import type { StatsDelta } from '../stats/delta.js';
import type { TlsMaterial } from '../tls/material.js';
import type { SpanRecord } from '../tracing/span_buffer.js';

/**
 * How often a worker whose stall limit (node.worker_stall_ms) is `stallMs` tells the supervisor
 * its event loop runs: a fifth of the limit, at most once a second (the default 5 s limit: once a
 * second, with the stats; every wake-up of an idle thread costs CPU), at least every 20 ms. A
 * fixed 250 ms once made a limit under 250 ms read every healthy worker as stuck. The supervisor
 * does not poll: each worker's watchdog is a deadline `stallMs` after its last message.
 */
export function heartbeatMs(stallMs: number): number {
  return Math.min(1000, Math.max(20, Math.floor(stallMs / 5)));
}

export interface WorkerInit {
  readonly workerId: number;
  readonly enableTestHooks: boolean;
  /** Seed for TLS session ticket keys, the same in every worker. */
  readonly ticketKeySeed: Uint8Array;
}

export type ToWorker =
  /** Move from the config the worker runs to the delta's version (delta.ts, compiled for this worker). */
  | { readonly type: 'apply'; readonly delta: ConfigDelta }
  | { readonly type: 'drain'; readonly timeoutMs: number }
  | { readonly type: 'inspect'; readonly id: number }
  | { readonly type: 'secrets'; readonly material: TlsMaterial }
  | { readonly type: 'endpoint_states'; readonly states: readonly EndpointState[] }
  | { readonly type: 'stop' };

/** One worker's view of a cluster, for GET /clusters (summed across workers by the supervisor). */
export interface ClusterView {
  readonly name: string;
  readonly lb: string;
  readonly active: number;
  readonly pending: number;
  readonly endpoints: ReadonlyArray<{
    readonly address: string;
    readonly weight: number;
    readonly healthy: boolean;
    readonly ejected: boolean;
    /** Workers that took it out of balancing after a failed connect, until a probe reaches it (0 or 1 per worker, summed). */
    readonly unreachable_workers: number;
    readonly active: number;
    readonly connections_open: number;
    readonly connections_idle: number;
    readonly connections_opened_total: number;
    /** Full TLS handshakes and resumed TLS sessions on new connections (mTLS clusters). */
    readonly tls_handshakes_total: number;
    readonly tls_resumed_total: number;
    /** pool.pipeline_plaintext: workers where pipelining to this app is stopped for now (0 or 1 per worker, summed), and how often it stopped. */
    readonly pipelining_off_workers: number;
    readonly pipelining_stops_total: number;
    /** GETs and HEADs sent again because the response ahead of them on a pipelined connection (the mTLS hop, pipeline_plaintext) did not end in time. */
    readonly pipelined_moved_total: number;
  }>;
  readonly retries_total: number;
  readonly retry_budget_exhausted_total: number;
  readonly overflow_total: number;
  readonly panicking: boolean;
}

/** The main thread's verdict on one endpoint (active health checks, outlier ejection). */
export interface EndpointState {
  readonly cluster: string;
  readonly address: string;
  readonly healthy: boolean;
  readonly ejected: boolean;
}

/** [cluster, address, outcome]: how one try went (TryOutcome's names, the outlier detector's Outcome). */
export type OutcomeEvent = readonly [string, string, Outcome];

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
  /** `spans`: the sampled requests of the interval (tracing), and the spans the worker's buffer dropped. */
  | { readonly type: 'stats'; readonly delta: StatsDelta; readonly spans?: { readonly records: readonly SpanRecord[]; readonly dropped: number } }
  | { readonly type: 'heartbeat' }
  | { readonly type: 'outcomes'; readonly events: readonly OutcomeEvent[] }
  | {
      readonly type: 'inspect_result';
      readonly id: number;
      readonly version: number;
      readonly clusters: readonly ClusterView[];
      readonly listeners: readonly ListenerView[];
    };

/** One worker's security counters of a listener (summed across workers by the supervisor). */
export interface ListenerView {
  readonly name: string;
  /** Requests allowed per authorization rule (by index), and denied; null without rules. */
  readonly authz: { readonly allowed: readonly number[]; readonly denied: number } | null;
  /** Inbound TLS handshakes refused (no, untrusted, expired or not-yet-valid client certificate). */
  readonly handshake_failures: number;
}

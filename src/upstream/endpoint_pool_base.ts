// What the HTTP/1.1 pool (pool.ts) and the HTTP/2 pool (h2_pool.ts) of one endpoint share: where
// they connect, the mTLS material a new connection is made with (and how to tell a connection made
// with material that has since been rotated), the cluster's wait queue, the once-a-second sweep on
// the ticker and the counters. Each subclass owns its connections (sessions) and what a sweep does.

import type tls from 'node:tls';
import type { PoolSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { clientTlsOptions, rememberSessions } from '../tls/contexts.js';
import { materialKey, type TlsMaterial } from '../tls/material.js';
import type { UpstreamRequest } from './channel.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';
import { WaitQueue, type PendingBudget } from './wait_queue.js';

export interface PoolCounters {
  connectionsOpened: number;
  /** Full TLS handshakes and resumed sessions (mTLS clusters). */
  tlsHandshakes: number;
  tlsResumed: number;
  /** Times pipelining to a plaintext app stopped for a while because the app kept closing pipelined connections (pool.ts). */
  pipeliningStops: number;
  /** GETs and HEADs sent again because the response ahead of them on a pipelined connection did not end in time (pipeline.ts). */
  pipelinedMoved: number;
}

/** mTLS to an endpoint: where the current material comes from and whom the server must be. */
export interface PoolTls {
  material(): TlsMaterial | null;
  readonly identities: readonly string[];
}

/** How one new mTLS connection is made: its options, the material's key, and where its session tickets go. */
export interface ConnectTls {
  readonly options: tls.ConnectionOptions;
  readonly materialKey: string;
  /** Keeps the TLS session tickets the socket receives, for resumption by the next connection. */
  remember(socket: tls.TLSSocket): void;
}

const SWEEP_MS = 1000;

/** The error of a request that cannot go out because no certificate is loaded yet. */
export function noCertificate(): ProxyError {
  return new ProxyError('upstream_tls_failed', 'no certificate is loaded for mTLS to this cluster');
}

export abstract class EndpointPoolBase implements Timed {
  protected readonly waiters: WaitQueue;
  /** Takes no new requests; closes when idle (its endpoint left the config). */
  draining = false;
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  readonly counters: PoolCounters = { connectionsOpened: 0, tlsHandshakes: 0, tlsResumed: 0, pipeliningStops: 0, pipelinedMoved: 0 };

  /** Pipelining to a plaintext app is stopped for now (pool.ts); never for HTTP/2 sessions. */
  get pipeliningOff(): boolean {
    return false;
  }

  constructor(
    readonly host: string,
    readonly port: number,
    public spec: PoolSpec,
    budget: PendingBudget,
    protected readonly ticker: Ticker,
    public tls: PoolTls | null = null,
  ) {
    this.waiters = new WaitQueue(budget);
  }

  /** The sweep: idle timeouts and whatever else the subclass does once a second. */
  abstract onDeadline(now: number): void;

  /** Removes a waiting request (its client went away). */
  cancel(req: UpstreamRequest): void {
    this.waiters.remove(req);
  }

  /**
   * How the next connection is made: null for plaintext, a ConnectTls with the current material,
   * or undefined when mTLS is configured but no certificate is loaded (the request must fail).
   * Public for the dedicated (unpooled) connection of an upgraded request (dataplane/upgrade.ts).
   */
  connectTls(): ConnectTls | null | undefined {
    const t = this.tls;
    if (t === null) return null;
    const m = t.material();
    if (m === null) return undefined;
    const endpoint = `${this.host}:${this.port}`;
    return {
      options: clientTlsOptions(m, t.identities, endpoint),
      materialKey: materialKey(m),
      remember: (socket) => rememberSessions(socket, m, t.identities, endpoint),
    };
  }

  /** A connection made with `key` finished its handshake: a full one, or a resumed session. */
  protected countHandshake(key: string | null, resumed: boolean): void {
    if (key === null) return;
    if (resumed) this.counters.tlsResumed++;
    else this.counters.tlsHandshakes++;
  }

  /** Whether a connection made with `key` uses material that has since been replaced (rotation). */
  protected isStale(key: string | null): boolean {
    if (key === null || this.tls === null) return false;
    const m = this.tls.material();
    return m !== null && materialKey(m) !== key;
  }

  /** Arms the once-a-second sweep unless it is armed. */
  protected scheduleSweep(): void {
    if (this.deadline === 0) {
      this.deadline = this.ticker.fresh() + SWEEP_MS;
      this.ticker.add(this);
    }
  }
}

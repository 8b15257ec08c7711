// Per-worker, per-endpoint pool of persistent upstream connections. Requests take an idle
// connection (most recently used first, so the warm ones stay warm), open a new one while under
// `connectionsPerWorker`, or wait in the cluster's bounded queue (503 overflow beyond it).
// A draining pool (its endpoint left the config) takes no new requests and closes when idle.

import { ProxyError } from '../errors.js';
import type { PoolSpec } from '../config/types.js';
import type { UpstreamTarget } from './channel.js';
import { UpstreamConnection, type ConnectionOwner, type UpstreamRequest } from './connection.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';
import { clientTlsOptions } from '../tls/contexts.js';
import { materialKey, type TlsMaterial } from '../tls/material.js';
import { WaitQueue, type PendingBudget } from './wait_queue.js';

export type { PendingBudget } from './wait_queue.js';

export interface PoolCounters {
  connectionsOpened: number;
  /** Full TLS handshakes and resumed sessions (mTLS clusters). */
  tlsHandshakes: number;
  tlsResumed: number;
}

/** mTLS to an endpoint: where the current material comes from and whom the server must be. */
export interface PoolTls {
  material(): TlsMaterial | null;
  readonly identities: readonly string[];
}

/** What a cluster holds per endpoint: HTTP/1 connections (EndpointPool) or HTTP/2 sessions (h2_pool.ts). */
export interface EndpointTarget extends UpstreamTarget {
  spec: PoolSpec;
  tls: PoolTls | null;
  /** Takes no new connections; closes when idle (its endpoint left the config). */
  readonly draining: boolean;
  /** Open or connecting connections (sessions). */
  readonly open: number;
  readonly idleCount: number;
  readonly counters: PoolCounters;
  drain(): void;
  close(): void;
}

const SWEEP_MS = 1000;
/** After a certificate rotation, at most one old connection per pool is replaced per this many ms. */
const REPLACE_EVERY_MS = 100;

export class EndpointPool implements ConnectionOwner, Timed, EndpointTarget {
  private readonly idle: UpstreamConnection[] = [];
  private readonly waiters: WaitQueue;
  /** Open or connecting connections. */
  open = 0;
  draining = false;
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  /** Monotonic ms of the last replacement (-Infinity: none yet; the clock may start near 0). */
  private lastReplaceMs = -Infinity;
  readonly counters: PoolCounters = { connectionsOpened: 0, tlsHandshakes: 0, tlsResumed: 0 };

  constructor(
    readonly host: string,
    readonly port: number,
    public spec: PoolSpec,
    budget: PendingBudget,
    private readonly ticker: Ticker,
    public tls: PoolTls | null = null,
  ) {
    this.waiters = new WaitQueue(budget);
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Sends `req` over a pooled connection, now or when one frees up. */
  dispatch(req: UpstreamRequest): void {
    const conn = this.idle.pop();
    if (conn !== undefined) {
      conn.assign(req);
      return;
    }
    if (this.open < this.spec.connectionsPerWorker) {
      const conn = this.connect();
      if (conn === null) {
        req.onUpstreamError(new ProxyError('upstream_tls_failed', 'no certificate is loaded for mTLS to this cluster'), null);
        return;
      }
      conn.assign(req);
      return;
    }
    if (this.waiters.full) {
      req.onUpstreamError(this.waiters.overflow(`a connection to ${this.host}:${this.port}`), null);
      return;
    }
    this.waiters.push(req);
  }

  /** Removes a waiting request (its client went away). */
  cancel(req: UpstreamRequest): void {
    this.waiters.remove(req);
  }

  /** No new requests; close idle connections now and busy ones when they finish. */
  drain(): void {
    this.draining = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
  }

  /** Closes everything at once (worker shutdown). */
  close(): void {
    this.draining = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
    this.ticker.delete(this);
  }

  private connect(): UpstreamConnection | null {
    const t = this.tls;
    let conn: UpstreamConnection;
    if (t === null) {
      conn = new UpstreamConnection(this, this.host, this.port, this.ticker, this.spec.connectTimeoutMs);
    } else {
      const m = t.material();
      if (m === null) return null;
      const endpoint = `${this.host}:${this.port}`;
      conn = new UpstreamConnection(
        this,
        this.host,
        this.port,
        this.ticker,
        this.spec.connectTimeoutMs,
        clientTlsOptions(m, t.identities, endpoint),
        materialKey(m),
      );
      conn.rememberSessions(m, t.identities, endpoint);
    }
    this.open++;
    this.counters.connectionsOpened++;
    this.scheduleSweep();
    return conn;
  }

  onConnected(conn: UpstreamConnection): void {
    if (conn.materialKey !== null) {
      if (conn.resumed) this.counters.tlsResumed++;
      else this.counters.tlsHandshakes++;
    }
  }

  /** Whether a connection was made with material that has since been replaced (rotation). */
  private stale(conn: UpstreamConnection): boolean {
    if (conn.materialKey === null || this.tls === null) return false;
    const m = this.tls.material();
    return m !== null && materialKey(m) !== conn.materialKey;
  }

  /** Whether a connection made with replaced material may be closed now (one per REPLACE_EVERY_MS). */
  private mayReplace(): boolean {
    const now = this.ticker.fresh();
    if (now - this.lastReplaceMs < REPLACE_EVERY_MS) return false;
    this.lastReplaceMs = now;
    return true;
  }

  onReusable(conn: UpstreamConnection): void {
    if (this.stale(conn) && this.mayReplace()) {
      // Rotation: old connections are replaced gradually, one at a time as they come free,
      // so that the pool never reconnects all at once (and later ones can resume a session).
      conn.destroy();
      return;
    }
    const next = this.waiters.shift();
    if (next !== undefined) {
      conn.assign(next);
      return;
    }
    if (this.draining) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
  }

  onClosed(conn: UpstreamConnection): void {
    this.open--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A waiter that was counting on this connection gets a fresh one (a draining pool too:
    // requests queued before the endpoint left the config are still answered).
    if (this.waiters.length > 0 && this.open < this.spec.connectionsPerWorker) {
      const next = this.waiters.shift()!;
      const fresh = this.connect();
      if (fresh === null) next.onUpstreamError(new ProxyError('upstream_tls_failed', 'no certificate is loaded for mTLS to this cluster'), null);
      else fresh.assign(next);
    }
  }

  /** Idle timeout sweep, once a second while the pool has connections. */
  onDeadline(now: number): void {
    const limit = now - this.spec.idleTimeoutMs;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const conn = this.idle[i]!;
      if (conn.lastUsed <= limit) conn.destroy(); // onClosed removes it from `idle`
    }
    // An idle pool still moves off replaced material, one connection per sweep.
    const old = this.idle.find((c) => this.stale(c));
    if (old !== undefined) old.destroy();
    this.deadline = 0;
    if (this.open > 0) this.scheduleSweep();
  }

  private scheduleSweep(): void {
    if (this.deadline === 0) {
      this.deadline = this.ticker.fresh() + SWEEP_MS;
      this.ticker.add(this);
    }
  }
}

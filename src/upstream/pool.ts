// Per-worker, per-endpoint pool of persistent upstream connections. Requests take an idle
// connection (most recently used first, so the warm ones stay warm), open a new one while under
// `connectionsPerWorker`, or wait in the cluster's bounded queue (503 overflow beyond it).
// To an outrigger sidecar that pipelines (mTLS, pipeline.ts) a request may instead join a connection
// whose write of this loop turn is still open (it costs no write of its own): first, once this turn
// has carried BATCH_FROM requests to the endpoint (a busy sidecar, where batching saves the most);
// else only when no connection is idle. At the connection limit a request shares the busy connection
// with the fewest in flight whose oldest response is not stalled, before it waits. A request behind
// another waits for its answer (head of line), so at moderate rates, one request per turn, none does;
// and a write carries no more requests than the recent share of slow responses allows (StallClock).
// To a plaintext app (pool.pipeline_plaintext: by default an endpoint on loopback, the app beside
// the sidecar) the same holds for GETs and HEADs without a body; any other request takes an idle
// or new connection (or waits) and goes alone. An app that keeps closing pipelined connections with
// requests written behind others unanswered (one that answers HTTP/1.0-style, or a uWS.js app that
// answers asynchronously), or that leaves them unanswered before it ever answered one (it reads
// only the first request of a read), gets no pipelining for a while: those requests are sent
// again alone, and each such connection costs a connection or 100 ms.
// A draining pool (its endpoint left the config) takes no new requests and closes when idle.

import { isLoopbackHost } from '../config/address.js';
import type { PoolSpec } from '../config/types.js';
import type { UpstreamTarget } from './channel.js';
import { UpstreamConnection, type ConnectionOwner, type UpstreamRequest } from './connection.js';
import { EndpointPoolBase, noCertificate, type ConnectTls, type PoolCounters, type PoolTls } from './endpoint_pool_base.js';
import { StallClock } from './pipeline.js';

export type { PendingBudget } from './wait_queue.js';
export type { PoolCounters, PoolTls } from './endpoint_pool_base.js';

/** What a cluster holds per endpoint: HTTP/1 connections (EndpointPool) or HTTP/2 sessions (h2_pool.ts). */
export interface EndpointTarget extends UpstreamTarget {
  readonly host: string;
  readonly port: number;
  spec: PoolSpec;
  tls: PoolTls | null;
  /** Takes no new connections; closes when idle (its endpoint left the config). */
  readonly draining: boolean;
  /** Open or connecting connections (sessions). */
  readonly open: number;
  readonly idleCount: number;
  readonly counters: PoolCounters;
  /** Pipelining to a plaintext app is stopped for now (the app kept closing pipelined connections); false otherwise. */
  readonly pipeliningOff: boolean;
  /** How a new connection to this endpoint is made (endpoint_pool_base.ts): plaintext, mTLS, or undefined when no certificate is loaded. */
  connectTls(): ConnectTls | null | undefined;
  drain(): void;
  close(): void;
}

/**
 * After this many requests to the endpoint in one loop turn, the next ones join the turn's open
 * write before they take an idle connection. Measured on the mTLS pair (bench/compare, wrk -c50; and
 * 1 request in 100 taking 500 ms at 1000 req/s), CPU/request and fast p99 against pipeline_depth 1:
 * joining first always 0.64x and 3.5x; idle first 1.0-1.1x and 0.4-1.6x; this 0.70x and 0.94x.
 */
const BATCH_FROM = 4;

/**
 * Pipelined connections to a plaintext app closed in a row with requests written behind others
 * unanswered, and none of those answered in between, before pipelining to it stops for a while. An
 * app that answers some pipelined requests and closes now and then (a max-requests-per-connection
 * limit) never reaches it.
 */
const LOSSES_TO_STOP = 3;
/** How long pipelining to such an app stays stopped; then it is offered again (the app may have been fixed or replaced). */
const PIPELINING_OFF_MS = 60_000;

/** After a certificate rotation, at most one old connection per pool is replaced per this many ms. */
const REPLACE_EVERY_MS = 100;

export class EndpointPool extends EndpointPoolBase implements ConnectionOwner, EndpointTarget {
  private readonly idle: UpstreamConnection[] = [];
  /** Open connections that offered pipelining and did not turn it down (connecting or pipelined). */
  private readonly pipelining: UpstreamConnection[] = [];
  /** The last connection's server turned pipelining down: do not count on a connecting one for more requests. */
  private peerRefusedPipelining = false;
  /** Head-of-line: when a pipelined connection's oldest response counts as stalled. */
  private readonly stall = new StallClock();
  /** Requests dispatched in this loop turn (counted while the pool pipelines; 0 again at the turn's end). */
  private turnRequests = 0;
  private readonly endTurn = (): void => {
    this.turnRequests = 0;
  };
  /** Open or connecting connections. */
  open = 0;
  /** Pipelined connections to the app lost in a row (onPipelineLost; 0 again when one answers behind another). */
  private lostInARow = 0;
  /** The app has answered a request written behind another since pipelining to it (re)started (pipeline.ts reads it). */
  pipeliningProven = false;
  /** Until when (ticker clock) pipelining to the app is stopped; 0: not stopped. */
  private pipeliningOffUntil = 0;
  /** Monotonic ms of the last replacement (-Infinity: none yet; the clock may start near 0). */
  private lastReplaceMs = -Infinity;
  /** The endpoint is on 127.0.0.0/8 or ::1 (pool.pipeline_plaintext: loopback). */
  private readonly loopback = isLoopbackHost(this.host);

  get idleCount(): number {
    return this.idle.length;
  }

  /** Sends `req` over a pooled connection, now or when one frees up. */
  dispatch(req: UpstreamRequest): void {
    // To an outrigger sidecar any request may share a connection (net/alpn.ts); to a plaintext app only
    // a GET or HEAD without a body, and any other goes alone on an idle or new connection. While such
    // a request waits, nothing joins a pipeline: the connections come idle in turn, and it gets one.
    const shares = this.pipelining.length > 0 && !this.pipeliningStopped() && !this.loneWaiting;
    // Only a connection to a plaintext app refuses a request that goes alone (leastLoaded): the hop never asks.
    const alone = shares && this.toApp && !req.pipelinable;
    const busyTurn = shares && this.countTurn() > BATCH_FROM;
    const early = busyTurn ? this.leastLoaded(true, alone) : null;
    if (early !== null) {
      early.assign(req);
      return;
    }
    const conn = this.idle.pop();
    if (conn !== undefined) {
      conn.assign(req);
      return;
    }
    const batched = shares && !busyTurn ? this.leastLoaded(true, alone) : null;
    if (batched !== null) {
      batched.assign(req);
      return;
    }
    if (this.open < this.spec.connectionsPerWorker) {
      const conn = this.connect();
      if (conn === null) {
        req.onUpstreamError(noCertificate(), null);
        return;
      }
      conn.assign(req);
      return;
    }
    // At the limit: a pipelined connection's place behind others beats the queue, unless it is stalled.
    const shared = shares ? this.leastLoaded(false, alone) : null;
    if (shared !== null) {
      shared.assign(req);
      return;
    }
    if (this.waiters.full) {
      req.onUpstreamError(this.waiters.overflow(`a connection to ${this.host}:${this.port}`), null);
      return;
    }
    this.waiters.push(req);
  }

  /** The longest waiting request must go alone on a connection to a plaintext app (pool.pipeline_plaintext). */
  private get loneWaiting(): boolean {
    const first = this.waiters.first;
    return first !== undefined && this.toApp && !first.pipelinable;
  }

  /** Counts a request of this loop turn; the count. */
  private countTurn(): number {
    if (this.turnRequests++ === 0) setImmediate(this.endTurn);
    return this.turnRequests;
  }

  /**
   * The pipelining connection that takes one more request with the fewest in flight, or null (with
   * `thisTurn`, only among those writing in this loop turn anyway). A connecting one counts unless
   * the server last turned pipelining down (its requests would go back). `alone`: the request is
   * no GET or HEAD without a body, and a connection to a plaintext app cannot take it.
   */
  private leastLoaded(thisTurn: boolean, alone: boolean): UpstreamConnection | null {
    const depth = this.spec.pipelineDepth;
    const now = this.ticker.fresh();
    const batch = thisTurn ? this.stall.batchLimit : null;
    let best: UpstreamConnection | null = null;
    for (const c of this.pipelining) {
      // A connection made with rotated material takes nothing new: it comes idle and is replaced.
      // To an app: never a request that goes alone, and nothing once a reload turned pipeline_plaintext off.
      if (c.safeOnly && (alone || !this.toApp)) continue;
      if ((this.peerRefusedPipelining && !c.pipelined) || this.isStale(c.materialKey)) continue;
      if ((best === null || c.inFlight < best.inFlight) && c.takesMore(depth, now, batch)) best = c;
    }
    return best;
  }

  /** Withdraws a request waiting for a connection: in the queue, or joined to one still connecting. */
  override cancel(req: UpstreamRequest): void {
    super.cancel(req);
    for (const c of this.pipelining) if (c.withdraw(req)) return;
  }

  /** A re-dispatched request, or a waiter: a connection of the pool after the ones already open. */
  redispatch(req: UpstreamRequest): void {
    this.dispatch(req);
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
    const t = this.connectTls();
    if (t === undefined) return null;
    const offer = (t !== null || this.pipeliningToApp()) && this.spec.pipelineDepth > 1;
    const conn = new UpstreamConnection(this, this.host, this.port, this.ticker, this.spec.connectTimeoutMs, t, offer ? this.stall : null);
    if (offer) this.pipelining.push(conn);
    this.open++;
    this.counters.connectionsOpened++;
    this.scheduleSweep();
    return conn;
  }

  onConnected(conn: UpstreamConnection): void {
    this.countHandshake(conn.materialKey, conn.resumed);
    if (!conn.offersPipelining) return;
    this.peerRefusedPipelining = !conn.pipelined;
    if (!conn.pipelined) this.forget(conn);
  }

  /** A pipelined connection in use may take one more request: the oldest waiter, if any. */
  onSlot(conn: UpstreamConnection): void {
    const next = this.waiters.first;
    if (next === undefined || this.draining || this.isStale(conn.materialKey)) return;
    if (conn.safeOnly && (!next.pipelinable || !this.pipeliningToApp())) return; // it waits for a connection of its own
    if (!conn.takesMore(this.spec.pipelineDepth, this.ticker.fresh(), null)) return;
    conn.assign(this.waiters.shift()!);
  }

  private forget(conn: UpstreamConnection): void {
    const i = this.pipelining.indexOf(conn);
    if (i >= 0) this.pipelining.splice(i, 1);
  }

  /** Whether a connection made with replaced material may be closed now (one per REPLACE_EVERY_MS). */
  private mayReplace(): boolean {
    const now = this.ticker.fresh();
    if (now - this.lastReplaceMs < REPLACE_EVERY_MS) return false;
    this.lastReplaceMs = now;
    return true;
  }

  onReusable(conn: UpstreamConnection): void {
    if (this.isStale(conn.materialKey) && this.mayReplace()) {
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

  /**
   * A server sidecar closing one connection with requests unanswered is draining (a reload closes
   * all its connections): the idle ones go now, so that those requests are sent again over a new
   * connection rather than one whose close is already on its way.
   */
  onPeerClosing(): void {
    for (const conn of this.idle.splice(0)) conn.destroy();
  }

  override get pipeliningOff(): boolean {
    return this.pipeliningStopped();
  }

  /**
   * The cluster pipelines to this endpoint as to a plaintext app: no tls (to a sidecar the hop
   * negotiates pipelining itself), and pool.pipeline_plaintext true, or `loopback` (the default)
   * with the endpoint on loopback, the app beside the sidecar. Read per use: a reload may change it.
   */
  private get toApp(): boolean {
    const p = this.spec.pipelinePlaintext;
    return this.tls === null && (p === 'on' || (p === 'loopback' && this.loopback));
  }

  /** To a plaintext app: its cluster pipelines to it (toApp) and pipelining is not stopped now. */
  private pipeliningToApp(): boolean {
    return this.toApp && !this.pipeliningStopped();
  }

  /** Whether pipelining to the app is stopped now; a stop whose time is up is ended here. */
  private pipeliningStopped(): boolean {
    if (this.pipeliningOffUntil === 0) return false;
    if (this.ticker.fresh() < this.pipeliningOffUntil) return true;
    this.pipeliningOffUntil = 0;
    return false;
  }

  onPipelineProven(): void {
    this.lostInARow = 0;
    this.pipeliningProven = true;
  }

  /**
   * The app closed a pipelined connection with requests written behind others unanswered (they are
   * sent again alone), or, before it ever answered one written behind another, left one unanswered
   * without a byte (pipeline.ts: an app that reads only the first request of a read). The
   * LOSSES_TO_STOPth in a row stops pipelining to it for PIPELINING_OFF_MS: the connections still
   * pipelining take no more requests behind others, and new ones offer none.
   */
  onPipelineLost(): void {
    if (this.pipeliningStopped() || ++this.lostInARow < LOSSES_TO_STOP) return;
    this.lostInARow = 0;
    this.pipeliningProven = false;
    this.pipeliningOffUntil = this.ticker.fresh() + PIPELINING_OFF_MS;
    this.counters.pipeliningStops++;
  }

  onPipelineMoved(n: number): void {
    this.counters.pipelinedMoved += n;
  }

  onClosed(conn: UpstreamConnection): void {
    this.open--;
    if (conn.offersPipelining) this.forget(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A waiter that was counting on this connection gets a fresh one (a draining pool too:
    // requests queued before the endpoint left the config are still answered).
    if (this.waiters.length > 0 && this.open < this.spec.connectionsPerWorker) {
      const next = this.waiters.shift()!;
      const fresh = this.connect();
      if (fresh === null) next.onUpstreamError(noCertificate(), null);
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
    const old = this.idle.find((c) => this.isStale(c.materialKey));
    if (old !== undefined) old.destroy();
    this.deadline = 0;
    if (this.open > 0) this.scheduleSweep();
  }
}

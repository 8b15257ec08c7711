// One proxied request: the proxy logic between a client (a Downstream: uWS or node:http) and
// the upstream pools. It streams the client's body to the upstream and the response back with
// backpressure both ways (downstream pause/resume/writable ↔ socket pause/resume/drain). Before the response head reaches
// the client it may make several tries (route retries: another endpoint, backoff with jitter,
// within the cluster's retry budget; the request body is kept for replay up to a limit). It turns
// failures into local replies before the head has left and into an abrupt close after, enforces
// the route, per-try and max-stream deadlines, and does the accounting exactly once.

import { performance } from 'node:perf_hooks';
import type { RouteSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import type { Rng } from '../lb/types.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { UpstreamConnection, UpstreamRequest } from '../upstream/connection.js';
import type { Ticker, Timed } from '../upstream/ticker.js';
import type { Downstream, DownstreamEvents } from './downstream.js';
import { connectionNamed } from './hop_by_hop.js';
import { BodyFraming, type RequestHead } from './request_head.js';

/** How one try went, for passive outlier detection. */
export const enum TryOutcome {
  Success = 0,
  /** A 5xx other than 502/503/504. */
  Error5xx = 1,
  /** 502/503/504, connect failure, reset, timeout. */
  Gateway = 2,
}

/** What an exchange reports to (the listener, then the worker's stats and drain bookkeeping). */
export interface ExchangeObserver {
  onExchangeDone(ex: Exchange): void;
  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
}

export interface ExchangeContext {
  readonly ticker: Ticker;
  readonly rng: Rng;
}

/** Client bytes held while no upstream connection is ready, before the client is paused. */
const MAX_PENDING_BODY = 256 * 1024;
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

type FailureKind = 'connect' | 'reset' | 'timeout' | 'status';

export class Exchange implements UpstreamRequest, Timed, DownstreamEvents {
  readonly isHead: boolean;
  deadline = 0;
  /** Response status for accounting; 0 = no complete response reached the client. */
  status = 0;
  /** The error that produced a local reply or an abrupt close, if any. */
  error: ProxyError | null = null;
  /** performance.now() at the start, at the upstream's response head, and at the end (ms, fractional). */
  readonly startMs: number;
  upstreamHeadMs = 0;
  endMs = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Tries made (1 = no retry). */
  tries = 0;
  /** The endpoint of the current (or last) try. */
  endpoint: Endpoint;

  private conn: UpstreamConnection | null = null;
  private aborted = false;
  private finished = false;
  private respStarted = false;
  private waiting = false;
  private tryActive = false;
  private staleRetried = false;
  // deadlines (ms, Ticker clock); 0 = none
  private routeDeadline = 0;
  private tryDeadline = 0;
  private streamDeadline = 0;
  // retries
  private retriesLeft: number;
  private retrying = false;
  private discarding = false;
  private backoffTimer: NodeJS.Timeout | null = null;
  private replay: Array<string | Buffer> | null = null;
  private replayBytes = 0;
  private bodyReplayable = true;
  // request body
  private pending: Array<string | Buffer> | null = null;
  private pendingBytes = 0;
  private clientBodyDone: boolean;
  private clientPaused = false;

  constructor(
    private readonly down: Downstream,
    readonly head: RequestHead,
    private readonly upstreamHead: string | Buffer,
    readonly cluster: Cluster,
    endpoint: Endpoint,
    readonly route: RouteSpec,
    readonly routeIndex: number,
    private readonly ctx: ExchangeContext,
    private readonly observer: ExchangeObserver,
    delayMs: number,
  ) {
    this.isHead = head.method === 'HEAD';
    this.startMs = performance.now();
    this.endpoint = endpoint;
    this.clientBodyDone = head.framing === BodyFraming.None;
    const retries = route.retries;
    this.retriesLeft = retries === null || (!retries.allowNonIdempotent && !IDEMPOTENT.has(head.method)) ? 0 : retries.attempts;
    if (this.retriesLeft > 0 && !this.clientBodyDone) {
      if (head.framing === BodyFraming.Length && head.contentLength > retries!.maxBodyBytes) this.retriesLeft = 0;
      else this.replay = [];
    }
    down.attach(this, !this.clientBodyDone);
    const now = ctx.ticker.fresh();
    if (route.timeoutMs > 0) this.routeDeadline = now + route.timeoutMs;
    if (route.maxStreamDurationMs > 0) this.streamDeadline = now + route.maxStreamDurationMs;
    cluster.active++;
    cluster.retryBudget.onRequest(now);
    if (delayMs > 0) {
      this.waitThen(delayMs);
    } else {
      this.startTry(endpoint);
    }
  }

  // ---- tries ------------------------------------------------------------------------------

  private startTry(ep: Endpoint): void {
    this.endpoint = ep;
    this.tries++;
    ep.active++;
    this.tryActive = true;
    const perTry = this.route.retries?.perTryTimeoutMs ?? 0;
    this.tryDeadline = perTry > 0 ? this.ctx.ticker.fresh() + perTry : 0;
    this.arm();
    this.waiting = true;
    ep.pool.dispatch(this);
  }

  private endTry(): void {
    if (this.tryActive) {
      this.tryActive = false;
      this.endpoint.active--;
    }
    this.tryDeadline = 0;
  }

  /** Stops whatever the current try is doing (connection, queue slot, backoff). */
  private abortTry(): void {
    if (this.conn !== null) {
      this.conn.destroy();
      this.conn = null;
    } else if (this.waiting) {
      this.endpoint.pool.cancel(this);
    }
    this.waiting = false;
    this.discarding = false;
    if (this.backoffTimer !== null) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
    }
    this.endTry();
  }

  /** Whether a failed try may be retried now; if so, the retry is charged to the budget. */
  private mayRetry(kind: FailureKind, status: number): boolean {
    const r = this.route.retries;
    if (r === null || this.retriesLeft <= 0 || !this.bodyReplayable || this.aborted || this.finished) return false;
    let wanted: boolean;
    switch (kind) {
      case 'connect':
        wanted = r.onConnectFailure;
        break;
      case 'reset':
        wanted = r.onReset;
        break;
      case 'timeout':
        wanted = r.onReset || r.on5xx || r.onGatewayError;
        break;
      case 'status':
        wanted =
          (r.on5xx && status >= 500) ||
          (r.onGatewayError && status >= 502 && status <= 504) ||
          (r.onRetriable4xx && status === 409) ||
          r.statuses.includes(status);
        break;
    }
    if (!wanted) return false;
    if (!this.cluster.retryBudget.tryAcquire(this.ctx.ticker.fresh(), this.cluster.active, this.retrying)) return false;
    return true;
  }

  /** Backoff with full jitter, then a new try on another endpoint where there is one. */
  private retry(): void {
    const r = this.route.retries!;
    const n = r.attempts - this.retriesLeft; // retries made before this one
    this.retriesLeft--;
    if (!this.retrying) {
      this.retrying = true;
      this.cluster.retryBudget.inFlight++;
    }
    this.cluster.retriesTotal++;
    const cap = Math.min(r.backoffMaxMs, r.backoffBaseMs * 2 ** n);
    this.waitThen(Math.floor(this.ctx.rng.next() * cap));
  }

  /** Waits (fault delay or retry backoff), then starts a try on a freshly picked endpoint. */
  private waitThen(ms: number): void {
    const prev = this.endpoint;
    const go = (): void => {
      this.backoffTimer = null;
      if (this.finished || this.aborted) return;
      const ep = this.tries === 0 ? prev : this.cluster.lb.pick(prev);
      if (ep === null) {
        this.reply(new ProxyError('no_healthy_endpoint', `cluster ${this.cluster.spec.name} has no endpoint`));
        return;
      }
      this.startTry(ep);
    };
    if (ms <= 0) {
      go();
      return;
    }
    this.backoffTimer = setTimeout(go, ms);
  }

  private report(outcome: TryOutcome): void {
    this.observer.onTryOutcome(this.cluster, this.endpoint, outcome);
  }

  // ---- upstream connection side -------------------------------------------------------------

  onConnection(conn: UpstreamConnection): void {
    this.waiting = false;
    if (this.aborted || this.finished) {
      // The client went away (or the route timed out) while this connection was still
      // connecting: pool.cancel() only reaches queued waiters, so the request must not be sent now.
      conn.destroy();
      return;
    }
    this.conn = conn;
    const parts = this.replay ?? this.pending;
    if (this.clientBodyDone && parts === null) {
      conn.write(this.upstreamHead);
      conn.requestComplete = true;
      return;
    }
    conn.cork();
    conn.write(this.upstreamHead);
    let ok = true;
    if (parts !== null) for (const part of parts) ok = conn.write(part);
    this.pending = null;
    this.pendingBytes = 0;
    if (this.clientBodyDone) conn.requestComplete = true;
    conn.uncork();
    if (ok && this.clientPaused) this.resumeClient();
    else if (!ok) this.pauseClient();
  }

  onUpstreamWritable(): void {
    if (this.clientPaused) this.resumeClient();
  }

  runCorked(task: () => void): void {
    if (this.aborted || this.discarding) task();
    else this.down.cork(task);
  }

  onHead(status: number, reason: string, headers: string[], nonAscii: boolean, contentLength: number): void {
    if (this.aborted) return;
    this.report(status < 500 ? TryOutcome.Success : status >= 502 && status <= 504 ? TryOutcome.Gateway : TryOutcome.Error5xx);
    if (status >= 400 && this.mayRetry('status', status)) {
      // Read the rejected response to its end (so the connection stays reusable), then retry.
      this.discarding = true;
      return;
    }
    this.respStarted = true;
    this.status = status;
    this.upstreamHeadMs = performance.now();
    this.routeDeadline = 0;
    this.tryDeadline = 0;
    this.arm();
    const bodiless = this.isHead || status === 204 || status === 304;
    this.down.writeHead(status, reason, headers, connectionNamed(headers), nonAscii, contentLength, bodiless);
  }

  onInformational(status: number, reason: string, headers: string[]): void {
    // 100 Continue is answered by the proxy itself (it strips Expect); other interim responses
    // (102, 103 Early Hints) go to the client where its engine can send them.
    if (this.aborted || this.discarding || this.respStarted || status === 100) return;
    this.down.informational(status, reason, headers);
  }

  onBody(chunk: Buffer): void {
    if (this.aborted || this.discarding) return;
    this.bytesOut += chunk.length;
    if (!this.down.writeBody(chunk)) this.conn?.pauseReading();
  }

  onDownstreamWritable(): void {
    this.conn?.resumeReading();
  }

  onEnd(trailers: string[] | null): void {
    this.conn = null;
    if (this.discarding) {
      this.discarding = false;
      this.endTry();
      this.retry();
      return;
    }
    if (this.aborted || !this.respStarted) return;
    this.down.end(trailers);
    this.finish();
  }

  onUpstreamError(err: ProxyError, conn: UpstreamConnection | null): void {
    this.waiting = false;
    this.conn = null;
    if (this.finished || this.aborted) return;
    if (this.discarding) {
      // The rejected response we were reading to its end broke off: retry all the same.
      this.discarding = false;
      this.endTry();
      this.retry();
      return;
    }
    if (!this.respStarted) {
      // A pooled connection that the upstream closed just as we reused it: try once more on a
      // fresh one when nothing of the request body can have been lost. Not a configured retry.
      if (
        conn !== null &&
        conn.reused &&
        conn.awaitingResponse &&
        err.code === 'upstream_reset' &&
        this.head.framing === BodyFraming.None &&
        !this.staleRetried
      ) {
        this.staleRetried = true;
        this.waiting = true;
        this.endpoint.pool.dispatch(this);
        return;
      }
      this.endTry();
      const kind: FailureKind | null =
        err.code === 'upstream_connect_failed' ? 'connect' : err.code === 'upstream_reset' || err.code === 'upstream_protocol_error' ? 'reset' : null;
      if (kind !== null) {
        this.report(TryOutcome.Gateway);
        if (this.mayRetry(kind, 0)) {
          this.error = err;
          this.retry();
          return;
        }
      }
      this.reply(err.withContext(`cluster ${this.cluster.spec.name} endpoint ${this.endpoint.address}`));
      return;
    }
    // The head is out: a status code is no longer possible. Close abruptly so the truncation shows.
    this.closeAbruptly(err);
  }

  // ---- client side --------------------------------------------------------------------------

  onClientData(data: Buffer | null, isLast: boolean, trailers: readonly string[] | null = null): void {
    if (this.finished || this.aborted) return;
    if (data !== null) {
      this.bytesIn += data.length;
      if (this.head.framing === BodyFraming.Chunked) {
        // Re-frame: uWS has removed the client's chunking.
        this.send(data.length.toString(16) + CRLF);
        this.send(data);
        this.send(CRLF);
      } else {
        this.send(data);
      }
    }
    if (isLast) {
      if (this.head.framing === BodyFraming.Chunked) this.send(trailers === null || trailers.length === 0 ? LAST_CHUNK : lastChunkWithTrailers(trailers));
      this.clientBodyDone = true;
      if (this.conn !== null) this.conn.requestComplete = true;
    }
  }

  private send(part: string | Buffer): void {
    if (this.replay !== null) {
      this.replay.push(part);
      this.replayBytes += part.length;
      if (this.replayBytes > this.route.retries!.maxBodyBytes) {
        // Too large to replay: no retries; keep only what the current try still needs.
        this.bodyReplayable = false;
        if (this.conn === null && !this.respStarted) {
          this.pending = this.replay;
          this.pendingBytes = this.replayBytes;
        }
        this.replay = null;
        if (this.conn === null) {
          if (this.pendingBytes > MAX_PENDING_BODY) this.pauseClient();
          return;
        }
      } else if (this.conn === null) {
        if (this.replayBytes > MAX_PENDING_BODY) this.pauseClient();
        return;
      }
    }
    const conn = this.conn;
    if (conn !== null) {
      if (!conn.write(part)) this.pauseClient();
      return;
    }
    if (this.respStarted || this.replay !== null) return;
    (this.pending ??= []).push(part);
    this.pendingBytes += part.length;
    if (this.pendingBytes > MAX_PENDING_BODY) this.pauseClient();
  }

  private pauseClient(): void {
    if (!this.clientPaused && !this.aborted) {
      this.clientPaused = true;
      this.down.pauseBody();
    }
  }

  private resumeClient(): void {
    if (this.clientPaused && !this.aborted) {
      this.clientPaused = false;
      this.down.resumeBody();
    }
  }

  onClientFramingError(): void {
    if (this.finished || this.aborted) return;
    this.abortTry(); // the upstream sees an aborted request, never a complete one
    const err = new ProxyError('bad_request', 'malformed request body framing');
    if (this.respStarted) this.closeAbruptly(err);
    else this.reply(err);
  }

  onClientAborted(): void {
    this.aborted = true;
    this.abortTry(); // the upstream sees the abort too
    if (!this.finished) {
      if (!this.down.complete) this.status = 0;
      this.finish();
    }
  }

  // ---- deadlines ------------------------------------------------------------------------------

  /** (Re-)registers with the ticker for the earliest pending deadline. */
  private arm(): void {
    let d = this.streamDeadline;
    if (this.routeDeadline !== 0 && (d === 0 || this.routeDeadline < d)) d = this.routeDeadline;
    if (this.tryDeadline !== 0 && (d === 0 || this.tryDeadline < d)) d = this.tryDeadline;
    this.deadline = d;
    if (d !== 0) this.ctx.ticker.add(this);
    else this.ctx.ticker.delete(this);
  }

  onDeadline(now: number): void {
    if (this.finished || this.aborted) return;
    if (this.streamDeadline !== 0 && now >= this.streamDeadline) {
      const err = new ProxyError('timeout', `exchange exceeded the route's max_stream_duration_ms (${this.route.maxStreamDurationMs} ms)`);
      if (this.respStarted) {
        this.abortTry();
        this.closeAbruptly(err);
      } else {
        this.abortTry();
        this.reply(err);
      }
      return;
    }
    if (!this.respStarted) {
      if (this.routeDeadline !== 0 && now >= this.routeDeadline) {
        this.abortTry();
        this.reply(new ProxyError('timeout', `no response from cluster ${this.cluster.spec.name} within the route timeout (${this.route.timeoutMs} ms)`));
        return;
      }
      if (this.tryDeadline !== 0 && now >= this.tryDeadline && !this.discarding) {
        this.abortTry();
        this.report(TryOutcome.Gateway);
        if (this.mayRetry('timeout', 0)) {
          this.arm();
          this.retry();
          return;
        }
        this.reply(new ProxyError('timeout', `no response from endpoint ${this.endpoint.address} within the per-try timeout`));
        return;
      }
    }
    this.arm();
  }

  // ---- endings --------------------------------------------------------------------------------

  private closeAbruptly(err: ProxyError): void {
    this.status = 0;
    this.error = err;
    this.down.abort();
    this.finish();
  }

  private reply(err: ProxyError): void {
    this.error = err;
    this.status = err.status;
    this.down.reply(err, this.head.requestId);
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.endMs = performance.now();
    this.routeDeadline = this.tryDeadline = this.streamDeadline = 0;
    this.ctx.ticker.delete(this);
    if (this.backoffTimer !== null) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
    }
    if (this.retrying) this.cluster.retryBudget.inFlight--;
    this.cluster.active--;
    this.endTry();
    this.observer.onExchangeDone(this);
  }
}

/** Fields that must never travel in a trailer section (RFC 9110 §6.5.1): framing, routing, hop-by-hop. */
const FORBIDDEN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'expect', 'x-forwarded-client-cert']);

/** The last chunk carrying the client's trailers (latin1 bytes, as received), minus forbidden fields. */
function lastChunkWithTrailers(trailers: readonly string[]): Buffer {
  let out = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i]!.toLowerCase();
    if (!FORBIDDEN_TRAILERS.has(name)) out += `${name}: ${trailers[i + 1]!}\r\n`;
  }
  return Buffer.from(out + '\r\n', 'latin1');
}

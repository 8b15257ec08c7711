// One proxied request: the proxy logic between a client (a Downstream: uWS, node:http, …) and
// the upstream (an UpstreamTarget handing out UpstreamChannels: HTTP/1 pools today). Its life is
// a small state machine of named phases with a table of legal transitions (like connection.ts):
//
//   Delaying ──→ Connecting ──→ Sending ──→ Responding ──→ Done
//      ↑  ↖__________|  ↖________|  |
//      |                            ↓
//      └──────────────────────── Discarding
//
//   Delaying    waiting out a fault-injection delay or a retry backoff before a try
//   Connecting  the try is dispatched to an endpoint and waits for a channel
//   Sending     the channel carries the request; the response head is awaited
//   Discarding  a rejected response (to be retried) is read to its end, keeping the channel reusable
//   Responding  the response head went to the client; the body streams with backpressure both ways
//   Done        finished: completed, answered locally, closed abruptly, or the client went away
//
// Every phase may end in Done. What is not the phase lives with its owner: the client's body
// (framing, replay, flow control) in RequestBody, retry decisions and the retry budget in
// RetryPolicy, the three deadlines in Deadlines, request counts in Cluster and Endpoint.

import { performance } from 'node:perf_hooks';
import type { RouteSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { RareFields } from '../jit.js';
import type { Rng } from '../lb/types.js';
import type { UpstreamChannel, UpstreamRequest } from '../upstream/channel.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { Ticker, Timed, TimerEntry } from '../upstream/ticker.js';
import { DeadlineKind, Deadlines } from './deadlines.js';
import type { Downstream, DownstreamEvents, ResponseHead } from './downstream.js';
import { grpcStatusIn, grpcTimeoutOf, isGrpcRequest } from '../grpc/wire.js';
import { grpcStatusOf } from './local_reply.js';
import { connectionNamed, forwardableTrailers } from './hop_by_hop.js';
import { RequestBody } from './request_body.js';
import { BodyFraming, headerLookup, type RequestHead } from './request_head.js';
import { RetryPolicy, type FailureKind } from './retry_policy.js';

export const enum Phase {
  Delaying = 'delaying',
  Connecting = 'connecting',
  Sending = 'sending',
  Discarding = 'discarding',
  Responding = 'responding',
  Done = 'done',
}

const LEGAL: Readonly<Record<Phase, readonly Phase[]>> = {
  [Phase.Delaying]: [Phase.Connecting, Phase.Done],
  // Delaying: a failed connect is retried after a backoff.
  [Phase.Connecting]: [Phase.Sending, Phase.Delaying, Phase.Done],
  // Connecting: a stale pooled connection is replaced once; Delaying: a retry.
  [Phase.Sending]: [Phase.Responding, Phase.Discarding, Phase.Connecting, Phase.Delaying, Phase.Done],
  [Phase.Discarding]: [Phase.Delaying, Phase.Done],
  [Phase.Responding]: [Phase.Done],
  [Phase.Done]: [],
};

/** How one try went, for passive outlier detection; these names cross to the main thread as they are. */
export const enum TryOutcome {
  Success = 'success',
  /** A 5xx other than 502/503/504. */
  Error5xx = '5xx',
  /** 502/503/504, connect failure, reset, timeout. */
  Gateway = 'gateway',
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

/** Everything an exchange starts from: the admitted request and where it goes. */
export interface ExchangeOptions {
  readonly down: Downstream;
  readonly head: RequestHead;
  /** The request head as it goes upstream (request_head.ts builds it). */
  readonly upstreamHead: string | Buffer;
  /** The cluster, which has admitted the request (Cluster.admit): the exchange releases it when done. */
  readonly cluster: Cluster;
  /** The endpoint of the first try. */
  readonly endpoint: Endpoint;
  readonly route: RouteSpec;
  readonly routeIndex: number;
  readonly ctx: ExchangeContext;
  readonly observer: ExchangeObserver;
  /** Fault-injection delay before the first try (ms; 0 = none). */
  readonly delayMs: number;
}

const NO_HEADERS: readonly string[] = [];
/** Times one exchange resends a try its upstream declared unprocessed, before it counts as a failure. */
const UNPROCESSED_RESENDS = 5;
/** HTTP/2 and pipelining clusters: request body bytes kept to resend an unprocessed request when the route has no retries. */
const RESEND_BODY_BYTES = 64 * 1024;
const EXCHANGE_RARE = new RareFields(['clientGone', 'error', 'endpoint', 'staleReplaced', 'unprocessedLeft']);

export class Exchange implements UpstreamRequest, Timed, DownstreamEvents, ResponseHead {
  /** Starts an admitted request: attaches to the client and begins the first try (or its delay). */
  static start(o: ExchangeOptions): Exchange {
    const ex = new Exchange(o);
    o.down.attach(ex, !ex.body.done);
    if (o.delayMs > 0) ex.delay(o.delayMs);
    else ex.startTry(o.endpoint);
    return ex;
  }

  phase = Phase.Delaying;
  readonly isHead: boolean;
  /** Ticker registration: the earliest pending deadline. */
  deadline = 0;
  // ---- accounting (read by the observer when the exchange is done) ----
  /** Response status; 0 = no complete response reached the client. */
  status = 0;
  /** The error that produced a local reply or an abrupt close, if any. */
  error: ProxyError | null = null;
  /** performance.now() at the start, at the upstream's response head, and at the end (ms, fractional). */
  readonly startMs: number;
  upstreamHeadMs = 0;
  endMs = 0;
  bytesOut = 0;
  /** Tries made (1 = no retry). */
  tries = 0;
  /** The endpoint of the current (or last) try. */
  endpoint: Endpoint;
  // ---- the response head handed to the downstream (ResponseHead; `status` above), set in onHead ----
  reason = '';
  headers: readonly string[] = NO_HEADERS;
  connectionNamed: readonly string[] | null = null;
  nonAscii = false;
  contentLength = -1;
  bodiless = false;

  readonly head: RequestHead;
  readonly cluster: Cluster;
  readonly route: RouteSpec;
  readonly routeIndex: number;
  private readonly down: Downstream;
  /** The request head as HTTP/1 bytes (an HTTP/1 channel writes it; an HTTP/2 one reads its fields). */
  readonly upstreamHead: string | Buffer;
  private readonly ctx: ExchangeContext;
  private readonly observer: ExchangeObserver;
  private readonly body: RequestBody;
  private readonly retry: RetryPolicy;
  private readonly deadlines: Deadlines;
  /** The channel of the current try (Sending, Discarding, Responding until the response ends). */
  private channel: UpstreamChannel | null = null;
  /** The current try holds a slot on its endpoint (Endpoint.tryStarted). */
  private tryOpen = false;
  /** A stale pooled connection was already replaced once (not a configured retry). */
  private staleReplaced = false;
  /** Resends left of a try the upstream declared unprocessed (HTTP/2 REFUSED_STREAM, GOAWAY). */
  private unprocessedLeft = UNPROCESSED_RESENDS;
  /** The client went away (Done by abort). */
  private clientGone = false;
  /** HTTP/2 requests with a grpc-timeout: the call's deadline (performance.now() ms; 0 = none). */
  grpcDeadlineMs = 0;
  /** The call's grpc-timeout (ms) when it, not the route timeout, bounds the wait for the head; -1 otherwise. */
  private grpcTimeoutMs = -1;
  /** An HTTP/2 request with content-type application/grpc*. */
  readonly grpc: boolean;
  /** gRPC calls: the grpc-status the client got (response trailers or headers, or the local reply's); -1 = none seen. */
  grpcStatus = -1;
  /** Delaying: when the fault delay or retry backoff ends (ms, ticker clock; 0 = not delaying). */
  private delayUntil = 0;
  timerEntry: TimerEntry | null = null;

  private constructor(o: ExchangeOptions) {
    this.head = o.head;
    this.cluster = o.cluster;
    this.route = o.route;
    this.routeIndex = o.routeIndex;
    this.endpoint = o.endpoint;
    this.down = o.down;
    this.upstreamHead = o.upstreamHead;
    this.ctx = o.ctx;
    this.observer = o.observer;
    this.isHead = o.head.method === 'HEAD';
    this.startMs = performance.now();
    // gRPC needs HTTP/2: HTTP/1 requests skip the look-up.
    this.grpc = o.head.protocol === 'HTTP/2' && isGrpcRequest(o.head.headers);
    this.retry = new RetryPolicy(o.route.retries, o.head, o.cluster, this.grpc);
    const h2 = o.cluster.spec.protocol === 'http2';
    // HTTP/2, and HTTP/1 pipelined to a sidecar (mTLS): a body is kept for resending a request the
    // upstream declared unprocessed even when no configured retry could use it (up to the route's
    // retries.max_body_bytes, 64 KiB without retries).
    const resends = h2 || (o.cluster.spec.tls !== null && o.cluster.spec.pool.pipelineDepth > 1);
    const replayLimit = resends && this.retry.replayLimit < 0 ? (o.route.retries?.maxBodyBytes ?? RESEND_BODY_BYTES) : this.retry.replayLimit;
    this.body = new RequestBody(o.down, o.head.framing, replayLimit, h2);
    let timeoutMs = o.route.timeoutMs;
    // The shorter of the route timeout and the call's grpc-timeout bounds the wait for the response head.
    const g = this.grpc ? grpcTimeoutOf(o.head.headers) : -1;
    if (g >= 0) {
      this.grpcDeadlineMs = this.startMs + g;
      if (timeoutMs === 0 || g < timeoutMs) {
        this.grpcTimeoutMs = g;
        timeoutMs = Math.max(1, Math.ceil(g));
      }
    }
    this.deadlines = new Deadlines(o.ctx.ticker.fresh(), timeoutMs, o.route.maxStreamDurationMs);
    // Stored to only when the client goes away, a try fails, a retry moves to another endpoint,
    // a certificate rotates, an upstream declares a request unprocessed (jit.ts).
    EXCHANGE_RARE.first(this);
  }

  /**
   * A GET or HEAD without a body, not being sent again as unprocessed (read only by a pool that
   * pipelines to a plaintext app): a resend goes alone, so that an app that closes after every
   * answer (HTTP/1.0 style) answers each GET of a pipeline at its second try at the latest. Nor
   * one that asks for a Server-Sent Events stream (`Accept: text/event-stream`, as every
   * EventSource sends): its answer may never end, and a request written behind it would wait for it.
   */
  get pipelinable(): boolean {
    return this.movable && this.unprocessedLeft === UNPROCESSED_RESENDS && !asksForEventStream(this.head);
  }

  /** A GET or HEAD without a body (UpstreamRequest.movable). */
  get movable(): boolean {
    return (this.isHead || this.head.method === 'GET') && this.head.framing === BodyFraming.None;
  }

  get bytesIn(): number {
    return this.body.bytesIn;
  }

  private to(next: Phase): void {
    if (!LEGAL[this.phase].includes(next)) throw new Error(`exchange ${this.head.requestId}: illegal transition ${this.phase} → ${next}`);
    this.phase = next;
  }

  private get done(): boolean {
    return this.phase === Phase.Done;
  }

  // ---- tries ------------------------------------------------------------------------------

  private startTry(ep: Endpoint): void {
    this.to(Phase.Connecting);
    this.endpoint = ep;
    this.tries++;
    if (this.head.trace?.sampled === true) this.head.trace.tryStarted(this.tries, ep.address);
    ep.tryStarted();
    this.tryOpen = true;
    const perTry = this.retry.perTryTimeoutMs;
    this.deadlines.try = perTry > 0 ? this.ctx.ticker.fresh() + perTry : 0;
    this.arm();
    ep.pool.dispatch(this);
  }

  private endTry(): void {
    if (this.tryOpen) {
      this.tryOpen = false;
      this.endpoint.tryEnded();
    }
    this.deadlines.try = 0;
  }

  /** Stops whatever the current try is doing (channel, queue slot, delay). */
  private abortTry(): void {
    if (this.channel !== null) {
      this.channel.destroy();
      this.channel = null;
    } else if (this.phase === Phase.Connecting) {
      this.endpoint.pool.cancel(this);
    }
    this.delayUntil = 0;
    this.endTry();
  }

  /** Whether a failed try may be retried (the client body can be resent, the policy and budget allow it). */
  private mayRetry(kind: FailureKind, code: number): boolean {
    return this.body.replayable && this.retry.allows(kind, code, this.ctx.ticker.fresh());
  }

  /** A retry (mayRetry said yes): backoff with full jitter, then a try on another endpoint where there is one. */
  private retryAfterBackoff(): void {
    this.delay(this.retry.take(this.ctx.rng));
  }

  /** Delaying: waits (fault delay or retry backoff), then starts a try on the endpoint to use. */
  private delay(ms: number): void {
    if (this.phase !== Phase.Delaying) this.to(Phase.Delaying);
    if (ms <= 0) {
      this.afterDelay();
      return;
    }
    this.delayUntil = this.ctx.ticker.fresh() + ms;
    this.arm();
  }

  private afterDelay(): void {
    this.delayUntil = 0;
    if (this.done) return;
    // The first try keeps the endpoint admission picked; a retry prefers another.
    const ep = this.tries === 0 ? this.endpoint : this.cluster.lb.pick(this.endpoint);
    if (ep === null) {
      this.reply(new ProxyError('no_healthy_endpoint', `cluster ${this.cluster.spec.name} has no endpoint`));
      return;
    }
    this.startTry(ep);
  }

  private report(outcome: TryOutcome): void {
    this.observer.onTryOutcome(this.cluster, this.endpoint, outcome);
  }

  // ---- upstream side ----------------------------------------------------------------------

  onConnection(ch: UpstreamChannel): void {
    if (this.phase !== Phase.Connecting) {
      // The client went away (or a deadline fired) while this connection was still connecting:
      // pool.cancel() only reaches queued waiters, so the request must not be sent now.
      ch.destroy();
      return;
    }
    this.to(Phase.Sending);
    this.channel = ch;
    const parts = this.body.takeForTry();
    if (this.body.done && parts === null) {
      ch.sendHead(this, true);
      return;
    }
    ch.cork();
    ch.sendHead(this, false);
    let ok = true;
    if (parts !== null) for (const part of parts) ok = ch.write(part);
    if (this.body.done) ch.endRequest(this.body.trailers);
    ch.uncork();
    if (!ok) this.body.pause();
    else this.body.resume();
  }

  onUpstreamWritable(): void {
    if (!this.done) this.body.resume();
  }

  runCorked(task: () => void): void {
    if (this.phase === Phase.Sending || this.phase === Phase.Responding) this.down.cork(task);
    else task();
  }

  onHead(status: number, reason: string, headers: string[], nonAscii: boolean, contentLength: number): void {
    if (this.phase !== Phase.Sending) return;
    this.endpoint.reached();
    this.report(status < 500 ? TryOutcome.Success : status >= 502 && status <= 504 ? TryOutcome.Gateway : TryOutcome.Error5xx);
    // A grpc-status in the head is a trailers-only response: the call failed before any message.
    const grpcStatus = this.grpc ? grpcStatusIn(headers) : -1;
    if (status >= 400 ? this.mayRetry('status', status) : grpcStatus > 0 && this.mayRetry('grpc', grpcStatus)) {
      // Read the rejected response to its end (so the connection stays reusable), then retry.
      this.to(Phase.Discarding);
      return;
    }
    this.to(Phase.Responding);
    this.status = status;
    this.upstreamHeadMs = performance.now();
    this.deadlines.headArrived();
    this.arm();
    this.reason = reason;
    this.headers = headers;
    this.connectionNamed = connectionNamed(headers);
    this.nonAscii = nonAscii;
    this.contentLength = contentLength;
    // A trailers-only gRPC response goes on as one HEADERS frame with END_STREAM, as it came:
    // gRPC clients read a status from the head only then.
    this.bodiless = this.isHead || status === 204 || status === 304 || grpcStatus >= 0;
    this.grpcStatus = grpcStatus;
    this.down.writeHead(this);
  }

  onInformational(status: number, reason: string, headers: string[]): void {
    // 100 Continue is answered by the proxy itself (it strips Expect); other interim responses
    // (102, 103 Early Hints) go to the client where its engine can send them.
    if (this.phase !== Phase.Sending || status === 100) return;
    this.down.informational(status, reason, headers);
  }

  onBody(chunk: Buffer): void {
    if (this.phase !== Phase.Responding) return;
    this.bytesOut += chunk.length;
    if (!this.down.writeBody(chunk)) this.channel?.pauseReading();
  }

  onDownstreamWritable(): void {
    this.channel?.resumeReading();
  }

  onEnd(trailers: string[] | null): void {
    this.channel = null;
    if (this.phase === Phase.Discarding) {
      this.endTry();
      this.retryAfterBackoff();
      return;
    }
    if (this.phase !== Phase.Responding) return;
    if (this.grpc && trailers !== null) {
      const g = grpcStatusIn(trailers);
      if (g >= 0) this.grpcStatus = g;
    }
    // Framing and hop-by-hop fields never go on in a trailer section, whatever the downstream.
    this.down.end(trailers === null ? null : forwardableTrailers(trailers));
    this.finish();
  }

  onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void {
    this.channel = null;
    switch (this.phase) {
      case Phase.Done:
      case Phase.Delaying:
        return;
      case Phase.Discarding:
        // The rejected response we were reading to its end broke off: retry all the same.
        this.endTry();
        this.retryAfterBackoff();
        return;
      case Phase.Responding:
        // The head is out: a status code is no longer possible. Close abruptly so the truncation shows.
        this.closeAbruptly(err);
        return;
      case Phase.Connecting:
      case Phase.Sending:
        break;
    }
    // The upstream refused the request unprocessed (HTTP/2 REFUSED_STREAM, above a GOAWAY's last
    // stream; pipelined HTTP/1 behind a `Connection: close` response): sending it again is safe
    // whatever its method, when its body can be sent again.
    if (this.phase === Phase.Sending && ch !== null && ch.unprocessed && this.unprocessedLeft > 0 && this.body.resendable) {
      this.unprocessedLeft--;
      this.to(Phase.Connecting);
      this.endpoint.pool.dispatch(this);
      return;
    }
    // A pooled connection that the upstream closed just as we reused it: try once more on a fresh
    // one when nothing of the request body can have been lost. Not a configured retry.
    if (
      this.phase === Phase.Sending &&
      ch !== null &&
      ch.reused &&
      ch.awaitingResponse &&
      err.code === 'upstream_reset' &&
      this.head.framing === BodyFraming.None &&
      !this.staleReplaced
    ) {
      this.staleReplaced = true;
      this.to(Phase.Connecting);
      this.endpoint.pool.dispatch(this);
      return;
    }
    this.endTry();
    const kind: FailureKind | null =
      err.code === 'upstream_connect_failed' ? 'connect' : err.code === 'upstream_reset' || err.code === 'upstream_protocol_error' ? 'reset' : null;
    // Refused or timed out before anything was sent: the endpoint leaves this worker's balancing
    // until a probe reaches it (cluster.ts, Endpoint).
    if (kind === 'connect') this.endpoint.connectFailed();
    if (kind !== null) {
      this.report(TryOutcome.Gateway);
      if (this.mayRetry(kind, 0)) {
        this.error = err;
        this.retryAfterBackoff();
        return;
      }
    }
    this.reply(err.withContext(`cluster ${this.cluster.spec.name} endpoint ${this.endpoint.address}`));
  }

  // ---- client side --------------------------------------------------------------------------

  onClientData(data: Buffer | null, isLast: boolean, trailers: readonly string[] | null = null): void {
    if (this.done) return;
    // Body bytes follow the head on the current try's channel (a rejected response being read
    // to its end included: its connection still expects them).
    const ch = this.phase === Phase.Sending || this.phase === Phase.Responding || this.phase === Phase.Discarding ? this.channel : null;
    this.body.receive(data, isLast, trailers, ch, this.phase === Phase.Responding);
    if (isLast && ch !== null) ch.endRequest(this.body.trailers);
  }

  onClientFramingError(): void {
    if (this.done) return;
    const headSent = this.phase === Phase.Responding;
    this.abortTry(); // the upstream sees an aborted request, never a complete one
    const err = new ProxyError('bad_request', 'malformed request body framing');
    if (headSent) this.closeAbruptly(err);
    else this.reply(err);
  }

  onClientAborted(): void {
    this.clientGone = true;
    this.abortTry(); // the upstream sees the abort too
    if (!this.done) {
      if (!this.down.complete) this.status = 0;
      this.finish();
    }
  }

  // ---- deadlines ------------------------------------------------------------------------------

  /** (Re-)registers with the ticker for the earliest pending deadline. */
  private arm(): void {
    let d = this.deadlines.earliest;
    const w = this.delayUntil;
    if (w !== 0 && (d === 0 || w < d)) d = w;
    this.deadline = d;
    if (d !== 0) this.ctx.ticker.add(this);
    else this.ctx.ticker.delete(this);
  }

  onDeadline(now: number): void {
    if (this.done) return;
    switch (this.deadlines.expired(now)) {
      case DeadlineKind.Stream: {
        const err = new ProxyError('timeout', `exchange exceeded the route's max_stream_duration_ms (${this.route.maxStreamDurationMs} ms)`);
        const headSent = this.phase === Phase.Responding;
        this.abortTry();
        if (headSent) this.closeAbruptly(err);
        else this.reply(err);
        return;
      }
      case DeadlineKind.Route:
        this.abortTry();
        this.reply(
          this.grpcTimeoutMs >= 0
            ? new ProxyError('timeout', `no response from cluster ${this.cluster.spec.name} within the call's grpc-timeout (${this.grpcTimeoutMs} ms)`)
            : new ProxyError('timeout', `no response from cluster ${this.cluster.spec.name} within the route timeout (${this.route.timeoutMs} ms)`),
        );
        return;
      case DeadlineKind.Try:
        if (this.phase === Phase.Discarding) break; // the rejected response is being read: its retry follows
        this.abortTry();
        this.report(TryOutcome.Gateway);
        if (this.mayRetry('timeout', 0)) {
          this.arm();
          this.retryAfterBackoff();
          return;
        }
        this.reply(new ProxyError('timeout', `no response from endpoint ${this.endpoint.address} within the per-try timeout`));
        return;
      case DeadlineKind.None:
        if (this.delayUntil !== 0 && now >= this.delayUntil) {
          this.afterDelay(); // starts the try (which re-arms) or replies
          return;
        }
        break;
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
    if (this.grpc) this.grpcStatus = grpcStatusOf(err); // the downstream answers in the gRPC shape
    this.down.reply(err, this.head.requestId);
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.to(Phase.Done);
    this.endMs = performance.now();
    this.deadlines.clear();
    this.ctx.ticker.delete(this);
    this.delayUntil = 0;
    this.retry.release();
    this.cluster.release();
    this.endTry();
    this.observer.onExchangeDone(this);
  }

  /** Whether the client went away before the exchange ended on its own. */
  get abandoned(): boolean {
    return this.clientGone;
  }
}

/** The `accept` lines name `text/event-stream` (media types are case-insensitive, RFC 9110 §8.3.1). */
function asksForEventStream(head: RequestHead): boolean {
  const accept = headerLookup(head)('accept');
  return accept !== undefined && /\btext\/event-stream\b/i.test(accept);
}

// HTTP/1.1 pipelining on one upstream connection: to another outrigger sidecar (ALPN PIPELINE_ALPN,
// src/net/alpn.ts, which says what the server promises), or to a plaintext app (pool.pipeline_plaintext:
// by default an app on loopback), where only GET and HEAD requests without a body are pipelined and
// any other request is alone on its connection. The requests in flight in order, each try with a
// channel of its own, the response parser moving from one to the next with the bytes left over,
// writes batched once per loop turn, and what becomes of the requests behind one that fails.
// connection.ts owns the socket and the parser; the pool (pool.ts) decides who may join.

import type net from 'node:net';
import { ProxyError } from '../errors.js';
import { RareFields } from '../jit.js';
import type { UpstreamChannel, UpstreamRequest } from './channel.js';
import type { ResponseParser, ResponseSink } from './response_parser.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';

/** What a pipeline needs of its connection. */
export interface PipelineHost {
  readonly host: string;
  readonly port: number;
  /**
   * To a plaintext app, which promised nothing: a request that is not `pipelinable` (not a GET or
   * HEAD without a body) goes alone, and only the pipelinable ones count as unprocessed when the
   * server closes before answering them (they are idempotent: RFC 9112 §9.3.1 lets them be sent again).
   */
  readonly safeOnly: boolean;
  /** The connection stopped reading (the client of the response being read is slow). */
  readonly readingPaused: boolean;
  pauseReading(): void;
  resumeReading(): void;
  /** The last response in flight completed: the connection is idle. */
  pipelineIdle(): void;
  /** The connection may take one more request (a request was written whole, or a response completed). */
  pipelineSlot(): void;
  /** Closes the connection; the pipeline has told its requests (or has none left to tell). */
  pipelineClosed(): void;
  /**
   * The server is closing this connection with requests unanswered (a drain or reload of the
   * server sidecar closes all its connections): before they are sent again, the connections to it
   * that sit idle are dropped, so that the resends go over a new connection, not a closing one.
   */
  pipelinePeerClosing(): void;
  /** safeOnly: the app answered a request that was written behind another (it reads pipelined requests). */
  pipelineProven(): void;
  /** safeOnly: the app has answered a request written behind another since pipelining to it (re)started. */
  readonly pipeliningProven: boolean;
  /** safeOnly: the app closed with requests unanswered that were written behind another, or left one unanswered (Pipeline.suspect). */
  pipelineLost(): void;
  /** `n` requests written behind a response that did not end in time are being sent again elsewhere. */
  pipelineMoved(n: number): void;
}

/**
 * Below this many ms the response at the head of a pipeline is never taken as stalled: a loaded
 * sidecar pair on one host answers within ~1 ms, and a smaller floor opens connections for noise.
 */
const STALL_FLOOR_MS = 2;
/** A head response counts as stalled after this many times the recent response time (plus the floor). */
const STALL_FACTOR = 4;
/** Weight of a new sample in the recent response time (1/8, as TCP's SRTT). */
const STALL_GAIN = 1 / 8;

/** Weight of a new sample in the share of slow responses (an average over about the last 128). */
const SLOW_GAIN = 1 / 128;
/**
 * A response counts as slow (for batching) only past the stall limit and this many ms: a loaded
 * sidecar pair's own tail (GC, a busy loop: 10-30 ms here) must not turn batching off, while an
 * upstream that sometimes takes 500 ms must (measured: bench/lib/hol.ts).
 */
const SLOW_MIN_MS = 50;
/** The share of requests a batch may expect to hold behind a slow response (well under p99's 1 %). */
const HOL_SHARE = 0.002;

/**
 * GETs and HEADs written behind a response that has taken this many times the stall limit, and at
 * least RESCUE_FLOOR_MS, are sent again on another connection: a long poll or an event stream may
 * never end, and without this the requests behind it waited for it to their route timeout.
 */
const RESCUE_FACTOR = 2;
const RESCUE_FLOOR_MS = 100;

/**
 * When a pipelined connection's oldest response is late enough that new requests must go elsewhere
 * (head-of-line): one per endpoint pool, fed by every completed head response. A sample is capped at
 * the current limit, so that one 500 ms request in a hundred does not teach the pool to wait 500 ms.
 * It also keeps the share of responses that came later than the limit, which bounds batches.
 */
export class StallClock {
  private recentMs = 0;
  private slowShare = 0;

  get limitMs(): number {
    return STALL_FLOOR_MS + STALL_FACTOR * this.recentMs;
  }

  sample(ms: number): void {
    const limit = this.limitMs;
    this.slowShare += ((ms > Math.max(limit, SLOW_MIN_MS) ? 1 : 0) - this.slowShare) * SLOW_GAIN;
    this.recentMs += (Math.min(ms, limit) - this.recentMs) * STALL_GAIN;
  }

  /**
   * How many requests one connection's write of a loop turn may carry. A request written behind
   * others waits for any slow response among them: with a share s of slow responses, a batch of n
   * holds about s·(n−1)/2 of its requests behind one, so n is kept to where that stays under
   * HOL_SHARE. Uniformly fast responses batch up to pipeline_depth; an upstream where 1 response in
   * 100 is slow gets one request per write, as without pipelining (measured: bench/lib/hol.ts).
   */
  get batchLimit(): number {
    return 1 + Math.floor((2 * HOL_SHARE) / this.slowShare); // Infinity while no response was slow
  }
}

const PIPELINE_RARE = new RareFields(['closed']);

export class Pipeline implements Timed {
  /** Requests in flight, oldest first: the parser reads the response of `tries[0]`. */
  private readonly tries: PipelineTry[] = [];
  /** The socket is corked until the end of this loop turn. */
  private batching = false;
  /** Requests added since the write of this loop turn opened (with the one that opens it). */
  private turnRequests = 0;
  /** When the head request became the head (ticker clock): how long its response has taken. */
  private headSince = 0;
  /** The head's response was counted in the StallClock already (as slow, when the requests behind it were moved). */
  private headCounted = false;
  private closed = false;
  /** Timed: when the requests behind the head are looked at again (ticker clock; 0: not armed). */
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  /** PipelineHost.safeOnly, which a connection never changes. */
  private readonly safeOnly: boolean;
  // The read being parsed (executeHead runs inside the head request's runCorked).
  private readBuf: Buffer | null = null;
  private readStart = 0;
  private readEnd = 0;
  private used = 0;
  private readonly executeHead = (): void => {
    this.used = this.parser.execute(this.readBuf!, this.readStart, this.readEnd);
  };
  private readonly flush = (): void => {
    this.batching = false;
    this.socket.uncork();
  };

  constructor(
    private readonly host: PipelineHost,
    private readonly socket: net.Socket,
    private readonly parser: ResponseParser,
    private readonly ticker: Ticker,
    private readonly stall: StallClock,
  ) {
    this.safeOnly = host.safeOnly;
    // Stored to only when the connection closes (jit.ts).
    PIPELINE_RARE.first(this);
  }

  get inFlight(): number {
    return this.tries.length;
  }

  /** Whether a request written now leaves with fewer than `limit` others of this loop turn, in the same write. */
  batchOpen(limit: number): boolean {
    return this.batching && this.turnRequests < limit;
  }

  /**
   * Whether a new request may be written behind the others now: fewer than `depth` in flight, the
   * last one written whole (bodies never interleave) and not one that goes alone, the connection
   * reading, and its oldest response not stalled.
   */
  accepts(depth: number, now: number): boolean {
    const n = this.tries.length;
    if (n === 0) return true;
    const last = this.tries[n - 1]!;
    return n < depth && last.requestComplete && !last.solo && !this.host.readingPaused && now - this.headSince <= this.stall.limitMs;
  }

  /** Whether the newest request in flight (if any) was written whole: the next may follow it. */
  get lastWrittenWhole(): boolean {
    const n = this.tries.length;
    return n === 0 || this.tries[n - 1]!.requestComplete;
  }

  /** Takes `req` behind the requests in flight and hands it its channel. */
  add(req: UpstreamRequest, reused: boolean): void {
    const t = new PipelineTry(this, req, reused, this.safeOnly && !req.pipelinable, this.tries.length > 0);
    this.turnRequests = this.batching ? this.turnRequests + 1 : 1;
    this.tries.push(t);
    if (this.tries.length === 1) this.startHead(t);
    else if (this.deadline === 0) this.armRescue();
    req.onConnection(t);
  }

  /** How long the head's response may take before the movable requests behind it go elsewhere. */
  private get rescueMs(): number {
    return Math.max(RESCUE_FLOOR_MS, RESCUE_FACTOR * this.stall.limitMs);
  }

  /** Armed while requests wait behind the head; not moved as responses complete (onDeadline checks). */
  private armRescue(): void {
    this.deadline = this.headSince + this.rescueMs;
    this.ticker.add(this);
  }

  /** Requests wait behind the head, or the head is a moved request's answer that nobody waits for, or a suspect. */
  private get watched(): boolean {
    const n = this.tries.length;
    return n >= 2 || (n === 1 && (this.tries[0]!.abandoned || this.suspect(this.tries[0]!)));
  }

  /**
   * The head `t` is a GET or HEAD written behind another to an app that has never answered one so
   * (pipeliningProven), and no byte of its answer has come: a server that reads only the first
   * request of a read and drops the rest never answers it. It is moved like the ones behind it,
   * and counts against pipelining to the app (pool.ts). Once the app has answered a request written
   * behind another, a slow head is only slow: it is never moved.
   */
  private suspect(t: PipelineTry): boolean {
    return this.safeOnly && t.behind && !t.abandoned && !this.host.pipeliningProven && this.parser.idleAtStart && t.requestComplete && t.req.movable;
  }

  onDeadline(now: number): void {
    this.deadline = 0;
    if (this.closed || !this.watched) return;
    if (now - this.headSince < this.rescueMs) {
      this.armRescue(); // a later head: its own time
    } else {
      setImmediate(this.rescueCheck); // after this turn's reads: a loop held up (GC) may have the answers waiting
    }
  }

  private readonly rescueCheck = (): void => {
    if (this.closed || !this.watched) return;
    const ms = this.ticker.fresh() - this.headSince;
    if (ms < this.rescueMs) {
      if (this.deadline === 0) this.armRescue();
    } else if (this.tries.every((t) => t.abandoned)) {
      // Moved requests' answers that do not come in time either: nobody waits for them.
      this.tries.length = 0;
      this.close();
    } else {
      this.rescueBehind(ms);
    }
  };

  /**
   * The head's response has not ended in `ms`: the GETs and HEADs written whole behind it are sent
   * again (on another connection: this one is stalled, so the pool gives it nothing), and their
   * answers here are read and dropped when they come; any other request waits for it. The app may
   * so process such a GET twice, as with any retry of an idempotent request. It counts as a slow
   * response, so that fewer requests are batched behind others (StallClock).
   */
  private rescueBehind(ms: number): void {
    if (!this.headCounted) this.stall.sample(ms);
    this.headCounted = true;
    const err = new ProxyError('upstream_reset', `the response ahead of it from ${this.at} did not end within ${Math.round(ms)} ms`);
    const suspect = this.suspect(this.tries[0]!);
    const moved = this.tries.filter((t, i) => (i > 0 || suspect) && !t.finished && !t.abandoned && t.requestComplete && t.req.movable);
    if (suspect) this.host.pipelineLost();
    if (moved.length > 0) this.host.pipelineMoved(moved.length);
    for (const t of moved) {
      t.unprocessed = true;
      t.fail(err); // the request dispatches itself again
      t.abandoned = t.moved = true;
    }
    this.closeIfAbandoned();
  }

  private startHead(t: PipelineTry): void {
    this.parser.start(t, t.req.isHead);
    this.headSince = this.ticker.fresh();
    this.headCounted = false;
  }

  /** Request bytes: corked on the first write of a loop turn, sent in one write at its end. */
  write(data: string | Buffer): boolean {
    if (!this.batching) {
      this.batching = true;
      this.socket.cork();
      // setImmediate, not process.nextTick: the requests that socket events of this turn start must join.
      setImmediate(this.flush);
    }
    return this.socket.write(data);
  }

  /**
   * The socket drained: the requests whose writes filled it may go on. Not only one still being
   * written: a body whose last write filled the socket has paused its client's reading too, and
   * the client's next request waits for this (as without pipelining, connection.ts).
   */
  onDrain(): void {
    for (const t of this.tries) if (!t.finished && !t.abandoned) t.req.onUpstreamWritable();
  }

  /** Response bytes [0, n) of `buf`: each response to its request, the rest carried to the next. */
  onData(buf: Buffer, n: number): void {
    let start = 0;
    while (start < n && !this.closed) {
      const head = this.tries[0];
      if (head === undefined) {
        // Bytes nobody asked for: the upstream is broken; never reuse the connection.
        this.close();
        return;
      }
      this.readBuf = buf;
      this.readStart = start;
      this.readEnd = n;
      if (head.abandoned) this.executeHead();
      else head.req.runCorked(this.executeHead);
      this.readBuf = null;
      if (this.closed) return;
      if (this.parser.failed) {
        this.failAll(new ProxyError('upstream_protocol_error', `invalid response from ${this.at}: ${this.parser.error}`));
        return;
      }
      start += this.used;
      if (!this.parser.done) return;
      this.responseDone(head);
    }
  }

  /** The head's response completed (its request heard onEnd): on to the next, or idle, or closed. */
  private responseDone(head: PipelineTry): void {
    this.tries.shift();
    head.finished = true;
    head.answered = true;
    if (this.safeOnly && head.behind) this.host.pipelineProven();
    if (!this.parser.keepAlive) {
      this.refuseBehind();
      return;
    }
    if (!head.requestComplete) {
      // Answered before its body was sent whole (an early error response): nothing can follow it.
      this.close();
      return;
    }
    if (!this.headCounted) this.stall.sample(this.ticker.fresh() - this.headSince);
    this.host.resumeReading(); // a pause was for the client of the response just completed
    const next = this.tries[0];
    if (next === undefined) {
      this.host.pipelineIdle();
      return;
    }
    this.startHead(next);
    this.closeIfAbandoned();
    if (this.closed) return;
    if (this.deadline === 0 && this.watched) this.armRescue(); // a suspect head alone (suspect())
    this.host.pipelineSlot();
  }

  /**
   * A response with `Connection: close`: the server processed nothing after it (alpn.ts), so every
   * request behind it may be sent again whatever its method.
   */
  private refuseBehind(): void {
    const behind = this.tries.splice(0);
    this.close();
    if (behind.length > 0) this.host.pipelinePeerClosing();
    this.countLost(behind);
    const err = new ProxyError('upstream_reset', `${this.at} closed the connection after an earlier response; the request was not processed`);
    for (const t of behind) {
      t.unprocessed = true; // never a solo request: nothing is written behind one
      t.fail(err);
    }
  }

  /**
   * The connection failed (reset, TLS error, truncated or invalid response): the request being
   * answered hears `err`, as without pipelining; the ones behind it hear upstream_reset.
   */
  failAll(err: ProxyError): void {
    const tries = this.tries.splice(0);
    if (tries.length > 0) tries[0]!.answered = !this.parser.idleAtStart;
    this.close();
    const behindErr = new ProxyError('upstream_reset', `connection to ${this.at} failed with requests in flight`);
    for (let i = 0; i < tries.length; i++) {
      const t = tries[i]!;
      // The server works on pipelined requests concurrently: one behind a broken response may have
      // been processed, so it is no stale keep-alive (which the exchange resends once, whatever its
      // method); the route's retry policy decides by method.
      if (i > 0) t.reused = false;
      t.fail(i === 0 ? err : behindErr);
    }
  }

  /**
   * The server closed between two responses with requests in flight. An outrigger sidecar answers
   * every request it took before it closes (the last answer says Connection: close unless it was
   * out already when the server decided to stop: a drain, a reload), and drops what arrives after:
   * the unanswered ones were not processed and may be sent again whatever their method. (A server
   * worker that crashes closes too; its requests are the ones this cannot tell apart.) An app
   * promised nothing: when requests written behind others are among the unanswered, its unanswered
   * GETs and HEADs may be sent again as idempotent requests; a request alone in flight (whatever its
   * method) is left to the exchange's rule for a stale keep-alive connection, as without pipelining.
   */
  private dropAll(): void {
    const tries = this.tries.splice(0);
    this.close();
    this.host.pipelinePeerClosing();
    this.countLost(tries);
    const err = new ProxyError('upstream_reset', `${this.at} closed the connection before answering; the request was not processed`);
    // To an app, a close with requests written behind others unanswered may be its refusal of
    // pipelining (uWS.js answering after a timer): all those GETs go again. A request that was alone
    // in flight may instead be what the app failed on: the exchange's rule for a stale keep-alive decides.
    const resend = !this.safeOnly || tries.some((t) => t.behind);
    for (const t of tries) {
      t.unprocessed = resend && !t.solo;
      t.fail(err);
    }
  }

  /** To an app: a close that leaves requests written behind others unanswered counts against pipelining to it (pool.ts). */
  private countLost(unanswered: readonly PipelineTry[]): void {
    if (this.safeOnly && unanswered.some((t) => t.behind)) this.host.pipelineLost();
  }

  /** The upstream closed its side. */
  onEnd(): void {
    const head = this.tries[0];
    if (head === undefined) {
      this.close();
      return;
    }
    if (this.parser.idleAtStart) {
      this.dropAll();
      return;
    }
    if (this.parser.onEof()) {
      // An EOF-delimited body ended here (its request heard onEnd); the rest got no answer.
      this.tries.shift();
      head.finished = true;
      head.answered = true;
      this.dropAll();
      return;
    }
    this.failAll(new ProxyError('upstream_reset', `${this.at} closed the connection`));
  }

  /** `t` is abandoned (its client went away, a deadline): the requests around it go on where they can. */
  abandon(t: PipelineTry): void {
    if (t.finished || t.abandoned || this.closed) return;
    const i = this.tries.indexOf(t);
    if (i < 0) return;
    if (!t.written) {
      // Nothing of it was sent (it is the newest): as if it never came.
      this.tries.splice(i, 1);
      if (this.tries.length === 0) this.host.pipelineIdle();
      return;
    }
    if (!t.requestComplete) {
      // Half a request on the wire: the connection cannot be used again (nothing is behind it).
      this.tries.splice(i, 1);
      this.failAll(new ProxyError('upstream_reset', `connection to ${this.at} closed: a request in flight was abandoned`));
      return;
    }
    // Its response is read and dropped when it comes; the others keep their place.
    t.abandoned = true;
    if (i === 0) this.host.resumeReading();
    this.closeIfAbandoned();
  }

  /**
   * Nobody waits for any response in flight. When a client went away, close rather than read them
   * (they may be large, or never come). When all are the answers of moved requests, which usually
   * wait right behind (the server answered them while the head held them back), read them and keep
   * the connection, unless they do not end within the rescue limit either (rescueCheck closes it).
   */
  private closeIfAbandoned(): void {
    if (this.tries.length === 0 || !this.tries.every((t) => t.abandoned)) return;
    if (this.tries.every((t) => t.moved)) {
      if (this.deadline === 0) this.armRescue();
      return;
    }
    this.tries.length = 0;
    this.close();
  }

  /** A request was written whole: the connection may take the next one. */
  requestWritten(t: PipelineTry): void {
    if (!this.closed && !t.finished && t === this.tries[this.tries.length - 1]) this.host.pipelineSlot();
  }

  /** Whether no byte of t's response has arrived yet. */
  awaiting(t: PipelineTry): boolean {
    return t === this.tries[0] ? this.parser.idleAtStart : !t.answered;
  }

  /** Response backpressure belongs to the response being read. */
  pauseFor(t: PipelineTry): void {
    if (t === this.tries[0]) this.host.pauseReading();
  }

  resumeFor(t: PipelineTry): void {
    if (t === this.tries[0]) this.host.resumeReading();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.deadline !== 0) this.ticker.delete(this);
    this.host.pipelineClosed();
  }

  private get at(): string {
    return `${this.host.host}:${this.host.port}`;
  }
}

const PIPELINE_TRY_RARE = new RareFields(['abandoned', 'moved', 'unprocessed']);

/** One try on a pipelined connection: its channel, and the sink its response is parsed into. */
export class PipelineTry implements UpstreamChannel, ResponseSink {
  readonly unframedBody = false;
  /** Behind a `Connection: close` response: the server did not process it. */
  unprocessed = false;
  /** The request's last byte was written. */
  requestComplete = false;
  /** Its head was written. */
  written = false;
  /** Its response completed, or its try failed: it hears nothing more. */
  finished = false;
  /** Bytes of its response arrived (known once it is no longer the one being read). */
  answered = false;
  /** Dropped by its request: the response is read and discarded. */
  abandoned = false;
  /** Abandoned because the request was sent again elsewhere, behind a response that did not end (Pipeline.rescueBehind). */
  moved = false;

  constructor(
    private readonly pipe: Pipeline,
    readonly req: UpstreamRequest,
    /** Sent on a connection that had carried requests before it. */
    public reused: boolean,
    /** Alone on the connection: nothing is written behind it (PipelineHost.safeOnly). */
    readonly solo: boolean,
    /** Written behind another request in flight. */
    readonly behind: boolean,
  ) {
    // Stored to only when its client goes away, it is moved, or its server closes (jit.ts).
    PIPELINE_TRY_RARE.first(this);
  }

  sendHead(req: UpstreamRequest, complete: boolean): void {
    this.written = true;
    this.pipe.write(req.upstreamHead);
    if (complete) this.endRequest();
  }

  write(data: string | Buffer): boolean {
    return this.pipe.write(data);
  }

  endRequest(): void {
    if (this.requestComplete) return;
    this.requestComplete = true;
    this.pipe.requestWritten(this);
  }

  // The pipeline corks the socket for the whole loop turn already.
  cork(): void {}
  uncork(): void {}

  pauseReading(): void {
    this.pipe.pauseFor(this);
  }

  resumeReading(): void {
    this.pipe.resumeFor(this);
  }

  get awaitingResponse(): boolean {
    return this.pipe.awaiting(this);
  }

  destroy(): void {
    this.pipe.abandon(this);
  }

  /** Tells the request its try failed (once; not after it finished or was abandoned). */
  fail(err: ProxyError): void {
    if (this.finished || this.abandoned) return;
    this.finished = true;
    this.req.onUpstreamError(err, this);
  }

  // ---- ResponseSink: the parser's calls go to the request unless it abandoned the try ----

  onHead(status: number, reason: string, headers: string[], nonAscii: boolean, contentLength: number): void {
    if (!this.abandoned) this.req.onHead(status, reason, headers, nonAscii, contentLength);
  }

  onInformational(status: number, reason: string, headers: string[]): void {
    if (!this.abandoned) this.req.onInformational?.(status, reason, headers);
  }

  onBody(chunk: Buffer): void {
    if (!this.abandoned) this.req.onBody(chunk);
  }

  onEnd(trailers: string[] | null): void {
    if (!this.abandoned) this.req.onEnd(trailers);
  }
}

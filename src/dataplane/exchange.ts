// One proxied request: the only class that touches a uWS HttpResponse (STYLE.md item 8).
// It streams the client's body to the upstream connection and the upstream's response back,
// with backpressure both ways (uWS pause/resume/onWritable ↔ socket pause/resume/drain), turns
// failures into local replies before the response head has left and into an abrupt close after,
// and does the accounting exactly once.

import { performance } from 'node:perf_hooks';
import type { HttpResponse } from 'uWebSockets.js';
import { ProxyError } from '../errors.js';
import type { UpstreamConnection, UpstreamRequest } from '../upstream/connection.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { Ticker, Timed } from '../upstream/ticker.js';
import { writeLocalReply } from './local_reply.js';
import { BodyFraming, type RequestHead } from './request_head.js';

/** What an exchange reports to when it ends (the worker's stats and drain bookkeeping). */
export interface ExchangeObserver {
  onExchangeDone(ex: Exchange): void;
}

/** Client bytes held while no upstream connection is ready, before the client is paused. */
const MAX_PENDING_BODY = 256 * 1024;
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

export class Exchange implements UpstreamRequest, Timed {
  readonly isHead: boolean;
  deadline = 0;
  /** Response status for accounting; 0 = no complete response reached the client. */
  status = 0;
  /** The error that produced a local reply, if any. */
  error: ProxyError | null = null;
  /** performance.now() at the start, at the upstream's response head, and at the end (ms, fractional). */
  readonly startMs: number;
  upstreamHeadMs = 0;
  endMs = 0;
  bytesIn = 0;
  bytesOut = 0;

  private conn: UpstreamConnection | null = null;
  private aborted = false;
  private finished = false;
  private respStarted = false;
  private waiting = false;
  private retried = false;
  // request body
  private pending: Array<string | Buffer> | null = null;
  private pendingBytes = 0;
  private clientBodyDone: boolean;
  private clientPaused = false;
  // response body
  private lengthMode = false;
  private total = 0;
  /** Content-Length the upstream announced (reported as is for HEAD and 304), -1 when none. */
  private announcedLength = -1;
  private backlog: Buffer | null = null;
  private backlogOffset = 0;
  private readonly onWritableLength = (offset: number): boolean => this.flushBacklog(offset);
  private readonly onWritableChunked = (): boolean => {
    this.conn?.resumeReading();
    return true;
  };

  constructor(
    private readonly res: HttpResponse,
    readonly head: RequestHead,
    private readonly upstreamHead: string,
    readonly cluster: Cluster,
    readonly endpoint: Endpoint,
    readonly routeIndex: number,
    private readonly ticker: Ticker,
    private readonly observer: ExchangeObserver,
    timeoutMs: number,
  ) {
    this.isHead = head.method === 'HEAD';
    this.startMs = performance.now();
    this.clientBodyDone = head.framing === BodyFraming.None;
    res.onAborted(() => this.onClientAborted());
    if (!this.clientBodyDone) res.onData((chunk, isLast) => this.onClientData(chunk, isLast));
    if (timeoutMs > 0) {
      this.deadline = ticker.fresh() + timeoutMs;
      ticker.add(this);
    }
    cluster.active++;
    endpoint.active++;
    this.waiting = true;
    endpoint.pool.dispatch(this);
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
    if (this.clientBodyDone && this.pending === null) {
      conn.write(this.upstreamHead);
      conn.requestComplete = true;
      return;
    }
    conn.cork();
    conn.write(this.upstreamHead);
    let ok = true;
    if (this.pending !== null) {
      for (const part of this.pending) ok = conn.write(part);
      this.pending = null;
      this.pendingBytes = 0;
    }
    if (this.clientBodyDone) conn.requestComplete = true;
    conn.uncork();
    if (ok && this.clientPaused) this.resumeClient();
    else if (!ok) this.pauseClient();
  }

  onUpstreamWritable(): void {
    if (this.clientPaused) this.resumeClient();
  }

  runCorked(task: () => void): void {
    if (this.aborted) task();
    else this.res.cork(task);
  }

  onHead(status: number, reason: string, headers: string[], nonAscii: boolean, contentLength: number): void {
    if (this.aborted) return;
    this.respStarted = true;
    this.status = status;
    this.upstreamHeadMs = performance.now();
    if (this.deadline !== 0) {
      this.ticker.delete(this);
      this.deadline = 0;
    }
    const res = this.res;
    res.writeStatus(status === 200 && reason === 'OK' ? '200 OK' : `${status} ${reason}`);
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      switch (name) {
        case 'connection':
        case 'keep-alive':
        case 'transfer-encoding':
        case 'upgrade':
        case 'proxy-connection':
        case 'te':
        case 'trailer':
        case 'content-length': // uWS writes the framing itself
        case 'date': // uWS writes its own Date
          continue;
      }
      const value = headers[i + 1]!;
      res.writeHeader(name, nonAscii && /[\x80-\xff]/.test(value) ? Buffer.from(value, 'latin1') : value);
    }
    this.announcedLength = contentLength;
    if (contentLength >= 0 && !this.isHead && status !== 204 && status !== 304) {
      this.lengthMode = true;
      this.total = contentLength;
    }
  }

  onBody(chunk: Buffer): void {
    if (this.aborted) return;
    this.bytesOut += chunk.length;
    if (this.backlog !== null) {
      this.backlog = Buffer.concat([this.backlog, chunk]);
      return;
    }
    const res = this.res;
    if (this.lengthMode) {
      const before = res.getWriteOffset();
      const [ok] = res.tryEnd(chunk, this.total);
      if (!ok) {
        const written = res.getWriteOffset() - before;
        this.backlog = Buffer.from(chunk.subarray(written));
        this.backlogOffset = before + written;
        this.conn?.pauseReading();
        res.onWritable(this.onWritableLength);
      }
    } else if (!res.write(chunk)) {
      this.conn?.pauseReading();
      res.onWritable(this.onWritableChunked);
    }
  }

  onEnd(_trailers: string[] | null): void {
    // Trailers cannot be sent: this uWS build has no API for them (see README, "Limits").
    this.conn = null;
    if (this.aborted) return;
    const res = this.res;
    if (!this.respStarted) return;
    if (this.isHead || this.status === 204 || this.status === 304) {
      // Bodiless by method or status (not by Content-Length). Note: an explicit `undefined`
      // argument makes this uWS build write a bogus Content-Length; call without it.
      if (this.status !== 204 && this.announcedLength >= 0) res.endWithoutBody(this.announcedLength);
      else res.endWithoutBody();
    } else if (this.lengthMode) {
      if (this.total === 0) res.end();
      // else: the last tryEnd completed the response, or flushBacklog will.
    } else {
      res.end();
    }
    this.finish();
  }

  onUpstreamError(err: ProxyError, conn: UpstreamConnection | null): void {
    this.waiting = false;
    this.conn = null;
    if (this.finished || this.aborted) return;
    if (!this.respStarted) {
      // A pooled connection that the upstream closed just as we reused it: try once more on a
      // fresh one when nothing of the request body can have been lost.
      if (
        conn !== null &&
        conn.reused &&
        conn.awaitingResponse &&
        err.code === 'upstream_reset' &&
        this.head.framing === BodyFraming.None &&
        !this.retried
      ) {
        this.retried = true;
        this.waiting = true;
        this.endpoint.pool.dispatch(this);
        return;
      }
      this.reply(err.withContext(`cluster ${this.cluster.spec.name} endpoint ${this.endpoint.address}`));
      return;
    }
    // The head is out: a status code is no longer possible. Close abruptly so the truncation shows.
    this.status = 0;
    this.error = err;
    this.res.close();
    this.finish();
  }

  // ---- client side --------------------------------------------------------------------------

  private onClientData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.finished || this.aborted) return;
    let part: string | Buffer | null = null;
    if (ab.byteLength > 0) {
      const data = Buffer.from(ab.slice(0));
      this.bytesIn += data.length;
      if (this.head.framing === BodyFraming.Chunked) {
        // Re-frame: uWS has removed the client's chunking.
        this.send(data.length.toString(16) + CRLF);
        this.send(data);
        part = CRLF;
      } else {
        part = data;
      }
    }
    if (part !== null) this.send(part);
    if (isLast) {
      if (this.head.framing === BodyFraming.Chunked) this.send(LAST_CHUNK);
      this.clientBodyDone = true;
      if (this.conn !== null) this.conn.requestComplete = true;
    }
  }

  private send(part: string | Buffer): void {
    const conn = this.conn;
    if (conn !== null) {
      if (!conn.write(part)) this.pauseClient();
      return;
    }
    if (this.respStarted) return; // the upstream already answered and let go of the connection
    (this.pending ??= []).push(part);
    this.pendingBytes += part.length;
    if (this.pendingBytes > MAX_PENDING_BODY) this.pauseClient();
  }

  private pauseClient(): void {
    if (!this.clientPaused && !this.aborted) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  private resumeClient(): void {
    if (this.clientPaused && !this.aborted) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  private flushBacklog(offset: number): boolean {
    const backlog = this.backlog;
    if (backlog === null || this.aborted) return true;
    const [ok, done] = this.res.tryEnd(backlog.subarray(offset - this.backlogOffset), this.total);
    if (ok || done) {
      this.backlog = null;
      this.conn?.resumeReading();
      return true;
    }
    return false;
  }

  private onClientAborted(): void {
    this.aborted = true;
    if (this.conn !== null) {
      this.conn.destroy(); // the upstream sees the abort too
      this.conn = null;
    } else if (this.waiting) {
      this.endpoint.pool.cancel(this);
      this.waiting = false;
    }
    if (!this.finished) {
      if (!this.respStarted || this.backlog !== null || !this.lengthMode) this.status = 0;
      this.finish();
    }
  }

  /** Route timeout: only armed until the response head arrives. */
  onDeadline(): void {
    if (this.finished || this.aborted || this.respStarted) return;
    if (this.conn !== null) {
      this.conn.destroy();
      this.conn = null;
    } else if (this.waiting) {
      this.endpoint.pool.cancel(this);
      this.waiting = false;
    }
    this.reply(new ProxyError('timeout', `no response from cluster ${this.cluster.spec.name} endpoint ${this.endpoint.address} within the route timeout`));
  }

  private reply(err: ProxyError): void {
    this.error = err;
    this.status = err.status;
    const id = this.head.requestId;
    this.res.cork(() => writeLocalReply(this.res, err, id));
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.endMs = performance.now();
    if (this.deadline !== 0) this.ticker.delete(this);
    this.cluster.active--;
    this.endpoint.active--;
    this.observer.onExchangeDone(this);
  }
}

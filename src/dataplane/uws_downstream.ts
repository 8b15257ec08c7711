// The uWS side of an exchange: the one class that touches a uWS HttpResponse (STYLE.md item 8).
// Responses with a Content-Length go out with tryEnd (uWS writes the length) and, when the
// client is slow, keep the unwritten rest until onWritable; chunked responses use write().

import type { HttpResponse } from 'uWebSockets.js';
import type { ProxyError } from '../errors.js';
import { RareFields } from '../jit.js';
import type { Downstream, DownstreamEvents, ResponseHead } from './downstream.js';
import { dropResponseHeader } from './hop_by_hop.js';
import { localReply } from './local_reply.js';

const NON_ASCII = /[\x80-\xff]/;
const EMPTY = Buffer.alloc(0);

const UWS_DOWNSTREAM_RARE = new RareFields(['aborted', 'backlog', 'backlogOffset']);

export class UwsDownstream implements Downstream {
  private ex: DownstreamEvents | null = null;
  private aborted = false;
  private lengthMode = false;
  private bodiless = false;
  private total = 0;
  /** Whether any body byte was handed to uWS. */
  private started = false;
  private backlog: Buffer | null = null;
  private backlogOffset = 0;
  complete = false;

  constructor(
    private readonly res: HttpResponse,
    /** node.error_detail: full — callers see the detailed message. */
    private readonly detail: boolean,
  ) {
    // Stored to only when the client goes away or is slow (jit.ts).
    UWS_DOWNSTREAM_RARE.first(this);
  }

  attach(ex: DownstreamEvents, wantBody: boolean): void {
    this.ex = ex;
    this.res.onAborted(() => {
      this.aborted = true;
      ex.onClientAborted();
    });
    if (wantBody) {
      this.res.onData((ab, isLast) => ex.onClientData(ab.byteLength > 0 ? Buffer.from(ab.slice(0)) : null, isLast));
    }
  }

  cork(task: () => void): void {
    if (this.aborted) task();
    else this.res.cork(task);
  }

  writeHead(head: ResponseHead): void {
    if (this.aborted) return;
    const { status, reason, headers, connectionNamed, nonAscii, contentLength, bodiless } = head;
    const res = this.res;
    res.writeStatus(status === 200 && reason === 'OK' ? '200 OK' : `${status} ${reason}`);
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (dropResponseHeader(name, connectionNamed, false)) continue;
      const value = headers[i + 1]!;
      res.writeHeader(name, nonAscii && NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
    }
    this.bodiless = bodiless;
    if (bodiless) {
      // Report the length as a plain header: endWithoutBody(length) would make this uWS build
      // wait for `length` body bytes and then close the keep-alive connection.
      if (contentLength >= 0 && status !== 204) res.writeHeader('content-length', String(contentLength));
    } else if (contentLength >= 0) {
      this.lengthMode = true;
      this.total = contentLength;
    }
  }

  informational(): void {
    // This uWS build cannot send an interim response (see README, "Listener engines").
  }

  writeBody(chunk: Buffer): boolean {
    if (this.aborted) return true;
    if (this.backlog !== null) {
      this.backlog = Buffer.concat([this.backlog, chunk]);
      return false;
    }
    const res = this.res;
    if (this.lengthMode) {
      if (chunk.length === this.total && !this.started) {
        // The whole body in one piece (the common small response): end() writes it and the
        // length in one go, without tryEnd's bookkeeping.
        this.started = true;
        res.end(chunk);
        this.complete = true;
        return true;
      }
      this.started = true;
      const before = res.getWriteOffset();
      const [ok, done] = res.tryEnd(chunk, this.total);
      if (done) this.complete = true;
      if (!ok) {
        const written = res.getWriteOffset() - before;
        this.backlog = Buffer.from(chunk.subarray(written));
        this.backlogOffset = before + written;
        res.onWritable((offset) => this.flushBacklog(offset));
        return false;
      }
      return true;
    }
    if (!res.write(chunk)) {
      res.onWritable(() => {
        this.ex?.onDownstreamWritable();
        return true;
      });
      return false;
    }
    return true;
  }

  private flushBacklog(offset: number): boolean {
    const backlog = this.backlog;
    if (backlog === null || this.aborted) return true;
    const [ok, done] = this.res.tryEnd(backlog.subarray(offset - this.backlogOffset), this.total);
    if (done) this.complete = true;
    if (ok || done) {
      this.backlog = null;
      this.ex?.onDownstreamWritable();
      return true;
    }
    return false;
  }

  end(): void {
    // Trailers cannot be sent: this uWS build has no API for them (see README, "Limits").
    if (this.aborted) return;
    if (this.bodiless) {
      // Note: an explicit `undefined` argument makes this uWS build write a bogus Content-Length.
      this.res.endWithoutBody();
      this.complete = true;
    } else if (this.lengthMode) {
      if (this.total === 0) {
        this.res.end();
        this.complete = true;
      }
      // else: the last tryEnd completed the response, or flushBacklog will.
    } else {
      this.res.end();
      this.complete = true;
    }
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted) return;
    this.res.cork(() => writeLocalReply(this.res, err, requestId, this.detail));
    this.complete = true;
  }

  abort(): void {
    if (!this.aborted) {
      this.aborted = true;
      // A head whose body never started is still only partly written: finish it (uWS writes the
      // Content-Length with the first tryEnd), so the client sees a response cut short rather
      // than a malformed head.
      if (this.lengthMode && !this.started && this.total > 0) this.res.cork(() => this.res.tryEnd(EMPTY, this.total));
      this.res.close();
    }
  }

  pauseBody(): void {
    if (!this.aborted) this.res.pause();
  }

  resumeBody(): void {
    if (!this.aborted) this.res.resume();
  }
}

/** Writes a local reply (local_reply.ts renders it) on a uWS response. Must run inside a uWS handler or a res.cork() callback. */
export function writeLocalReply(res: HttpResponse, err: ProxyError, requestId: string | null, detail: boolean): void {
  const r = localReply(err, requestId, detail);
  res.writeStatus(`${r.status} ${r.reason}`);
  for (const [name, value] of r.headers) res.writeHeader(name, value);
  res.end(r.body, r.close);
}

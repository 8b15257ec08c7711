// The client side of one exchange on an HTTP/2 stream (node:http2 ServerHttp2Stream), whatever
// listener engine accepted the connection. The response goes out as HEADERS (status, the app's
// headers minus hop-by-hop and connection-specific ones, names already lower-case), DATA with
// backpressure (write() false → 'drain' → onDownstreamWritable; HTTP/2 flow control bounds what
// the session buffers) and, when the upstream sent trailers, a trailing HEADERS frame (gRPC needs
// them). The request body flows with flow control: pauseBody/resumeBody pause the stream, which
// stops WINDOW_UPDATEs. An abort resets the stream (RST_STREAM INTERNAL_ERROR).

import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream, type ServerStreamResponseOptions } from 'node:http2';
import type { ProxyError } from '../../errors.js';
import type { Downstream, DownstreamEvents, ResponseHead } from '../downstream.js';
import { dropResponseHeader, skipResponseHeader } from '../hop_by_hop.js';
import { isGrpcRequest } from '../../grpc/wire.js';
import { localReply } from '../local_reply.js';
import { httpDate } from '../h1/downstream.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** What a stream reports to its session (h2/server.ts): premature resets (rapid-reset protection), and ends still being sent. */
export interface H2StreamOwner {
  /** The stream closed; `premature`: the client reset it before its response was complete; `finished`: after streamFinishing. */
  streamClosed(premature: boolean, finished: boolean): void;
  /**
   * The exchange ended the response, but the stream is still sending its end (the trailers, or
   * the empty END_STREAM frame, wait for 'wantTrailers' a turn later): a drain must wait for its
   * close, or closing the session would cut the trailers off (gRPC's status). Balanced by streamClosed.
   */
  streamFinishing(): void;
  /** node.error_detail: full. */
  readonly detail: boolean;
}

export class H2Downstream implements Downstream {
  private ex: DownstreamEvents | null = null;
  private headSent = false;
  private done = false;
  private aborted = false;
  private trailers: readonly string[] | null = null;
  /** end() was called and the stream has not closed yet (H2StreamOwner.streamFinishing). */
  private finishing = false;

  constructor(
    readonly stream: ServerHttp2Stream,
    private readonly owner: H2StreamOwner,
    /** The request is HEAD: a local reply carries no body either. */
    private readonly isHead: boolean,
    /** The request's fields as node:http2 gave them (flat [name, value, ...]): read only for a local reply. */
    private readonly raw: readonly string[] = [],
  ) {
    stream.on('close', () => this.onClose());
    stream.on('error', noop); // 'close' follows
  }

  get complete(): boolean {
    return this.done;
  }

  private onClose(): void {
    const ex = this.ex;
    const premature = !this.done && !this.aborted;
    this.ex = null;
    this.owner.streamClosed(premature, this.finishing);
    this.finishing = false;
    if (premature) {
      this.aborted = true;
      ex?.onClientAborted();
    }
  }

  attach(ex: DownstreamEvents, wantBody: boolean): void {
    this.ex = ex;
    const s = this.stream;
    if (wantBody) {
      let trailers: string[] | null = null;
      s.on('trailers', (_h: unknown, _f: number, raw: string[]) => {
        trailers = raw;
      });
      s.on('data', (chunk: Buffer) => this.ex?.onClientData(chunk, false));
      s.on('end', () => this.ex?.onClientData(null, true, trailers));
    } else {
      s.resume(); // a body the framing does not forward (Content-Length: 0) is read and dropped
    }
  }

  cork(task: () => void): void {
    // node:http2 gathers the frames of one turn into one write by itself.
    task();
  }

  /** The interim 100 for `expect: 100-continue` (the proxy answers it itself, as on HTTP/1). */
  continue(): void {
    if (!this.headSent && !this.stream.destroyed) this.stream.additionalHeaders({ ':status': 100 });
  }

  informational(status: number, _reason: string, headers: readonly string[]): void {
    if (this.aborted || this.done || this.headSent || this.stream.destroyed) return;
    const h: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (skipResponseHeader(name) || name === 'http2-settings') continue;
      addHeader(h, name, headers[i + 1]!);
    }
    try {
      this.stream.additionalHeaders(h);
    } catch {
      // an interim response node refuses to encode is dropped (it is optional)
    }
  }

  writeHead(head: ResponseHead): void {
    if (this.aborted || this.done || this.headSent || this.stream.destroyed) return;
    const { status, headers, connectionNamed, contentLength, bodiless } = head;
    const h: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      // The app's Date and Trailer announcement are kept; connection-specific fields never go out (RFC 9113 §8.2.2).
      if (dropResponseHeader(name, connectionNamed, true) || name === 'http2-settings') continue;
      addHeader(h, name, headers[i + 1]!);
    }
    if (contentLength >= 0 && status !== 204 && status !== 304) h['content-length'] = String(contentLength);
    this.headSent = true;
    // Only a body without a length (chunked from the HTTP/1.1 upstream) can end with trailers: then
    // the end of the stream waits for 'wantTrailers' (the trailers, or an empty END_STREAM DATA frame).
    const trailing = !bodiless && contentLength < 0;
    try {
      this.stream.respond(h, respondOptions(bodiless, trailing));
    } catch {
      // A field node:http2 refuses to encode (a value with a byte HTTP/2 forbids): the response cannot be relayed.
      this.abort();
      return;
    }
    if (bodiless) this.done = true;
    else if (trailing) this.stream.once('wantTrailers', () => this.sendTrailers());
  }

  writeBody(chunk: Buffer): boolean {
    if (this.aborted || this.done || chunk.length === 0) return true;
    // The chunk is a view into the upstream's reused read buffer: node may keep it, so copy.
    if (this.stream.write(Buffer.from(chunk))) return true;
    this.stream.once('drain', () => this.ex?.onDownstreamWritable());
    return false;
  }

  end(trailers: readonly string[] | null): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.ex = null;
    this.trailers = trailers;
    if (this.stream.destroyed) return;
    if (!this.stream.closed) {
      this.finishing = true;
      this.owner.streamFinishing();
    }
    this.stream.end();
  }

  private sendTrailers(): void {
    const t = this.trailers;
    const h: OutgoingHttpHeaders = {};
    // The exchange left out the fields no trailer section may carry (hop_by_hop.ts forwardableTrailers).
    if (t !== null) for (let i = 0; i < t.length; i += 2) addHeader(h, t[i]!, t[i + 1]!);
    try {
      // No trailers: node ends the stream with an empty DATA frame instead.
      this.stream.sendTrailers(h);
    } catch {
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted || this.done || this.headSent || this.stream.destroyed) return;
    const grpc = this.isGrpc();
    const r = localReply(err, requestId, this.owner.detail, grpc);
    const h: OutgoingHttpHeaders = { ':status': r.status };
    for (const [name, value] of r.headers) h[name] = value;
    h['date'] = httpDate();
    if (grpc) {
      // Trailers-only (gRPC over HTTP/2): one HEADERS frame with END_STREAM carries the status.
      this.headSent = true;
      this.done = true;
      this.ex = null;
      this.stream.respond(h, respondOptions(true, false));
      return;
    }
    h['content-length'] = String(Buffer.byteLength(r.body));
    this.headSent = true;
    this.done = true;
    this.ex = null;
    // An HTTP/2 refusal concerns this stream only: the session goes on (nghttp2 has checked the framing).
    this.stream.respond(h, respondOptions(this.isHead, false));
    if (!this.isHead) this.stream.end(r.body);
  }

  /** The request is gRPC (content-type application/grpc*): its local replies take the gRPC shape. */
  private isGrpc(): boolean {
    return isGrpcRequest(this.raw);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.ex = null;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  pauseBody(): void {
    if (!this.done && !this.aborted) this.stream.pause();
  }

  resumeBody(): void {
    if (!this.done && !this.aborted) this.stream.resume();
  }
}

/** Repeated fields: set-cookie stays a list (one field each); others are joined with ", " (RFC 9110 §5.3). */
function addHeader(h: OutgoingHttpHeaders, name: string, value: string): void {
  const prev = h[name];
  if (prev === undefined) h[name] = value;
  else if (name === 'set-cookie') h[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  else h[name] = `${String(prev)}, ${value}`;
}

/** respond() options; `sendDate: false` (node:http2 honours it; @types/node lacks it): the app's Date is kept and none added. */
function respondOptions(endStream: boolean, waitForTrailers: boolean): ServerStreamResponseOptions {
  return { endStream, waitForTrailers, sendDate: false } as ServerStreamResponseOptions;
}

function noop(): void {}

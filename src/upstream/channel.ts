// The protocol-neutral seam between an exchange and whatever carries its tries upstream: an
// endpoint's pool of HTTP/1.1 connections (pool.ts, connection.ts) or of HTTP/2 sessions whose
// streams are the channels (h2_pool.ts). Each channel takes from the request what its protocol
// needs: HTTP/1 writes the prebuilt head bytes, HTTP/2 reads the structured fields.

import type { ProxyError } from '../errors.js';
import type { ResponseSink } from './response_parser.js';

/** One try's way to the upstream, once its pool hands one over. */
export interface UpstreamChannel {
  /**
   * Whether request bodies go on this channel as they are (HTTP/2: DATA frames, trailers apart)
   * or framed by the sender (HTTP/1: chunked re-framing, trailers in the last chunk).
   */
  readonly unframedBody: boolean;
  /** Sends the request head (`complete`: there is no body; the request ends with it). */
  sendHead(req: UpstreamRequest, complete: boolean): void;
  /** Request body bytes after the head; false = the upstream is slow: wait for onUpstreamWritable. */
  write(data: string | Buffer): boolean;
  /** Batch the following writes into one syscall until uncork(). */
  cork(): void;
  uncork(): void;
  /** The last request byte has been written (HTTP/2: ends the stream, with `trailers` when there are any). */
  endRequest(trailers: readonly string[] | null): void;
  /** Response backpressure. */
  pauseReading(): void;
  resumeReading(): void;
  /** Abandons the try: the upstream sees the request aborted. The request is not told. */
  destroy(): void;
  /** The channel served other requests before this one (a stale keep-alive can fail on first use). */
  readonly reused: boolean;
  /** No byte of the response has arrived yet. */
  readonly awaitingResponse: boolean;
  /**
   * The upstream declared the request unprocessed (HTTP/2 REFUSED_STREAM, or a stream above a
   * GOAWAY's last stream id): it may be sent again whatever its method. Also a `movable` request
   * that a pipelined connection gave up on, written behind a response that did not end (pipeline.ts):
   * sending it again is safe as for any GET or HEAD.
   */
  readonly unprocessed: boolean;
}

/** What an HTTP/2 channel reads from a request head (the exchange's RequestHead has these). */
export interface RequestLine {
  readonly method: string;
  /** Path plus `?query`. */
  readonly target: string;
}

/** What a request in flight hears from its channel (and the response parser behind it). */
export interface UpstreamRequest extends ResponseSink {
  /** The request head as HTTP/1 bytes (hop-by-hop fields removed, x-forwarded-* added). */
  readonly upstreamHead: string | Buffer;
  /** Method and target, structured. */
  readonly head: RequestLine;
  /** The channel is ready for this request's head and body. */
  onConnection(ch: UpstreamChannel): void;
  /** The channel failed before the response completed (ch null: it never opened). */
  onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void;
  /** The channel drained after a write returned false (request body backpressure). */
  onUpstreamWritable(): void;
  /** Whether this request is a HEAD (its response has no body whatever the headers say). */
  readonly isHead: boolean;
  /**
   * A GET or HEAD without a body: it may be pipelined to a plaintext upstream (pool.pipeline_plaintext).
   * Any other request goes alone on such a connection, so that no request whose method is not
   * idempotent is ever written behind another, nor another behind it.
   */
  readonly pipelinable: boolean;
  /**
   * A GET or HEAD without a body: written behind a response on a pipelined connection that does
   * not end (a long poll, an event stream), it is sent again on another connection (pipeline.ts).
   */
  readonly movable: boolean;
  /** Runs `task` with the client connection corked, so that head and body of one read leave in one syscall. */
  runCorked(task: () => void): void;
  /** A gRPC call's deadline (performance.now() ms; 0 or absent = none): an HTTP/2 stream sends what is left of it as grpc-timeout. */
  readonly grpcDeadlineMs?: number;
}

/** Where tries are sent: one endpoint's connections. */
export interface UpstreamTarget {
  /** Hands the request a channel when one is free (now, after connecting, or from the queue). */
  dispatch(req: UpstreamRequest): void;
  /** Withdraws a request still waiting for a channel. */
  cancel(req: UpstreamRequest): void;
}

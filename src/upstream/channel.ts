// The protocol-neutral seam between an exchange and whatever carries its tries upstream: an
// endpoint's pool of HTTP/1.1 connections today (pool.ts, connection.ts); HTTP/2 streams and raw
// TCP are further implementations of the same two interfaces.

import type { ProxyError } from '../errors.js';
import type { ResponseSink } from './response_parser.js';

/** One try's way to the upstream, once its pool hands one over. */
export interface UpstreamChannel {
  /** Request bytes (the head first); false = the upstream is slow: wait for onUpstreamWritable. */
  write(data: string | Buffer): boolean;
  /** Batch the following writes into one syscall until uncork(). */
  cork(): void;
  uncork(): void;
  /** Set when the last request byte has been written. */
  requestComplete: boolean;
  /** Response backpressure. */
  pauseReading(): void;
  resumeReading(): void;
  /** Abandons the try: the upstream sees the request aborted. The request is not told. */
  destroy(): void;
  /** The channel served other requests before this one (a stale keep-alive can fail on first use). */
  readonly reused: boolean;
  /** No byte of the response has arrived yet. */
  readonly awaitingResponse: boolean;
}

/** What a request in flight hears from its channel (and the response parser behind it). */
export interface UpstreamRequest extends ResponseSink {
  /** The channel is ready for this request's head and body. */
  onConnection(ch: UpstreamChannel): void;
  /** The channel failed before the response completed (ch null: it never opened). */
  onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void;
  /** The channel drained after a write returned false (request body backpressure). */
  onUpstreamWritable(): void;
  /** Whether this request is a HEAD (its response has no body whatever the headers say). */
  readonly isHead: boolean;
  /** Runs `task` with the client connection corked, so that head and body of one read leave in one syscall. */
  runCorked(task: () => void): void;
}

/** Where tries are sent: one endpoint's connections. */
export interface UpstreamTarget {
  /** Hands the request a channel when one is free (now, after connecting, or from the queue). */
  dispatch(req: UpstreamRequest): void;
  /** Withdraws a request still waiting for a channel. */
  cancel(req: UpstreamRequest): void;
}

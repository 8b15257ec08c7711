// The client side of an exchange, whatever serves it: uWS (plaintext listeners, the fast path)
// or node:http/node:https (inbound mTLS, where the peer certificate must be verified). The
// Exchange holds the proxy logic (tries, retries, deadlines, body replay, accounting) and talks to
// the client only through this interface.

import type { ProxyError } from '../errors.js';

/**
 * A response head as the exchange hands it to its downstream. The exchange itself carries these
 * fields (no object per response); read them during writeHead only.
 */
export interface ResponseHead {
  readonly status: number;
  readonly reason: string;
  /** Flat lower-case [name, value, ...] as the upstream sent them, latin1 values. */
  readonly headers: readonly string[];
  /**
   * Names the upstream's Connection header lists. The downstream skips what must not be forwarded
   * (hop_by_hop.ts `dropResponseHeader`): hop-by-hop names and these.
   */
  readonly connectionNamed: readonly string[] | null;
  /** Some header value has a byte above 0x7f. */
  readonly nonAscii: boolean;
  /** ≥ 0: a fixed-length body (or, when `bodiless`, the length a HEAD/304 reports); -1: no length. */
  readonly contentLength: number;
  /** No body follows, whatever the headers say (HEAD, 204, 304). */
  readonly bodiless: boolean;
}

/** What a downstream tells its exchange. */
export interface DownstreamEvents {
  /**
   * A piece of the request body (owned by the receiver); isLast marks the end, with the
   * request's trailers (flat [name, value, ...], latin1) where the engine delivers them.
   */
  onClientData(data: Buffer | null, isLast: boolean, trailers?: readonly string[] | null): void;
  /** The client went away before the response was complete. */
  onClientAborted(): void;
  /** The request body broke its framing (bad chunk): answer 400 if the head has not gone out, else close. */
  onClientFramingError(): void;
  /** The client drained what writeBody() could not send at once: resume the upstream. */
  onDownstreamWritable(): void;
}

export interface Downstream {
  /** Starts delivering events (request body, abort) to the exchange. Called once, synchronously, by the exchange's constructor. */
  attach(ex: DownstreamEvents, wantBody: boolean): void;
  /** Runs `task` with client writes batched (one syscall for head and first body bytes). */
  cork(task: () => void): void;
  /** The response's status line and headers (see ResponseHead). */
  writeHead(head: ResponseHead): void;
  /** An interim response (1xx other than 100 and 101) before the head; dropped where the engine cannot send it. */
  informational(status: number, reason: string, headers: readonly string[]): void;
  /** A body slice (a view, valid only during the call). False = the client is slow: pause the upstream until onDownstreamWritable. */
  writeBody(chunk: Buffer): boolean;
  /** The response is complete (trailers where the server side can send them). */
  end(trailers: readonly string[] | null): void;
  /** A local reply for an error before the head went out. */
  reply(err: ProxyError, requestId: string): void;
  /** Closes the client connection abruptly (a failure after the head went out). */
  abort(): void;
  /** Request body flow control. */
  pauseBody(): void;
  resumeBody(): void;
  /** Whether every response byte has been handed to the client connection. */
  readonly complete: boolean;
}

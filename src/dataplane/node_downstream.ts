// The node:http side of an exchange, for listeners on the `node` engine (Node's llhttp: every
// TLS listener, and plaintext listeners that ask for it). Node frames the response itself
// (Content-Length when known, chunked to HTTP/1.1 clients otherwise, close-delimited to HTTP/1.0
// ones), keeps pipelined responses in order, and, unlike uWS, sends trailers and 1xx responses.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyError } from '../errors.js';
import type { Downstream, DownstreamEvents, ResponseHead } from './downstream.js';
import { dropResponseHeader, informationalHead } from './hop_by_hop.js';
import { localReply } from './local_reply.js';

/** ServerResponse's raw writer (used by Node's own writeEarlyHints): queued in order behind earlier pipelined responses. */
interface RawWritable {
  _writeRaw(data: Buffer, encoding?: BufferEncoding, cb?: () => void): boolean;
}

/** `Connection: ..., upgrade, ...`: with an Upgrade header, llhttp stops reading the connection after the request. */
const UPGRADE_TOKEN = /(?:^|,)\s*upgrade\s*(?:,|$)/i;

/** Where a node response keeps its downstream (so a parser error can reach its exchange): a symbol, cheaper than a WeakMap per request. */
const kDownstream = Symbol('outrigger.downstream');

/** The exchange downstream of `res`, if one is attached. */
export function downstreamOf(res: ServerResponse): NodeDownstream | undefined {
  return (res as ServerResponse & { [kDownstream]?: NodeDownstream })[kDownstream];
}

export class NodeDownstream implements Downstream {
  private ex: DownstreamEvents | null = null;
  private aborted = false;
  private chunked = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    /** node.error_detail: full — callers see the detailed message. */
    private readonly detail: boolean,
  ) {
    res.sendDate = false;
    // An Upgrade request is served as plain HTTP (no tunnel): node stops reading the connection
    // after it, so the connection closes after this response rather than hang.
    if (req.headers.upgrade !== undefined && UPGRADE_TOKEN.test(req.headers.connection ?? '')) res.shouldKeepAlive = false;
  }

  /** Node's parser failed inside this request's body. */
  framingError(): void {
    this.ex?.onClientFramingError();
  }

  get complete(): boolean {
    return this.res.writableFinished;
  }

  attach(ex: DownstreamEvents, wantBody: boolean): void {
    this.ex = ex;
    (this.res as ServerResponse & { [kDownstream]?: NodeDownstream })[kDownstream] = this;
    this.res.on('close', () => {
      if (!this.res.writableFinished) {
        this.aborted = true;
        ex.onClientAborted();
      }
    });
    if (wantBody) {
      const req = this.req;
      req.on('data', (chunk: Buffer) => ex.onClientData(chunk, false));
      req.on('end', () => ex.onClientData(null, true, req.rawTrailers));
    } else if (!this.req.complete) {
      this.req.resume(); // a body we do not forward (framing says none) is read and dropped
    }
  }

  cork(task: () => void): void {
    if (this.aborted) {
      task();
      return;
    }
    this.res.cork();
    try {
      task();
    } finally {
      this.res.uncork();
    }
  }

  informational(status: number, reason: string, headers: readonly string[]): void {
    // RFC 9110 §15.2: never send a 1xx to an HTTP/1.0 client.
    if (this.aborted || this.res.headersSent || this.req.httpVersionMinor === 0) return;
    (this.res as unknown as RawWritable)._writeRaw(Buffer.from(informationalHead(status, reason, headers), 'latin1'));
  }

  writeHead(head: ResponseHead): void {
    if (this.aborted) return;
    const { status, reason, headers, connectionNamed, contentLength, bodiless } = head;
    const flat: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      // The app's Date is kept as sent (sendDate is off on this engine: no Date is added either);
      // so is its Trailer announcement (end to end: this engine sends the trailers).
      if (dropResponseHeader(name, connectionNamed, true)) continue;
      flat.push(name, headers[i + 1]!);
    }
    if (contentLength >= 0 && status !== 204) flat.push('content-length', String(contentLength));
    this.chunked = !bodiless && contentLength < 0 && this.req.httpVersionMinor !== 0;
    // Node writes header values as latin1, which restores the upstream's bytes exactly.
    this.res.writeHead(status, reason, flat);
  }

  writeBody(chunk: Buffer): boolean {
    if (this.aborted) return true;
    // The chunk is a view into a reused read buffer: node may keep it, so copy.
    if (this.res.write(Buffer.from(chunk))) return true;
    this.res.once('drain', () => this.ex?.onDownstreamWritable());
    return false;
  }

  end(trailers: readonly string[] | null): void {
    if (this.aborted) return;
    if (trailers !== null && trailers.length > 0 && this.chunked) {
      const t: Array<[string, string]> = [];
      for (let i = 0; i < trailers.length; i += 2) t.push([trailers[i]!, trailers[i + 1]!]);
      this.res.addTrailers(t);
    }
    this.res.end();
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted || this.res.headersSent) return;
    writeNodeLocalReply(this.res, err, requestId, this.detail);
  }

  abort(): void {
    if (!this.aborted) {
      this.aborted = true;
      // Node holds a head until the first body write: send it, so the client sees a response cut
      // short (as it would from the app) rather than a connection closed before any answer.
      if (this.res.headersSent && !this.res.writableEnded) this.res.flushHeaders();
      this.res.destroy();
    }
  }

  pauseBody(): void {
    this.req.pause();
  }

  resumeBody(): void {
    this.req.resume();
  }
}

/** A local reply (local_reply.ts renders it) on node:http. Malformed requests close the connection after it. */
export function writeNodeLocalReply(res: ServerResponse, err: ProxyError, requestId: string | null, detail: boolean): void {
  const r = localReply(err, requestId, detail);
  const flat: string[] = [];
  for (const [name, value] of r.headers) flat.push(name, value);
  flat.push('content-length', String(Buffer.byteLength(r.body)));
  if (r.close) flat.push('connection', 'close');
  res.sendDate = true; // our own response: dated like any server's
  res.writeHead(r.status, r.reason, flat);
  res.end(r.body);
}

// The client side of one exchange on the `strict` engine: writes the response to the H1Connection
// it belongs to. The head is held until the first body bytes (or the end) and leaves with them
// in one socket write; the body is framed by Content-Length when known, chunked to HTTP/1.1
// clients otherwise (trailers at its end), close-delimited to HTTP/1.0 clients. Header values are
// written as latin1, so obs-text reaches the client byte for byte; the app's Date is kept and
// none is added. One small object per request, so a late call from a finished exchange can never
// touch the next request on the connection.

import type { ProxyError } from '../../errors.js';
import type { Downstream, DownstreamEvents, ResponseHead } from '../downstream.js';
import { dropResponseHeader, informationalHead } from '../hop_by_hop.js';
import { localReply, localReplyBytes } from '../local_reply.js';
import type { H1Connection } from './connection.js';

let dateSecond = 0;
let dateText = '';
/** The IMF-fixdate of now, rendered once per second (local replies are dated like any server's). */
export function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

export class StrictDownstream implements Downstream {
  /** The exchange, until the response is complete (then null: nothing reaches it any more). */
  ex: DownstreamEvents | null = null;
  /** The client is slow: onDownstreamWritable at the connection's next 'drain'. */
  wantDrain = false;
  /** The response head, held until the first body bytes or the end. */
  private head: string | null = null;
  private headSent = false;
  private chunked = false;
  private bodiless = false;
  private done = false;
  private aborted = false;

  constructor(
    readonly conn: H1Connection,
    /** The request is HEAD: a local reply carries no body either. */
    private readonly isHead: boolean,
  ) {}

  get complete(): boolean {
    return this.done;
  }

  attach(ex: DownstreamEvents): void {
    // The connection delivers the body the framing announced (none when there is none).
    this.ex = ex;
  }

  cork(task: () => void): void {
    if (this.aborted || this.done) {
      task();
      return;
    }
    const s = this.conn.socket;
    s.cork();
    try {
      task();
    } finally {
      s.uncork();
    }
  }

  informational(status: number, reason: string, headers: readonly string[]): void {
    // RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client, nor after the final head.
    if (this.aborted || this.done || this.headSent || this.head !== null || this.conn.minor === 0) return;
    this.conn.writeText(informationalHead(status, reason, headers));
  }

  writeHead(head: ResponseHead): void {
    if (this.aborted || this.done || this.headSent || this.head !== null) return;
    const { status, reason, headers, connectionNamed, contentLength, bodiless } = head;
    const conn = this.conn;
    let h = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      // The app's Date and Trailer announcement are kept (this engine sends trailers).
      if (dropResponseHeader(name, connectionNamed, true)) continue;
      h += `${name}: ${headers[i + 1]!}\r\n`;
    }
    this.bodiless = bodiless;
    if (contentLength >= 0 && status !== 204) {
      h += `content-length: ${contentLength}\r\n`;
    } else if (!bodiless) {
      if (conn.minor === 1) {
        h += 'transfer-encoding: chunked\r\n';
        this.chunked = true;
      } else {
        conn.keepAlive = false; // HTTP/1.0 without a length: the close delimits the body
      }
    }
    if (conn.draining) conn.keepAlive = false;
    if (!conn.keepAlive) h += 'connection: close\r\n';
    else if (conn.minor === 0) h += 'connection: keep-alive\r\n';
    this.head = h + '\r\n';
  }

  writeBody(chunk: Buffer): boolean {
    const n = chunk.length;
    if (this.aborted || this.done || this.bodiless || n === 0) return true;
    const head = this.head;
    const hl = head === null ? 0 : head.length;
    let out: Buffer;
    // One buffer per write: the head (first time), the chunk framing and a copy of the data
    // (the chunk is a view into the upstream's reused read buffer).
    if (this.chunked) {
      const size = n.toString(16);
      out = Buffer.allocUnsafe(hl + size.length + n + 4);
      let o = head === null ? 0 : out.write(head, 0, 'latin1');
      o += out.write(size, o, 'latin1');
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      o += chunk.copy(out, o);
      out[o++] = 0x0d;
      out[o] = 0x0a;
    } else {
      out = Buffer.allocUnsafe(hl + n);
      if (head !== null) out.write(head, 0, 'latin1');
      chunk.copy(out, hl);
    }
    this.head = null;
    this.headSent = true;
    if (this.conn.write(out)) return true;
    this.wantDrain = true;
    return false;
  }

  end(trailers: readonly string[] | null): void {
    if (this.aborted || this.done) return;
    let tail = '';
    if (this.chunked) {
      tail = '0\r\n';
      if (trailers !== null) for (let i = 0; i < trailers.length; i += 2) tail += `${trailers[i]!}: ${trailers[i + 1]!}\r\n`;
      tail += '\r\n';
    }
    const out = this.head === null ? tail : this.head + tail;
    this.head = null;
    this.headSent = true;
    if (out.length > 0) this.conn.writeText(out);
    this.finished();
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted || this.done || this.headSent || this.head !== null) return;
    const r = localReply(err, requestId, this.conn.detail);
    if (r.close || this.conn.minor === 0) this.conn.keepAlive = false;
    // A reply to HEAD has the head only (its Content-Length says what a GET would get).
    this.conn.writeLocalReply(localReplyBytes(r, httpDate(), !this.conn.keepAlive), !this.isHead);
    this.headSent = true;
    this.finished();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.ex = null;
    // A held head goes out first, so the client sees a response cut short (as from the app).
    if (this.head !== null) this.conn.writeText(this.head);
    this.head = null;
    this.conn.destroy();
  }

  pauseBody(): void {
    if (!this.done && !this.aborted) this.conn.pauseBody(this);
  }

  resumeBody(): void {
    if (!this.done && !this.aborted) this.conn.resumeBody(this);
  }

  private finished(): void {
    this.done = true;
    this.ex = null;
    this.wantDrain = false;
    this.conn.responseEnded(this);
  }
}

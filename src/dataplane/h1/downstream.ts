// The client side of one exchange on the `strict` engine: writes the response to the H1Connection
// it belongs to. The head is held until the first body bytes (or the end) and leaves with them
// in one socket write; the body is framed by Content-Length when known, chunked to HTTP/1.1
// clients otherwise (trailers at its end), close-delimited to HTTP/1.0 clients. Header values are
// written as latin1, so obs-text reaches the client byte for byte; the app's Date is kept and
// none is added. One small object per request, so a late call from a finished exchange can never
// touch the next request on the connection. On a pipelined connection (response_order.ts) a
// response behind another holds its bytes here, up to HOLD_BYTES, until it reaches the head.

import type { ProxyError } from '../../errors.js';
import { RareFields } from '../../jit.js';
import type { Downstream, DownstreamEvents, ResponseHead } from '../downstream.js';
import { dropResponseHeader, informationalHead } from '../hop_by_hop.js';
import { localReply, localReplyBytes } from '../local_reply.js';
import type { H1Connection } from './connection.js';
import { imfFixdate } from '../../time.js';

/**
 * What a pipelined response waiting behind another holds in memory before its writes report a
 * slow client (the exchange then pauses its upstream until the response reaches the head).
 */
export const HOLD_BYTES = 64 * 1024;

let dateSecond = 0;
let dateText = '';
/** The IMF-fixdate of now, rendered once per second (local replies are dated like any server's). */
export function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = imfFixdate(now);
  }
  return dateText;
}

const STRICT_DOWNSTREAM_RARE = new RareFields(['aborted', 'chunked', 'held']);

export class StrictDownstream implements Downstream {
  /** The exchange, until the response is complete (then null: nothing reaches it any more). */
  ex: DownstreamEvents | null = null;
  /** The client is slow: onDownstreamWritable at the connection's next 'drain'. */
  wantDrain = false;
  /** Pipelined and behind another response: its bytes so far, written when it reaches the head; null: written at once. */
  private held: Buffer[] | null = null;
  private heldBytes = 0;
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
    /** HTTP minor version of the request (0 or 1). */
    readonly minor: number,
  ) {
    // Stored to only when the client goes away, the response is chunked, or it waits behind another (jit.ts).
    STRICT_DOWNSTREAM_RARE.first(this);
  }

  get complete(): boolean {
    return this.done;
  }

  /** The response failed after its head went out: the connection closes once it is this response's turn to write. */
  get cutShort(): boolean {
    return this.aborted;
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
    if (this.aborted || this.done || this.headSent || this.head !== null || this.minor === 0) return;
    this.sendText(informationalHead(status, reason, headers));
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
      if (this.minor === 1) {
        h += 'transfer-encoding: chunked\r\n';
        this.chunked = true;
      } else {
        conn.keepAlive = false; // HTTP/1.0 without a length: the close delimits the body
      }
    }
    if (conn.draining) conn.keepAlive = false;
    if (conn.closesAfter(this)) h += 'connection: close\r\n';
    else if (this.minor === 0) h += 'connection: keep-alive\r\n';
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
    if (this.held === null ? this.conn.write(out) : this.hold(out)) return true;
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
    if (out.length > 0) this.sendText(out);
    this.finished();
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted || this.done || this.headSent || this.head !== null) return;
    const conn = this.conn;
    const r = localReply(err, requestId, conn.detail);
    if (r.close || this.minor === 0) conn.keepAlive = false;
    // A reply to HEAD has the head only (its Content-Length says what a GET would get).
    const text = localReplyBytes(r, httpDate(), conn.closesAfter(this));
    if (this.held === null) conn.writeLocalReply(text, !this.isHead);
    else this.holdLocalReply(text, !this.isHead);
    this.headSent = true;
    this.finished();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.ex = null;
    // A held head goes out first, so the client sees a response cut short (as from the app).
    if (this.head !== null) this.sendText(this.head);
    this.head = null;
    this.conn.responseAborted(this);
  }

  pauseBody(): void {
    if (!this.done && !this.aborted) this.conn.pauseBody(this);
  }

  resumeBody(): void {
    if (!this.done && !this.aborted) this.conn.resumeBody(this);
  }

  // ---- pipelined connections (response_order.ts) -------------------------------------------

  /** Queued behind another response: what it writes is held until promote(). */
  holdOutput(): void {
    this.held = [];
  }

  /**
   * This response reached the head: what it held goes to the socket and it writes directly from
   * now on. An exchange that was told to wait (its writes past HOLD_BYTES) hears it may go on,
   * at once if the socket took the bytes, else at the socket's 'drain'.
   */
  promote(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.heldBytes = 0;
    let writable = true;
    for (const b of held) writable = this.conn.write(b);
    if (writable && this.wantDrain) process.nextTick(writableAgain, this);
  }

  /** @internal (process.nextTick target) */
  resumeWriting(): void {
    if (!this.wantDrain || this.held !== null) return;
    this.wantDrain = false;
    this.ex?.onDownstreamWritable();
  }

  /** Holds `data`; false past HOLD_BYTES (the client is "slow" until this response reaches the head). */
  private hold(data: Buffer): boolean {
    this.held!.push(data);
    this.heldBytes += data.length;
    return this.heldBytes < HOLD_BYTES;
  }

  /** Latin1 text (a head, chunk framing, an interim response) to the socket or held. */
  private sendText(text: string): void {
    if (this.held === null) this.conn.writeText(text);
    else this.hold(Buffer.from(text, 'latin1'));
  }

  /** A rendered local reply held as H1Connection.writeLocalReply would write it (head latin1, body UTF-8). */
  private holdLocalReply(text: string, withBody: boolean): void {
    const at = text.indexOf('\r\n\r\n') + 4;
    this.hold(Buffer.from(text.slice(0, at), 'latin1'));
    if (withBody) this.hold(Buffer.from(text.slice(at), 'utf8'));
  }

  private finished(): void {
    this.done = true;
    this.ex = null;
    this.wantDrain = false;
    this.conn.responseEnded(this);
  }
}

function writableAgain(down: StrictDownstream): void {
  down.resumeWriting();
}

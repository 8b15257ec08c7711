// One client connection of the `strict` engine (a net.Socket or a verified tls.TLSSocket): the
// HTTP/1.1 request loop. Requests are handled one at a time, in order: the next head is parsed
// only once the previous response is complete and its body read (pipelined bytes wait in `buf`),
// so each request is forwarded exactly once and a refusal always comes after the responses
// before it. A malformed head is answered 400 (431 oversize, 408 slow) and the connection closes:
// no byte after it is parsed. Timeouts are one deadline per connection on the worker's ticker.
//
// Pipelined (a client sidecar that chose ALPN PIPELINE_ALPN, see src/net/alpn.ts): the next head
// is parsed as soon as the previous request's body is complete, up to MAX_IN_FLIGHT requests
// in flight, and the responses leave in request order (response_order.ts), the writes of one loop
// turn in one socket write. Once the connection must stop (drain, Connection: close, a refused
// head, an HTTP/1.0 request, the client's FIN), no head is handed to the host any more: the
// requests already handed are answered, the last of them with Connection: close, then the
// connection closes (bytes arriving meanwhile are dropped), and the client sends again what it
// wrote after that response.
//
// Connections (plaintext ones, and TLS ones after node:tls's handshake) read into one buffer per
// thread (READ_BUFFER, src/net/user_buffer.ts): the bytes of a read are a view of it until the
// next read of any connection, so whatever the loop keeps or hands on past the read (`buf`, body
// pieces, the bytes after an upgrade's head) is copied first (`own`). Most requests are a whole
// head in one read and keep nothing.

import type { Socket } from 'node:net';
import { readIntoBuffer, readsAsDataEvents, redirectReads } from '../../net/user_buffer.js';
import { ProxyError } from '../../errors.js';
import { RareFields } from '../../jit.js';
import type { Ticker, Timed } from '../../upstream/ticker.js';
import { localReply, localReplyBytes } from '../local_reply.js';
import { BodyFraming, refusalRequestId } from '../request_head.js';
import { ChunkedDecoder, type ChunkSink } from './chunked.js';
import { httpDate, StrictDownstream } from './downstream.js';
import { emptyHead, HeadError, parseHead, parseRequestLine, type ParsedHead } from './parse.js';
import { ResponseOrder } from './response_order.js';

/** Per-listener limits, updated in place on reload. */
export interface H1Settings {
  maxHeadBytes: number;
  headersMs: number;
  bodyIdleMs: number;
  keepaliveIdleMs: number;
  /** node.error_detail: full. */
  detail: boolean;
}

/** What a connection needs from its listener. */
export interface H1Host {
  readonly settings: H1Settings;
  readonly ticker: Ticker;
  /**
   * A parsed head: the host answers it through `down` (an exchange or a local reply) and, once it
   * has judged the framing, says what body follows with `conn.expectBody()`.
   */
  request(down: StrictDownstream, head: ParsedHead): void;
  /** A head the parser refused, or a slow head (stats, access log), answered with `requestId`. */
  refused(err: ProxyError, requestId: string): void;
  closed(conn: H1Connection): void;
}

/** Declared in the order of a connection's life: `>= Finishing` parses no head, `>= Closing` reads nothing. */
const enum St {
  /** Between requests: waiting for the first byte of the next head. */
  Idle,
  /** Part of a head has arrived. */
  Head,
  /** A request is being served (its body and/or its response; pipelined: its body). */
  Active,
  /** Pipelined: no head is parsed any more; the responses owed are being written, bytes received are dropped. */
  Finishing,
  /** The last bytes are being written; nothing more is read. */
  Closing,
  Closed,
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** A partial request line is checked as it arrives while it is shorter than this. */
const EARLY_LINE_CHECK = 1024;
/** A client that does not close after our FIN is dropped after this. */
const LINGER_MS = 2000;
/** Where connections' reads land (one per thread; 64 KiB, as libuv reads by default). */
export const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/** How a connection gets its bytes. */
export const enum Reads {
  /** 'data' events (where reading into READ_BUFFER is not possible). */
  Events,
  /** Start reading into READ_BUFFER (a socket accepted paused, not read yet). */
  Buffer,
  /** The socket reads into READ_BUFFER already (the preface check, or the server after a TLS handshake, set it up): take its reads over. */
  Redirect,
}

const H1_CONNECTION_RARE = new RareFields(['peerEnded', 'draining']);

export class H1Connection implements Timed, ChunkSink {
  deadline = 0;
  private armed = false;
  /** Whether the connection stays open after the current response (pipelined: whether another head is read). */
  keepAlive = true;
  /** Listener stopping: close after the current response. */
  draining = false;
  /** A request head has been handed on: the connection is no longer fresh (drain()). */
  private served = false;
  readonly detail: boolean;

  private st = St.Idle;
  /** Bytes received and not consumed yet (a partial head, body bytes, pipelined requests). */
  private buf: Buffer | null = null;
  /** A buffer of our own that `buf` may view (see append). */
  private store: Buffer | null = null;
  /** How much of `buf` was searched for the end of the head already. */
  private scanned = 0;
  private lineChecked = false;
  private readonly head: ParsedHead = emptyHead();
  private down: StrictDownstream | null = null;
  private framingKnown = false;
  private framing = BodyFraming.None;
  private bodyLeft = 0;
  private bodyDone = true;
  private responseDone = false;
  private chunked: ChunkedDecoder | null = null;
  private bodyPaused = false;
  private readPaused = false;
  private pumping = false;
  /** The client half-closed: serve what it sent, then close. */
  private peerEnded = false;
  private readonly stopBody = (): boolean => this.bodyPaused && !this.responseDone;
  // The socket listeners, kept so that detach() can remove exactly these.
  private readonly dataListener = (chunk: Buffer): void => this.onData(chunk);
  private readonly readListener = (n: number, b: Buffer): void => this.onData(b.subarray(0, n));
  /** Reads land in READ_BUFFER (see the top of the file). */
  private readonly shared: boolean;
  private readonly endListener = (): void => this.onEnd();
  private readonly closeListener = (): void => this.onClose();
  private readonly drainListener = (): void => this.onDrain();
  /** Pipelined: the requests handed to the host whose responses are not all written; else null. */
  private readonly order: ResponseOrder | null;
  /** Pipelined: the socket is corked until the end of this loop turn. */
  private corked = false;
  private readonly uncorkTurn = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(
    readonly socket: Socket,
    private readonly host: H1Host,
    /** The peer's SPIFFE ID (mTLS listeners), else null. */
    readonly peer: string | null,
    /** The client sidecar chose PIPELINE_ALPN (only ever selected on mTLS listeners). */
    pipelined = false,
    reads = Reads.Events,
  ) {
    this.detail = host.settings.detail;
    this.order = pipelined ? new ResponseOrder() : null;
    if (reads === Reads.Redirect) redirectReads(socket, this.readListener);
    this.shared = reads === Reads.Redirect || (reads === Reads.Buffer && readIntoBuffer(socket, READ_BUFFER, this.readListener));
    if (!this.shared) {
      socket.on('data', this.dataListener);
      if (reads === Reads.Buffer) socket.resume(); // accepted paused
    }
    socket.on('end', this.endListener);
    socket.on('close', this.closeListener);
    socket.on('drain', this.drainListener);
    socket.on('error', noop); // 'close' follows
    this.arm(host.settings.headersMs);
    // Flags only a client's half-close or a drain sets (jit.ts).
    H1_CONNECTION_RARE.first(this);
  }

  /**
   * Sets the connection's one deadline `ms` from now. A later deadline needs no re-arming (the
   * ticker re-files it when the old one comes); an earlier one, or after firing, does.
   */
  private arm(ms: number): void {
    const d = this.host.ticker.now + ms;
    const rearm = !this.armed || d < this.deadline;
    this.deadline = d;
    if (rearm) {
      this.armed = true;
      this.host.ticker.add(this);
    }
  }

  /** The client's address (x-forwarded-for), read once per connection. */
  get remote(): string {
    return (this.remoteAddress ??= this.socket.remoteAddress ?? '');
  }
  private remoteAddress: string | null = null;

  // ---- reading ----------------------------------------------------------------------------

  /** Bytes read (with Reads.Redirect, the server hands the first read here). */
  onData(chunk: Buffer): void {
    if (this.st >= St.Finishing) return; // after a refusal nothing is parsed
    if (this.st === St.Active) this.arm(this.host.settings.bodyIdleMs);
    this.append(chunk);
    this.pump();
    // What is left unparsed outlives this read.
    if (this.shared && this.buf !== null) this.buf = this.own(this.buf);
  }

  /** `b`, or a copy of it when it views READ_BUFFER (the next read overwrites that). */
  private own(b: Buffer): Buffer {
    return this.shared && b.buffer === READ_BUFFER.buffer ? Buffer.from(b) : b;
  }

  /**
   * Adds received bytes to `buf`. Usually `buf` is empty and the chunk is used as it is; a head
   * arriving in many small pieces grows one buffer of our own (capacity doubling, so a head
   * trickled byte by byte costs linear, not quadratic, copying).
   */
  private append(chunk: Buffer): void {
    const b = this.buf;
    if (b === null) {
      this.buf = chunk;
      this.store = null;
      return;
    }
    const need = b.length + chunk.length;
    const store = this.store;
    if (store !== null && b.buffer === store.buffer) {
      // `buf` is the written tail of `store` (bytes are consumed from the front only).
      const start = b.byteOffset - store.byteOffset;
      if (start + need <= store.length) {
        chunk.copy(store, start + b.length);
        this.buf = store.subarray(start, start + need);
        return;
      }
    }
    // Never a pooled buffer: bytes are written past the end of what `buf` views.
    const s = Buffer.allocUnsafeSlow(Math.max(need, 2 * b.length, 4096));
    b.copy(s, 0);
    chunk.copy(s, b.length);
    this.store = s;
    this.buf = s.subarray(0, need);
  }

  /** Runs the request loop over the buffered bytes as far as it can go. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const st = this.st;
        if (st === St.Idle || st === St.Head) {
          if (this.order !== null && !this.mayReadHead(this.order)) break;
          if (!this.readHead()) break;
        } else if (st === St.Active) {
          if (this.responseDone && !this.keepAlive) {
            if (this.order === null) this.closeAfterWrites();
            else this.finish();
            break;
          }
          if (!this.bodyDone) {
            if (this.buf === null || this.stopBody()) break;
            this.readBody();
            if (!this.bodyDone) break;
            if (this.st !== St.Active) break;
          }
          if (this.order !== null) {
            // The body is complete: the next head is read while this response is on its way.
            if (this.keepAlive) this.readIn(St.Idle, this.order.size > 0 ? this.host.settings.bodyIdleMs : this.host.settings.keepaliveIdleMs);
            else this.finish();
            continue;
          }
          if (!this.responseDone) {
            // Pipelined bytes wait until this response is complete; stop reading past a bound.
            if (this.buf !== null && this.buf.length > this.host.settings.maxHeadBytes && !this.readPaused) {
              this.readPaused = true;
              this.socket.pause();
            }
            break;
          }
          if (this.keepAlive) this.readIn(St.Idle, this.host.settings.keepaliveIdleMs);
          else this.closeAfterWrites();
        } else {
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
    if (this.peerEnded) this.afterPeerEnd();
  }

  /** After the client's FIN: close once no complete request is left to serve. */
  private afterPeerEnd(): void {
    const st = this.st;
    if (st === St.Idle || st === St.Head) {
      if (this.order === null) this.closeAfterWrites();
      else if (!this.order.full) this.finish(); // a full order leaves complete heads in `buf` for later
    } else if (st === St.Active && !this.bodyDone && (this.buf === null || !this.stopBody())) this.destroy(); // the body can never complete
  }

  /** Reads a head from `buf`; true when a request started (or the connection is closing). */
  private readHead(): boolean {
    let b = this.buf;
    if (b === null) return false;
    if (this.scanned === 0) {
      // RFC 9112 §2.2: empty lines before a request line are ignored.
      let p = 0;
      while (p + 1 < b.length && b[p] === 0x0d && b[p + 1] === 0x0a) p += 2;
      if (p > 0) {
        b = p === b.length ? null : b.subarray(p);
        this.buf = b;
        if (b === null) return false;
      }
    }
    const settings = this.host.settings;
    const first = this.st === St.Idle;
    this.st = St.Head;
    const end = b.indexOf(CRLFCRLF, this.scanned > 3 ? this.scanned - 3 : 0);
    if (end < 0) {
      // Not complete: the head has headers_ms from its first bytes to arrive whole (one that
      // arrives whole needs no deadline of its own, and its request's comes at once: no re-arm
      // per request). Refuse now what can never become a valid head.
      if (first) this.arm(settings.headersMs);
      for (let i = b.indexOf(0x0a, this.scanned); i >= 0; i = b.indexOf(0x0a, i + 1)) {
        if (i === 0 || b[i - 1] !== 0x0d) return this.refuse(new ProxyError('bad_request', 'bare LF in the request head'));
      }
      if (!this.lineChecked) {
        const crlf = b.indexOf(0x0a);
        if (crlf >= 0 || b.length <= EARLY_LINE_CHECK) {
          const r = parseRequestLine(b.toString('latin1', 0, crlf >= 0 ? crlf + 1 : b.length), this.head);
          if (r < 0) return this.refuse(new ProxyError('bad_request', 'malformed request line'));
          if (crlf >= 0) this.lineChecked = true;
        }
      }
      if (b.length > settings.maxHeadBytes)
        return this.refuse(new ProxyError('headers_too_large', `request head is larger than ${settings.maxHeadBytes} bytes`));
      this.scanned = b.length;
      return false;
    }
    const len = end + 4;
    if (len > settings.maxHeadBytes) return this.refuse(new ProxyError('headers_too_large', `request head is larger than ${settings.maxHeadBytes} bytes`));
    const head = this.head;
    const e = parseHead(b.toString('latin1', 0, len), head);
    this.buf = len < b.length ? b.subarray(len) : null;
    this.scanned = 0;
    this.lineChecked = false;
    if (e !== HeadError.None) return this.refuse(new ProxyError('bad_request', `malformed request head (${headErrorText(e)})`));
    this.startRequest(head);
    return true;
  }

  private startRequest(head: ParsedHead): void {
    this.st = St.Active;
    this.served = true;
    this.arm(this.host.settings.bodyIdleMs);
    // HTTP/1.1 persists unless closed; HTTP/1.0 only when asked (and the length is known, see
    // the downstream). An Upgrade request the host does not tunnel (detach(): h2c, say) is
    // served as plain HTTP, then the connection closes.
    this.keepAlive = !this.draining && (head.minor === 1 ? !head.close : head.keepAlive) && !(head.upgrade && head.connectionUpgrade);
    const order = this.order;
    if (order !== null) {
      // Pipelined, an HTTP/1.0 request is the last one (its response may be close-delimited),
      // and the socket can leave the loop for a tunnel only when no response before it is owed.
      if (head.minor === 0) this.keepAlive = false;
      if (order.size > 0) head.connectionUpgrade = false;
    }
    this.responseDone = false;
    this.bodyDone = false;
    this.framingKnown = false;
    this.bodyPaused = false;
    if (head.method === 'CONNECT') {
      this.refuse(new ProxyError('bad_request', 'CONNECT is not offered'));
      return;
    }
    const down = new StrictDownstream(this, head.method === 'HEAD', head.minor);
    this.down = down;
    order?.add(down);
    // As node:http does: the interim answer to Expect: 100-continue goes out at once (pipelined: in its turn).
    if (head.expectContinue && head.minor === 1) {
      if (order === null) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      else down.informational(100, 'Continue', []);
    }
    this.host.request(down, head);
    if (!this.framingKnown && this.st === St.Active) {
      // The host refused the head before judging its framing: its reply closes the connection.
      this.keepAlive = false;
      this.bodyDone = true;
    }
  }

  /** The request's body framing, as request_head.ts judged it (called by the host). */
  expectBody(framing: BodyFraming, contentLength: number): void {
    this.framingKnown = true;
    this.framing = framing;
    if (framing === BodyFraming.Length) {
      this.bodyLeft = contentLength;
      this.bodyDone = contentLength <= 0;
    } else if (framing === BodyFraming.Chunked) {
      (this.chunked ??= new ChunkedDecoder(this.host.settings.maxHeadBytes)).reset();
      this.bodyDone = false;
    } else {
      this.bodyDone = true;
    }
  }

  private readBody(): void {
    const b = this.buf!;
    if (this.framing === BodyFraming.Length) {
      const n = Math.min(this.bodyLeft, b.length);
      const piece = n === b.length ? b : b.subarray(0, n);
      this.buf = n === b.length ? null : b.subarray(n);
      this.bodyLeft -= n;
      if (this.bodyLeft === 0) this.bodyDone = true;
      this.down?.ex?.onClientData(this.own(piece), this.bodyDone);
      return;
    }
    const dec = this.chunked!;
    const p = dec.decode(b, 0, b.length, this, this.stopBody);
    if (dec.failed) {
      this.buf = null;
      this.bodyFramingError();
      return;
    }
    this.buf = p < b.length ? b.subarray(p) : null;
    if (dec.done) {
      this.bodyDone = true;
      this.down?.ex?.onClientData(null, true, dec.trailers);
    }
  }

  chunkData(data: Buffer): void {
    this.down?.ex?.onClientData(this.own(data), false);
  }

  /** A bad chunk: the exchange answers 400 (or closes); with no exchange left, a 400 here. */
  private bodyFramingError(): void {
    this.keepAlive = false;
    this.bodyDone = true;
    const down = this.down;
    const ex = down?.ex ?? null;
    if (ex !== null) {
      ex.onClientFramingError();
      if (this.st === St.Active && !this.responseDone) {
        if (this.order === null)
          this.destroy(); // cannot answer any more
        else if (!down!.cutShort) down!.abort(); // closes in its turn, after the responses before it
      }
      return;
    }
    if (this.responseDone) this.refuse(new ProxyError('bad_request', 'malformed request body framing'));
    else this.destroy();
  }

  /**
   * Leaves the current request (its body is read, or no longer wanted) for `st`, due within `ms`,
   * and reads the socket again if it was paused (from Finishing on, what arrives is dropped).
   */
  private readIn(st: St, ms: number): void {
    this.down = null;
    this.st = st;
    this.arm(ms);
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  /**
   * Pipelined: no head is parsed any more (what arrives is dropped); the responses owed go out,
   * the last one with Connection: close unless it went out already, then the connection closes.
   */
  private finish(): void {
    this.keepAlive = false;
    this.buf = null;
    if (this.order!.size === 0) this.closeAfterWrites();
    // Keep reading (and dropping) so that the client's writes never block on us.
    else this.readIn(St.Finishing, this.host.settings.bodyIdleMs);
  }

  /** Pipelined: stop reading heads; the request whose body is being read is still served. */
  private stopPipeline(): void {
    this.keepAlive = false;
    const st = this.st;
    if (st === St.Idle || st === St.Head) this.finish();
  }

  /**
   * Pipelined, before a head: a response may have stopped the connection since (a local reply
   * that closes), and with MAX_IN_FLIGHT requests in flight reading pauses until one is answered.
   */
  private mayReadHead(order: ResponseOrder): boolean {
    if (!this.keepAlive) {
      this.finish();
      return false;
    }
    if (!order.full) return true;
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
    return false;
  }

  /** Whether `down`'s response is the connection's last one (it says Connection: close). */
  closesAfter(down: StrictDownstream): boolean {
    return !this.keepAlive && (this.order === null || this.order.isLast(down));
  }

  // ---- flow control (from the downstream) ---------------------------------------------------

  pauseBody(down: StrictDownstream): void {
    if (down !== this.down || this.bodyPaused) return;
    this.bodyPaused = true;
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  resumeBody(down: StrictDownstream): void {
    if (down !== this.down || !this.bodyPaused) return;
    this.bodyPaused = false;
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    if (this.buf !== null) process.nextTick(pumpSoon, this);
  }

  /** @internal (process.nextTick target) */
  pumpNow(): void {
    if (this.st === St.Active) this.pump();
  }

  /** The current response is complete (every byte handed to the socket, or held in its turn). */
  responseEnded(down: StrictDownstream): void {
    if (this.order !== null) {
      this.pipelinedResponseEnded(down);
      return;
    }
    if (down !== this.down || this.st !== St.Active) return;
    this.responseDone = true;
    if (this.keepAlive) this.arm(this.host.settings.bodyIdleMs);
    if (this.readPaused && this.keepAlive) {
      // A body left unread (the upstream answered early) is read and dropped.
      this.readPaused = false;
      this.socket.resume();
    }
    if (!this.pumping) this.pump();
  }

  private pipelinedResponseEnded(down: StrictDownstream): void {
    if (this.st >= St.Closing) return;
    const order = this.order!;
    if (down === this.down) this.responseDone = true;
    if (!order.advance()) {
      this.endCutShort();
      return;
    }
    const st = this.st;
    if (order.size === 0) {
      if (st === St.Finishing) {
        this.closeAfterWrites();
        return;
      }
      if (st === St.Idle) this.arm(this.host.settings.keepaliveIdleMs);
    }
    if ((st === St.Idle || st === St.Head) && this.readPaused && !order.full) {
      this.readPaused = false;
      this.socket.resume();
    }
    if (!this.pumping) this.pump();
  }

  /** The response of `down` failed after its head went out: the connection closes (pipelined: once the responses before it are written). */
  responseAborted(down: StrictDownstream): void {
    const order = this.order;
    if (order === null) {
      // The aborted response's last writes (its held head) may sit corked in this turn (an abort
      // from inside the upstream's read): out with them first, or destroy() would drop them.
      const s = this.socket;
      while (s.writableCorked > 0) s.uncork();
      this.destroy();
      return;
    }
    if (this.st >= St.Closing) return;
    if (down === this.down) this.responseDone = true;
    this.stopPipeline();
    if (!order.advance()) this.endCutShort();
  }

  /**
   * Pipelined: a response cut short reached the head. The responses before it and its own bytes
   * so far (corked this turn) go out, then our FIN: the client sees that response incomplete, and
   * no other after it (their exchanges hear of the close).
   */
  private endCutShort(): void {
    this.keepAlive = false;
    this.closeAfterWrites();
  }

  // ---- writing ------------------------------------------------------------------------------

  write(data: Buffer): boolean {
    const st = this.st;
    if (st === St.Active || (this.order !== null && (st === St.Idle || st === St.Finishing))) this.arm(this.host.settings.bodyIdleMs);
    if (!this.socket.writable) return true;
    if (this.order !== null) this.corkTurn();
    return this.socket.write(data);
  }

  writeText(text: string): void {
    if (!this.socket.writable) return;
    if (this.order !== null) this.corkTurn();
    this.socket.write(text, 'latin1');
  }

  /**
   * Pipelined: the responses written during one loop turn leave in one socket write (one TLS
   * record when they fit). setImmediate runs after every I/O callback of the turn; a nextTick
   * would uncork after the first.
   */
  private corkTurn(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(this.uncorkTurn);
  }

  /**
   * A rendered local reply (localReplyBytes): the head as latin1 (a client's x-request-id keeps
   * its bytes), the JSON body as UTF-8 (what its Content-Length counts); without the body for HEAD.
   */
  writeLocalReply(text: string, withBody: boolean): void {
    if (!this.socket.writable) return;
    if (this.order !== null) this.corkTurn();
    const at = text.indexOf('\r\n\r\n') + 4;
    if (!withBody) {
      this.socket.write(text.slice(0, at), 'latin1');
      return;
    }
    this.socket.cork();
    this.socket.write(text.slice(0, at), 'latin1');
    this.socket.write(text.slice(at), 'utf8');
    this.socket.uncork();
  }

  destroy(): void {
    this.st = St.Closed;
    this.socket.destroy();
  }

  /**
   * The host tunnels this upgrade request (dataplane/upgrade.ts): the socket leaves the request
   * loop for good, with the bytes read after the head (returned). Nothing here touches it again.
   */
  detach(): Buffer | null {
    const rest = this.buf === null ? null : this.own(this.buf);
    const s = this.socket;
    if (this.shared) readsAsDataEvents(s); // the tunnel (upgrade.ts, splice.ts) reads 'data' events
    s.off('data', this.dataListener);
    s.off('end', this.endListener);
    s.off('close', this.closeListener);
    s.off('drain', this.drainListener);
    this.leaveLoop();
    return rest;
  }

  /** Refuses the head being read (or the bytes after a response): local reply, then close. */
  private refuse(err: ProxyError): boolean {
    // No head was parsed: a fresh id, so the reply and the access log line still name the request.
    const id = refusalRequestId(null);
    this.host.refused(err, id);
    this.buf = null;
    this.keepAlive = false;
    const order = this.order;
    if (order !== null) {
      // Pipelined: the reply takes its turn after the responses owed, as the last one.
      const down = new StrictDownstream(this, false, 1);
      order.add(down);
      this.finish();
      down.reply(err, id);
      return false;
    }
    this.writeLocalReply(localReplyBytes(localReply(err, id, this.detail), httpDate()), true);
    this.closeAfterWrites();
    return false;
  }

  private closeAfterWrites(): void {
    this.buf = null;
    // Keep reading (and dropping) so the kernel does not answer unread bytes with a reset.
    this.readIn(St.Closing, LINGER_MS);
    this.socket.end();
  }

  // ---- socket events ------------------------------------------------------------------------

  private onEnd(): void {
    // The client half-closed: the requests it sent are served (a request whose body can no
    // longer complete is aborted), then the connection closes.
    this.peerEnded = true;
    if (this.st < St.Closing) this.pump();
  }

  private onClose(): void {
    const down = this.down;
    const owed = this.order?.clear() ?? null;
    this.leaveLoop();
    if (owed === null) {
      if (down !== null) abandon(down);
    } else {
      for (const d of owed) abandon(d);
    }
  }

  /** The request loop is over (socket closed or detached): no buffer, no request, no deadline; the host forgets it. */
  private leaveLoop(): void {
    this.st = St.Closed;
    this.buf = null;
    this.down = null;
    this.armed = false;
    this.host.ticker.delete(this);
    this.host.closed(this);
  }

  private onDrain(): void {
    const down = this.order === null ? this.down : this.order.head;
    if (down !== null && down.wantDrain) {
      down.wantDrain = false;
      down.ex?.onDownstreamWritable();
    }
  }

  onDeadline(_now: number): void {
    this.armed = false;
    switch (this.st) {
      case St.Head:
        this.refuse(new ProxyError('request_timeout', 'the request head did not arrive in time'));
        break;
      case St.Idle:
        if (this.buf === null && (this.order === null ? this.down === null : this.order.size === 0)) {
          this.closeAfterWrites();
          break;
        }
        this.destroy();
        break;
      default:
        this.destroy(); // body idle, or a client that never closed after our FIN
    }
  }

  /**
   * Listener stopping (a reload that replaces it, or shutdown): a connection between requests
   * closes now, a busy one after its response. A fresh one (accepted, no complete head yet) is not
   * idle: its client has most likely sent its first request already, which closing now would
   * reset; that request is served, answered with Connection: close, within the head deadline.
   */
  drain(): void {
    this.draining = true;
    if (!this.served) this.keepAlive = false;
    else if (this.order !== null) this.stopPipeline();
    else if (this.st === St.Idle) this.closeAfterWrites();
    else if (this.st === St.Active) this.keepAlive = false;
  }
}

/** The client is gone before `down`'s response was complete: its exchange hears it. */
function abandon(down: StrictDownstream): void {
  const ex = down.ex;
  if (ex !== null && !down.complete) {
    down.ex = null;
    ex.onClientAborted();
  }
}

function pumpSoon(conn: H1Connection): void {
  conn.pumpNow();
}

function noop(): void {}

function headErrorText(e: HeadError): string {
  switch (e) {
    case HeadError.RequestLine:
      return 'request line';
    case HeadError.Version:
      return 'HTTP version';
    case HeadError.FieldName:
      return 'field name';
    case HeadError.FieldValue:
      return 'field value';
    case HeadError.ObsFold:
      return 'obs-fold';
    default:
      return 'line end';
  }
}

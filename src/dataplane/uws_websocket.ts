// WebSocket on the uws engine. uWS cannot hand its socket over, so the proxy terminates the
// client's WebSocket in uWS (app.ws) and re-encodes messages to and from the upstream. This
// adapter stands where the accepted socket stands on the other engines, so the upgrade Tunnel
// (upgrade.ts: dial, timeouts, refusals, accounting, access log, drain) and the Splice (splice.ts:
// backpressure, idle timeout) run unchanged: what they write toward the client is the upstream's
// bytes (its response head, then its frames), turned here into uWS calls; what the client sends
// arrives as uWS messages and leaves here as masked frames. Touches only its uWS HttpResponse
// (until the upgrade or the answer) and its uWS WebSocket (after the upgrade).
//
// What re-encoding keeps: every message, its type and bytes; the fragmentation of the upstream's
// messages; pings both ways with their payload; close codes and reasons both ways. What it does
// not: the client's fragmentation (uWS hands over whole messages), the app's pongs (uWS answers
// the client's pings itself), extensions (Sec-WebSocket-Extensions is not offered upstream: no
// permessage-deflate through this engine), and client → upstream backpressure (uWS 20.30 cannot
// pause a WebSocket: what waits for a slow upstream is bounded, see `overflow`).

import { EventEmitter } from 'node:events';
import uWS from 'uWebSockets.js';
import type { HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { ChunkedDecoder, type ChunkSink } from './h1/chunked.js';
import { connectionNamed, dropResponseHeader, hopByHop } from './hop_by_hop.js';
import type { SpliceSocket } from './splice.js';
import {
  closePayload,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  ServerFrameReader,
  writeMaskedFrame,
  type FrameSink,
} from './ws_frame.js';

/** The largest message (client → upstream) and frame (upstream → client) a uws listener carries by default: 64 MiB. */
export const DEFAULT_WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Above this much queued in uWS for the client, the upstream is paused (the splice stops reading it) until uWS drains. */
const CLIENT_BUFFER_HIGH = 1024 * 1024;
/** A non-101 answer (the app's refusal, a local reply) is held whole before it goes out; a larger one is cut. */
const MAX_ANSWER_BYTES = 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const SWITCHING = /^HTTP\/1\.[01] 101$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r]*))?\r\n/;
const EMPTY = Buffer.alloc(0);
const NON_ASCII = /[\x80-\xff]/;

/** What uWS keeps on each of the engine's WebSockets. */
interface Bound {
  readonly client: UwsWebSocketClient;
}

/** Counters of one listener's uws WebSockets (upgrade.ts's Upgrades has them). */
export interface WsCounters {
  /** Clients closed with 1013 because what they sent waited for a slow upstream beyond the bound. */
  clientOverflows: number;
}

/**
 * The uWS WebSocket behavior of a uws listener: limits, and handlers that pass every event to
 * the adapter uWS keeps with the socket. `upgrade` is the listener's admission.
 */
export function webSocketBehavior(
  maxMessageBytes: number,
  upgrade: (res: HttpResponse, req: uWS.HttpRequest, context: us_socket_context_t) => void,
): WebSocketBehavior<Bound> {
  return {
    maxPayloadLength: maxMessageBytes,
    // No timer of uWS's own: the route's websocket.idle_timeout_ms is the splice's.
    idleTimeout: 0,
    sendPingsAutomatically: false,
    // Never drop a message for backpressure: the adapter holds the upstream back instead.
    maxBackpressure: 0,
    compression: uWS.DISABLED,
    upgrade,
    open: (ws) => ws.getUserData().client.opened(ws),
    message: (ws, m, isBinary) => ws.getUserData().client.fromClient(isBinary ? OP_BINARY : OP_TEXT, m),
    ping: (ws, m) => ws.getUserData().client.fromClient(OP_PING, m),
    // The client's answer to a ping the upstream sent (forwarded by `frame`).
    pong: (ws, m) => ws.getUserData().client.fromClient(OP_PONG, m),
    drain: (ws) => ws.getUserData().client.drained(),
    close: (ws, code, m) => ws.getUserData().client.closed(code, m),
  };
}

/** The upgrade request head without Sec-WebSocket-Extensions: uWS would have to inflate what an extension compressed. */
export function withoutExtensions(head: string): string {
  return head.replace(/\r\nsec-websocket-extensions:[^\r]*/gi, '');
}

const enum St {
  /** Waiting for the upstream's answer (written by the tunnel). */
  Head,
  /** Upgraded: frames both ways. */
  Open,
  /** Not 101: the answer is collected until the tunnel ends it, then written through uWS. */
  Answer,
  Closed,
}

export class UwsWebSocketClient extends EventEmitter implements SpliceSocket, FrameSink, ChunkSink {
  private st = St.Head;
  /** Until the upgrade or the answer, and while the client is there. */
  private res: HttpResponse | null;
  private ws: WebSocket<Bound> | null = null;
  /** The answer's bytes so far (head, or the whole non-101 answer). */
  private answer: Buffer[] = [];
  private answerBytes = 0;
  private readonly frames: ServerFrameReader;
  /** Upstream frames that came before uWS opened the socket. */
  private beforeOpen: Buffer[] | null = null;
  /** A fragmented upstream message is being passed on. */
  private fragmenting = false;
  /** write() returned false: 'drain' is due once uWS has sent enough. */
  private blocked = false;
  /** Frames for the upstream not yet taken (the splice paused this side), from `upAt` on. */
  private up: Buffer[] = [];
  private upAt = 0;
  private upBytes = 0;
  private flowing = false;
  /** Frames may still go upstream (false once a close frame went, or the end is abrupt). */
  private upOpen = true;
  private endScheduled = false;
  private closeEmitted = false;
  /** The pieces of a relayed chunked body (ChunkSink). */
  private body: Buffer[] = [];

  /**
   * Made in uWS's upgrade handler, after admission, with what it read from the request (the
   * request dies when the handler returns): the client's Sec-WebSocket-Key and uWS's context.
   */
  constructor(
    res: HttpResponse,
    private readonly key: string,
    private readonly context: us_socket_context_t,
    private readonly maxMessageBytes: number,
    private readonly counters: WsCounters,
  ) {
    super();
    this.res = res;
    this.frames = new ServerFrameReader(maxMessageBytes);
    res.onAborted(() => this.aborted());
  }

  get writable(): boolean {
    return this.st !== St.Closed;
  }

  // ---- toward the client: what the tunnel writes ---------------------------------------------------

  write(d: Buffer): boolean {
    switch (this.st) {
      case St.Head:
        this.readHead(d);
        return true;
      case St.Answer:
        this.collect(d);
        return true;
      case St.Open:
        this.fromUpstream(d);
        return !this.blocked;
      default:
        return true;
    }
  }

  /** The tunnel ends the client side: a non-101 answer is complete, or the upstream sent its FIN. */
  end(data?: string, encoding?: BufferEncoding): this {
    if (data !== undefined) this.write(Buffer.from(data, encoding));
    if (this.st === St.Answer) this.sendAnswer();
    else if (this.st === St.Head) this.destroy();
    else if (this.st === St.Open) this.upstreamGone();
    return this;
  }

  destroySoon(): void {
    if (this.st !== St.Closed) this.end();
  }

  /** Closes the client abruptly (no close frame): a reset on the upstream side, the idle timeout, the drain's end. */
  destroy(): this {
    this.upOpen = false;
    const ws = this.ws;
    const res = this.res;
    this.ws = null;
    this.res = null;
    this.st = St.Closed;
    this.frames.stop();
    if (ws !== null) ws.close();
    else if (res !== null) res.close();
    this.dropQueued();
    this.emitClose(false);
    return this;
  }

  setTimeout(_ms: number): this {
    return this; // the tunnel's and the splice's timers apply
  }

  private readHead(d: Buffer): void {
    this.collect(d);
    const all = this.answer.length === 1 ? d : Buffer.concat(this.answer, this.answerBytes);
    const end = all.indexOf(CRLFCRLF);
    if (end < 0) return; // the tunnel bounds the head's size
    // The tunnel checked the status line; only whether it is 101 matters here.
    if (!SWITCHING.test(all.toString('latin1', 0, 12))) {
      this.st = St.Answer;
      return;
    }
    this.answer = [];
    this.answerBytes = 0;
    this.upgrade(all.toString('latin1', 0, end + 2));
    if (end + 4 < all.length) this.fromUpstream(all.subarray(end + 4));
  }

  /** The upstream answered 101: uWS answers the client with the upstream's headers and its own handshake fields. */
  private upgrade(head: string): void {
    const res = this.res;
    if (res === null) return;
    this.st = St.Open;
    this.res = null;
    this.beforeOpen = [];
    let protocol = '';
    const lines = head.split('\r\n');
    res.cork(() => {
      res.writeStatus('101 Switching Protocols');
      for (let i = 1; i < lines.length - 1; i++) {
        const line = lines[i]!;
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === 'sec-websocket-protocol') protocol = value;
        else if (!upgradeOwnHeader(name)) res.writeHeader(name, NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
      }
      // No extension: none was offered upstream (withoutExtensions).
      res.upgrade<Bound>({ client: this }, this.key, protocol, '', this.context);
    });
  }

  /** uWS opened the client's socket (inside res.upgrade). */
  opened(ws: WebSocket<Bound>): void {
    this.ws = ws;
    const early = this.beforeOpen;
    this.beforeOpen = null;
    if (early !== null) for (const d of early) this.fromUpstream(d);
  }

  private fromUpstream(d: Buffer): void {
    const ws = this.ws;
    if (ws === null) {
      this.beforeOpen?.push(d);
      return;
    }
    // Corked: the frames of one read leave in one write to the client.
    ws.cork(() => this.frames.feed(d, this));
    if (this.ws !== null && this.ws.getBufferedAmount() > CLIENT_BUFFER_HIGH) this.blocked = true;
  }

  /** FrameSink: one upstream frame, passed on as the uWS call that sends the same frame. */
  frame(fin: boolean, opcode: number, payload: Buffer): void {
    const ws = this.ws;
    if (ws === null) return;
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragmenting) return this.frameError(1002, 'a new message inside a fragmented one');
        if (fin) ws.send(payload, opcode === OP_BINARY, false);
        else {
          ws.sendFirstFragment(payload, opcode === OP_BINARY, false);
          this.fragmenting = true;
        }
        return;
      case OP_CONTINUATION:
        if (!this.fragmenting) return this.frameError(1002, 'a continuation frame outside a fragmented message');
        if (fin) {
          ws.sendLastFragment(payload, false);
          this.fragmenting = false;
        } else ws.sendFragment(payload, false);
        return;
      case OP_PING:
        ws.ping(payload);
        return;
      case OP_PONG:
        // Dropped: uWS already answered the client's ping itself; this would be a second pong.
        return;
      case OP_CLOSE:
        if (payload.length === 1) return this.frameError(1002, 'a close frame with a one-byte payload');
        this.closeBoth(payload);
        return;
    }
  }

  /** FrameSink: the upstream broke the protocol (or the size limit): both sides get a close frame with `code`. */
  frameError(code: number, reason: string): void {
    this.closeBoth(closePayload(code, Buffer.from(reason)));
  }

  /**
   * The upstream's close frame (or ours, for its protocol error): the client gets the same code
   * and reason, and the upstream a masked close frame with its payload, which completes its
   * closing handshake. Nothing goes upstream after it.
   */
  private closeBoth(payload: Buffer): void {
    const ws = this.ws;
    this.frames.stop();
    this.sendUp(OP_CLOSE, payload);
    this.endUp();
    this.ws = null;
    this.st = St.Closed;
    if (ws === null) return;
    // No code: uWS sends a close frame without one, which the client reads as 1005.
    if (payload.length === 0) ws.end();
    else ws.end(payload.readUInt16BE(0), payload.subarray(2));
  }

  /**
   * The upstream sent its FIN: after its close frame nothing is left to do; without one the
   * client's connection is cut (no close frame), as the FIN would cut it on the other engines.
   */
  private upstreamGone(): void {
    const ws = this.ws;
    this.ws = null;
    this.st = St.Closed;
    this.upOpen = false;
    this.endUp();
    ws?.close();
  }

  /** uWS drained some of what waits for the client. */
  drained(): void {
    const ws = this.ws;
    if (!this.blocked || ws === null || ws.getBufferedAmount() > CLIENT_BUFFER_HIGH) return;
    this.blocked = false;
    this.emit('drain');
  }

  // ---- a non-101 answer ---------------------------------------------------------------------------

  private collect(d: Buffer): void {
    if (this.answerBytes + d.length > MAX_ANSWER_BYTES) {
      this.destroy();
      return;
    }
    this.answer.push(d);
    this.answerBytes += d.length;
  }

  /** The whole non-101 answer is here: written through uWS (status, headers minus hop-by-hop, body), then the connection closes. */
  private sendAnswer(): void {
    const res = this.res;
    const all = Buffer.concat(this.answer, this.answerBytes);
    this.answer = [];
    this.res = null;
    this.st = St.Closed;
    this.emitClose(false);
    if (res === null) return;
    const end = all.indexOf(CRLFCRLF);
    const status = end < 0 ? null : STATUS_LINE.exec(all.toString('latin1', 0, end + 4));
    if (status === null) {
      res.close();
      return;
    }
    const fields = all.toString('latin1', status[0].length, end + 2).split('\r\n');
    const headers: string[] = [];
    for (const f of fields) {
      const colon = f.indexOf(':');
      if (colon > 0) headers.push(f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim());
    }
    const chunked = headers.some((v, i) => i % 2 === 0 && v === 'transfer-encoding' && /chunked/i.test(headers[i + 1]!));
    const body = chunked ? this.dechunk(all.subarray(end + 4)) : all.subarray(end + 4);
    const named = connectionNamed(headers);
    res.cork(() => {
      res.writeStatus(`${status[1]} ${status[2] ?? ''}`);
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        const value = headers[i + 1]!;
        if (!dropResponseHeader(name, named, false)) res.writeHeader(name, NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
      }
      res.end(body, true);
    });
  }

  private dechunk(b: Buffer): Buffer {
    this.body = [];
    new ChunkedDecoder(MAX_ANSWER_BYTES).decode(b, 0, b.length, this, never);
    return Buffer.concat(this.body);
  }

  /** ChunkSink: a piece of a relayed chunked body. */
  chunkData(data: Buffer): void {
    this.body.push(data);
  }

  /** The client went away before the upgrade or the answer. */
  private aborted(): void {
    if (this.res === null) return;
    this.res = null;
    this.st = St.Closed;
    this.emitClose(false);
  }

  // ---- toward the upstream: what the splice reads ---------------------------------------------------

  /** uWS handed over a message or control frame from the client (its memory is reused after the call: copied as it is masked). */
  fromClient(opcode: number, data: ArrayBuffer): void {
    if (!this.upOpen) return;
    this.sendUp(opcode, new Uint8Array(data));
    if (this.upBytes > this.maxMessageBytes) this.overflow();
  }

  /**
   * What the client sent waits for a slow upstream beyond one largest message: uWS 20.30 cannot
   * stop reading a WebSocket, so instead of buffering without end the client is closed with 1013
   * (try again later: the service is overloaded, RFC 6455 §7.4.1's registry) and the upstream
   * gets, after everything queued, a close frame with the same code.
   */
  private overflow(): void {
    const ws = this.ws;
    if (ws === null) return;
    this.counters.clientOverflows++;
    const reason = Buffer.from('the upstream is not reading fast enough');
    this.frames.stop();
    this.ws = null;
    this.st = St.Closed;
    this.sendUp(OP_CLOSE, closePayload(1013, reason));
    this.endUp();
    ws.end(1013, reason);
  }

  /**
   * uWS closed the client's socket: the client's close frame (its code, 1005 without one), or the
   * connection lost (1006), or our own end()/close() (nothing more to do then).
   */
  closed(code: number, message: ArrayBuffer): void {
    const ours = this.ws === null;
    this.ws = null;
    this.st = St.Closed;
    this.frames.stop();
    if (ours || !this.upOpen) return;
    if (code === 1006) {
      // No close frame (or one uWS found invalid): an abrupt end, passed on as a reset.
      this.upOpen = false;
      this.dropQueued();
      this.emitClose(true);
      return;
    }
    this.sendUp(OP_CLOSE, code === 1005 ? EMPTY : closePayload(code, new Uint8Array(message)));
    this.endUp();
  }

  private sendUp(opcode: number, payload: Uint8Array): void {
    if (!this.upOpen) return;
    if (opcode === OP_CLOSE) this.upOpen = false;
    writeMaskedFrame(opcode, payload, this.enqueue);
  }

  private readonly enqueue = (b: Buffer): void => {
    if (this.flowing && this.upAt === this.up.length) {
      this.emit('data', b);
      return;
    }
    this.up.push(b);
    this.upBytes += b.length;
  };

  /** Nothing more goes upstream: 'end' once what is queued was taken. */
  private endUp(): void {
    this.upOpen = false;
    this.maybeEnd();
  }

  /** An abrupt end: what was queued for the upstream is not sent. */
  private dropQueued(): void {
    this.up = [];
    this.upAt = 0;
    this.upBytes = 0;
  }

  pause(): this {
    this.flowing = false;
    return this;
  }

  resume(): this {
    this.flowing = true;
    while (this.flowing && this.upAt < this.up.length) {
      const b = this.up[this.upAt]!;
      this.up[this.upAt++] = EMPTY;
      this.upBytes -= b.length;
      this.emit('data', b);
    }
    if (this.upAt === this.up.length) {
      this.up = [];
      this.upAt = 0;
    }
    this.maybeEnd();
    return this;
  }

  private maybeEnd(): void {
    if (this.upOpen || !this.flowing || this.upAt < this.up.length || this.endScheduled || this.closeEmitted) return;
    this.endScheduled = true;
    // On a later turn, as a socket's 'end': never inside the listener that is writing to us.
    process.nextTick(() => {
      this.emit('end');
      this.emitClose(false);
    });
  }

  private emitClose(hadError: boolean): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    process.nextTick(() => {
      // A paused upstream would never read its own end: let it flow (what it sends is dropped now).
      if (this.blocked) {
        this.blocked = false;
        this.emit('drain');
      }
      this.emit('close', hadError);
    });
  }
}

/** Headers of the upstream's 101 that uWS writes itself (the handshake) or that are hop-by-hop. */
function upgradeOwnHeader(name: string): boolean {
  return hopByHop(name) || name === 'sec-websocket-accept' || name === 'sec-websocket-extensions' || name === 'content-length';
}

function never(): boolean {
  return false;
}

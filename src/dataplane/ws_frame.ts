// WebSocket frames (RFC 6455 §5.2) as the uws engine's adapter (uws_websocket.ts) needs them: a
// reader for the frames an upstream server sends (unmasked, no extension negotiated, so no RSV
// bit) and a writer of the masked frames a client sends. Nothing else: no message assembly (the
// adapter maps frames to uWS calls one by one) and no UTF-8 check (bytes pass as on the other
// engines, and the receiving endpoint checks them).

import { randomFillSync } from 'node:crypto';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** Where a ServerFrameReader hands what it read. */
export interface FrameSink {
  /** One whole frame; `payload` is a view of the input, valid during the call. */
  frame(fin: boolean, opcode: number, payload: Buffer): void;
  /** The bytes break RFC 6455 or the size limit: `code` is the close code to send (1002, 1009). The reader reads nothing more. */
  frameError(code: number, reason: string): void;
}

/** Reads the frames of an upstream server from the pieces its socket delivers. */
export class ServerFrameReader {
  /** Bytes of a frame not yet whole, and how many that frame needs from the start of them. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private need = 0;
  private stopped = false;

  constructor(private readonly maxPayloadBytes: number) {}

  /** Reads no more (a close frame was read, or the connection is going away). */
  stop(): void {
    this.stopped = true;
    this.pending = [];
    this.pendingBytes = 0;
  }

  feed(d: Buffer, sink: FrameSink): void {
    if (this.stopped) return;
    if (this.pendingBytes > 0) {
      // A frame larger than one read is joined once, when all of it is there (no copy per read).
      this.pending.push(d);
      this.pendingBytes += d.length;
      if (this.pendingBytes < this.need) return;
      d = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    while (!this.stopped) {
      const n = this.next(d, pos, sink);
      if (n === 0) break;
      pos += n;
    }
    if (!this.stopped && pos < d.length) {
      this.pending.push(d.subarray(pos));
      this.pendingBytes = d.length - pos;
    }
  }

  /** Reads the frame at `pos`: its length in bytes, or 0 when it is not all there yet (`need` then says how much it needs). */
  private next(b: Buffer, pos: number, sink: FrameSink): number {
    const avail = b.length - pos;
    if (avail < 2) return this.wait(2);
    const b0 = b[pos]!;
    const b1 = b[pos + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.fail(sink, 1002, 'a frame with reserved bits set (no extension was negotiated)');
    if ((b1 & 0x80) !== 0) return this.fail(sink, 1002, 'a masked frame from the server');
    if (!(opcode <= OP_BINARY || (opcode >= OP_CLOSE && opcode <= OP_PONG))) return this.fail(sink, 1002, `unknown opcode ${opcode}`);
    let len = b1 & 0x7f;
    let h = 2;
    if (opcode >= OP_CLOSE && (!fin || len > 125)) return this.fail(sink, 1002, 'a fragmented or long control frame');
    if (len === 126) {
      if (avail < 4) return this.wait(4);
      len = b.readUInt16BE(pos + 2);
      h = 4;
    } else if (len === 127) {
      if (avail < 10) return this.wait(10);
      const high = b.readUInt32BE(pos + 2);
      // Past 2^53 a JS number is not exact; far past any limit anyway.
      if (high > 0x1fffff) return this.fail(sink, 1009, 'a frame longer than 2^53 bytes');
      len = high * 2 ** 32 + b.readUInt32BE(pos + 6);
      h = 10;
    }
    if (len > this.maxPayloadBytes) return this.fail(sink, 1009, `a frame of ${len} bytes, over the limit of ${this.maxPayloadBytes}`);
    if (avail < h + len) return this.wait(h + len);
    sink.frame(fin, opcode, b.subarray(pos + h, pos + h + len));
    return h + len;
  }

  private wait(need: number): number {
    this.need = need;
    return 0;
  }

  private fail(sink: FrameSink, code: number, reason: string): number {
    this.stop();
    sink.frameError(code, reason);
    return 0;
  }
}

/** Random masking keys, drawn from the CSPRNG in batches (RFC 6455 §5.3: unpredictable per frame). */
const KEY_BATCH = 1024;
const keyBytes = Buffer.allocUnsafeSlow(KEY_BATCH * 4);
const keyWords = new Uint32Array(keyBytes.buffer, keyBytes.byteOffset, KEY_BATCH);
let keysUsed = KEY_BATCH;

function nextKey(): number {
  if (keysUsed === KEY_BATCH) {
    randomFillSync(keyBytes);
    keysUsed = 0;
  }
  return keysUsed++;
}

/** Payloads from this size on are masked a 32-bit word at a time, into a buffer of their own. */
const WORD_MASK_FROM = 1024;

/**
 * Writes one client frame (FIN set, masked with a fresh key) to `out`: one buffer, or for a large
 * payload its header and its masked payload as two (the payload in an aligned buffer of its own,
 * masked a word at a time). The payload is copied: the caller's memory may be reused after.
 */
export function writeMaskedFrame(opcode: number, payload: Uint8Array, out: (b: Buffer) => void): void {
  const n = payload.length;
  const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const h = 2 + lenBytes + 4;
  const k = nextKey();
  const large = n >= WORD_MASK_FROM;
  const head = Buffer.allocUnsafe(large ? h : h + n);
  head[0] = 0x80 | opcode;
  if (lenBytes === 0) head[1] = 0x80 | n;
  else if (lenBytes === 2) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    head.writeUInt32BE(n >>> 0, 6);
  }
  keyBytes.copy(head, h - 4, k * 4, k * 4 + 4);
  if (!large) {
    maskBytes(payload, 0, head, h, n, k);
    out(head);
    return;
  }
  const body = Buffer.allocUnsafeSlow(n); // offset 0: aligned for the word loop
  if (payload.byteOffset % 4 === 0) maskWords(payload, body, k);
  else maskBytes(payload, 0, body, 0, n, k);
  out(head);
  out(body);
}

function maskBytes(src: Uint8Array, from: number, dst: Uint8Array, at: number, n: number, k: number): void {
  const key = k * 4;
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]! ^ keyBytes[key + ((from + i) & 3)]!;
}

/** dst = src XOR key, a 32-bit word at a time (the key read in the machine's byte order, as the words are), then the tail. */
function maskWords(src: Uint8Array, dst: Buffer, k: number): void {
  const words = src.length >>> 2;
  const s = new Uint32Array(src.buffer, src.byteOffset, words);
  const d = new Uint32Array(dst.buffer, dst.byteOffset, words);
  const key = keyWords[k]!;
  for (let i = 0; i < words; i++) d[i] = s[i]! ^ key;
  const done = words * 4;
  if (done < src.length) maskBytes(src, done, dst, done, src.length - done, k);
}

/** The payload of a close frame: the code (big-endian) and the reason's bytes. */
export function closePayload(code: number, reason: Uint8Array): Buffer {
  const p = Buffer.allocUnsafe(2 + reason.length);
  p.writeUInt16BE(code, 0);
  p.set(reason, 2);
  return p;
}

// The strict chunked-body decoder of the `strict` listener engine (RFC 9112 §7.1): hex sizes
// (leading zeros allowed, no sign, no whitespace, at most 16 significant digits), chunk
// extensions `;name[=token|"quoted"]` checked and ignored, CRLF after every chunk's data checked,
// a trailer section parsed with the same field rules as a head. It works on whatever pieces the
// socket delivers (a size line split anywhere is kept in a small line buffer), hands data to its
// sink as views of the input, and stops where the body ends: bytes after it are the next request.

import { emptyHead, parseFieldLine, TCHAR, VCHAR, type ParsedHead } from './parse.js';

export interface ChunkSink {
  /** A piece of chunk data (a view of the input buffer). */
  chunkData(data: Buffer): void;
}

const enum St {
  Size,
  Data,
  DataCr,
  DataLf,
  Trailer,
  Done,
  Error,
}

/** A size line (with extensions) or a trailer line longer than this is refused. */
const MAX_LINE = 8192;
/** Chunk sizes above this are refused (2^53: beyond it a JS number is not exact). */
const MAX_CHUNK = Number.MAX_SAFE_INTEGER;

export class ChunkedDecoder {
  private st = St.Size;
  private remaining = 0;
  /** The line being read (size line or trailer line), latin1, without its LF. */
  private line = '';
  private trailerBytes = 0;
  /** Trailer fields (flat [name, value, ...], lower-case names), or null when none came. */
  trailers: string[] | null = null;
  private readonly scratch: ParsedHead = emptyHead();

  constructor(private readonly maxTrailerBytes: number) {}

  get done(): boolean {
    return this.st === St.Done;
  }

  get failed(): boolean {
    return this.st === St.Error;
  }

  reset(): void {
    this.st = St.Size;
    this.remaining = 0;
    this.line = '';
    this.trailerBytes = 0;
    this.trailers = null;
  }

  /**
   * Decodes from buf[pos..end). Returns the offset where it stopped: `end`, the first byte after
   * the body (done), the error offset (failed), or earlier when `stop()` returns true after a
   * data piece (flow control: call again with the rest).
   */
  decode(buf: Buffer, pos: number, end: number, sink: ChunkSink, stop: () => boolean): number {
    while (pos < end) {
      switch (this.st) {
        case St.Size:
        case St.Trailer: {
          const lf = buf.indexOf(0x0a, pos);
          const stopAt = lf < 0 || lf >= end ? end : lf;
          if (this.line.length + (stopAt - pos) > MAX_LINE) return this.fail(pos);
          if (stopAt > pos) this.line += buf.toString('latin1', pos, stopAt);
          if (stopAt === end) return end;
          pos = lf + 1;
          const line = this.line;
          this.line = '';
          if (this.st === St.Size ? !this.sizeLine(line) : !this.trailerLine(line)) return this.fail(pos);
          if (this.done) return pos;
          break;
        }
        case St.Data: {
          const n = Math.min(this.remaining, end - pos);
          this.remaining -= n;
          if (this.remaining === 0) this.st = St.DataCr;
          sink.chunkData(buf.subarray(pos, pos + n));
          pos += n;
          if (stop()) return pos;
          break;
        }
        case St.DataCr:
          if (buf[pos] !== 0x0d) return this.fail(pos);
          this.st = St.DataLf;
          pos++;
          break;
        case St.DataLf:
          if (buf[pos] !== 0x0a) return this.fail(pos);
          this.st = St.Size;
          pos++;
          break;
        default:
          return pos;
      }
    }
    return pos;
  }

  private fail(pos: number): number {
    this.st = St.Error;
    return pos;
  }

  /** `1*HEXDIG *( ";" chunk-ext-name [ "=" ( token / quoted-string ) ] ) CR` (the LF is consumed). */
  private sizeLine(l: string): boolean {
    const n = l.length;
    if (n < 2 || l.charCodeAt(n - 1) !== 0x0d) return false;
    let size = 0;
    let i = 0;
    for (; i < n - 1; i++) {
      const c = l.charCodeAt(i);
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) break;
      size = size * 16 + d;
      if (size > MAX_CHUNK) return false;
    }
    if (i === 0) return false;
    if (i < n - 1 && !validExtensions(l, i, n - 1)) return false;
    if (size === 0) {
      this.st = St.Trailer;
    } else {
      this.remaining = size;
      this.st = St.Data;
    }
    return true;
  }

  /** A trailer field line, or the empty line that ends the body. */
  private trailerLine(l: string): boolean {
    this.trailerBytes += l.length + 1;
    if (this.trailerBytes > this.maxTrailerBytes) return false;
    const s = l + '\n';
    if (s.length === 2 && s.charCodeAt(0) === 0x0d) {
      this.st = St.Done;
      return true;
    }
    const fields = (this.trailers ??= []);
    const r = parseFieldLine(s, 0, s.length, this.scratch, fields);
    return r === s.length;
  }
}

/** Chunk extensions from `i` (at a ';') to `end` (the CR): RFC 9112 §7.1.1 without BWS. */
function validExtensions(l: string, i: number, end: number): boolean {
  while (i < end) {
    if (l.charCodeAt(i) !== 0x3b /* ; */) return false;
    i++;
    const nameStart = i;
    while (i < end && TCHAR[l.charCodeAt(i)] === 1) i++;
    if (i === nameStart) return false;
    if (i < end && l.charCodeAt(i) === 0x3d /* = */) {
      i++;
      if (i < end && l.charCodeAt(i) === 0x22 /* " */) {
        i++;
        for (;;) {
          if (i >= end) return false;
          const c = l.charCodeAt(i);
          if (c === 0x22) {
            i++;
            break;
          }
          if (c === 0x5c /* \ */) {
            i++;
            if (i >= end || VCHAR[l.charCodeAt(i)] !== 1) return false;
          } else if (VCHAR[c] !== 1) {
            return false;
          }
          i++;
        }
      } else {
        const vStart = i;
        while (i < end && TCHAR[l.charCodeAt(i)] === 1) i++;
        if (i === vStart) return false;
      }
    }
  }
  return true;
}

// Incremental, strict HTTP/1.1 response parser for the upstream client.
// It consumes every byte it is given (the socket's read buffer is reused after each read, so
// nothing may be kept by reference) and reports to a sink: head, body slices, end with trailers.
// Anything a second parser could read differently (obs-fold, bare CR/LF, CL with TE, differing
// Content-Length, bad chunk sizes) is an error, never a guess.

import { emptyHead, HeadError, parseFieldLine, VCHAR, type ParsedHead } from '../dataplane/h1/parse.js';

export interface ResponseSink {
  /** Status line and headers. `headers` is flat: [lower-case name, value, ...], values decoded as latin1 (byte-exact). */
  onHead(status: number, reason: string, headers: string[], nonAscii: boolean, contentLength: number): void;
  /** An interim (1xx other than 101) response; optional. */
  onInformational?(status: number, reason: string, headers: string[]): void;
  /** A body slice; a view into the caller's buffer, valid only during this call. */
  onBody(chunk: Buffer): void;
  /** The response is complete; trailers flat like headers, or null. */
  onEnd(trailers: string[] | null): void;
}

const enum S {
  Head,
  BodyLength,
  ChunkSize,
  /** Whitespace after a chunk size: only more of it, `;` (an extension) or the CRLF may follow. */
  ChunkBws,
  ChunkExt,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  Trailers,
  BodyEof,
  Done,
  Error,
}

export const enum BodyKind {
  None = 0,
  Length = 1,
  Chunked = 2,
  Eof = 3,
}

const MAX_HEAD_BYTES = 64 * 1024;
/** The largest chunk size taken (13 hex digits); beyond it a size could lose precision as a number. */
const MAX_CHUNK_SIZE = 2 ** 52 - 1;
const MAX_TRAILER_BYTES = 16 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

export class ResponseParser {
  private state: S = S.Done;
  private sink: ResponseSink | null = null;
  private headParts: Buffer[] = [];
  private headBytes = 0;
  private remaining = 0; // body bytes left (Length) or chunk bytes left (ChunkData)
  private chunkSizeDigits = 0;
  private trailerText = '';
  private isHeadRequest = false;
  /** Whether the connection may carry another request after this response. */
  keepAlive = true;
  bodyKind: BodyKind = BodyKind.None;
  status = 0;
  error: string | null = null;

  /** Prepares for the response to the next request. */
  start(sink: ResponseSink, isHeadRequest: boolean): void {
    this.sink = sink;
    this.isHeadRequest = isHeadRequest;
    this.state = S.Head;
    if (this.headBytes !== 0) {
      this.headParts.length = 0;
      this.headBytes = 0;
    }
    this.keepAlive = true;
    this.bodyKind = BodyKind.None;
    this.status = 0;
    this.error = null;
  }

  get done(): boolean {
    return this.state === S.Done;
  }
  get failed(): boolean {
    return this.state === S.Error;
  }
  /** True once the head has been delivered (so a failure can no longer become a status code). */
  get headSent(): boolean {
    return this.state !== S.Head && this.state !== S.Error && this.status !== 0;
  }
  /** True while the parser waits for the first byte of a response (nothing received yet). */
  get idleAtStart(): boolean {
    return this.state === S.Head && this.headBytes === 0;
  }

  /**
   * Feeds bytes [start, end) of buf. Returns the number of bytes that belong to this response
   * (the rest, if any, is excess: an upstream that sends more than one response is broken).
   * On a protocol error, `failed` is true and `error` says why.
   */
  execute(buf: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case S.Head: {
          i = this.readHead(buf, i, end);
          break;
        }
        case S.BodyLength: {
          i = this.readCounted(buf, i, end, S.Done);
          if (this.done) this.finish(null);
          break;
        }
        case S.BodyEof: {
          this.sink!.onBody(buf.subarray(i, end));
          i = end;
          break;
        }
        case S.ChunkSize: {
          const c = buf[i]!;
          const d = hexValue(c);
          if (d >= 0) {
            // Bounded by value, not by digits: leading zeros are fine (RFC 9112 §7.1).
            this.remaining = this.remaining * 16 + d;
            if (this.remaining > MAX_CHUNK_SIZE) return this.fail(i, 'chunk size too large');
            this.chunkSizeDigits++;
            i++;
          } else if (this.chunkSizeDigits === 0) {
            return this.fail(i, 'chunk size is not a hex number');
          } else if (c === 0x0d) {
            this.state = S.ChunkSizeLf;
            i++;
          } else if (c === 0x3b /* ; */) {
            this.state = S.ChunkExt;
            i++;
          } else if (c === 0x20 || c === 0x09) {
            this.state = S.ChunkBws;
            i++;
          } else {
            return this.fail(i, 'invalid character after chunk size');
          }
          break;
        }
        case S.ChunkBws: {
          const c = buf[i]!;
          if (c === 0x3b /* ; */) this.state = S.ChunkExt;
          else if (c === 0x0d) this.state = S.ChunkSizeLf;
          else if (c !== 0x20 && c !== 0x09) return this.fail(i, 'invalid character after chunk size');
          i++;
          break;
        }
        case S.ChunkExt: {
          const c = buf[i]!;
          if (c === 0x0d) this.state = S.ChunkSizeLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) return this.fail(i, 'invalid chunk extension');
          i++;
          break;
        }
        case S.ChunkSizeLf: {
          if (buf[i] !== 0x0a) return this.fail(i, 'chunk size line not ended by CRLF');
          i++;
          if (this.remaining === 0) {
            this.state = S.Trailers;
            this.trailerText = '';
          } else {
            this.state = S.ChunkData;
          }
          break;
        }
        case S.ChunkData: {
          i = this.readCounted(buf, i, end, S.ChunkDataCr);
          break;
        }
        case S.ChunkDataCr: {
          if (buf[i] !== 0x0d) return this.fail(i, 'chunk data not followed by CRLF');
          this.state = S.ChunkDataLf;
          i++;
          break;
        }
        case S.ChunkDataLf: {
          if (buf[i] !== 0x0a) return this.fail(i, 'chunk data not followed by CRLF');
          this.state = S.ChunkSize;
          this.remaining = 0;
          this.chunkSizeDigits = 0;
          i++;
          break;
        }
        case S.Trailers: {
          i = this.readTrailers(buf, i, end);
          break;
        }
        case S.Done:
        case S.Error:
          return i - start;
      }
    }
    return i - start;
  }

  /** The upstream closed its side. Completes an EOF-delimited body; otherwise the response is cut short. */
  onEof(): boolean {
    if (this.state === S.BodyEof) {
      this.state = S.Done;
      this.finish(null);
      return true;
    }
    return this.state === S.Done;
  }

  /** Passes on up to `remaining` body bytes from i (entering `next` when that is all of them); returns the next offset. */
  private readCounted(buf: Buffer, i: number, end: number, next: S): number {
    const n = Math.min(this.remaining, end - i);
    this.remaining -= n;
    if (this.remaining === 0) this.state = next;
    this.sink!.onBody(buf.subarray(i, i + n));
    return i + n;
  }

  private readHead(buf: Buffer, i: number, end: number): number {
    // Find the end of the head, remembering that "\r\n\r\n" may straddle two reads.
    let searchFrom = i;
    let prefix: Buffer | null = null;
    if (this.headBytes > 0) {
      // Re-check the last 3 bytes of what we have plus the new bytes.
      prefix = Buffer.concat(this.headParts, this.headBytes);
      const tail = prefix.subarray(Math.max(0, prefix.length - 3));
      const joined = Buffer.concat([tail, buf.subarray(i, Math.min(end, i + 3))]);
      const k = joined.indexOf(CRLFCRLF);
      if (k >= 0) {
        const consumed = k + 4 - tail.length; // bytes of buf that belong to the head
        return this.parseHead(Buffer.concat([prefix, buf.subarray(i, i + consumed)]), i + consumed);
      }
      searchFrom = i;
    }
    const idx = buf.indexOf(CRLFCRLF, searchFrom);
    if (idx < 0 || idx + 4 > end) {
      const take = end - i;
      if (this.headBytes + take > MAX_HEAD_BYTES) return this.fail(end, 'response head larger than 64 KiB');
      this.headParts.push(Buffer.from(buf.subarray(i, end)));
      this.headBytes += take;
      return end;
    }
    const next = idx + 4;
    if (prefix !== null) return this.parseHead(Buffer.concat([prefix, buf.subarray(i, next)]), next);
    return this.parseHeadRange(buf, i, next, next);
  }

  private parseHead(head: Buffer, next: number): number {
    this.headParts.length = 0;
    this.headBytes = 0;
    return this.parseHeadRange(head, 0, head.length, next);
  }

  /**
   * Parses a complete head in buf[from, to) (ending with CRLFCRLF); returns `next` on success.
   * One pass over its latin1 text: each line's characters are checked as they are read (a CR only
   * as the start of a CRLF, no LF alone, no other control character than HTAB in a value or the
   * reason, token characters in a name), with no separate scan of the whole head before.
   */
  private parseHeadRange(buf: Buffer, from: number, to: number, next: number): number {
    if (to - from > MAX_HEAD_BYTES) return this.fail(next, 'response head larger than 64 KiB');
    // The head without its empty line: every line ends with its CRLF.
    const text = buf.toString('latin1', from, to - 2);
    const n = text.length;
    let nonAscii = false;
    // HTTP/1.x SP 3DIGIT [SP reason]
    let statusEnd = 0;
    for (; statusEnd < n; statusEnd++) {
      const c = text.charCodeAt(statusEnd);
      if (c === CR) break;
      if (VCHAR[c] !== 1) return this.fail(next, 'invalid character in response head');
      if (c > 0x7e) nonAscii = true;
    }
    if (text.charCodeAt(statusEnd + 1) !== LF) return this.fail(next, 'invalid character in response head');
    if (
      statusEnd < 12 ||
      !text.startsWith('HTTP/1.') ||
      (text.charCodeAt(7) !== 0x31 && text.charCodeAt(7) !== 0x30) ||
      text.charCodeAt(8) !== SP ||
      (statusEnd > 12 && text.charCodeAt(12) !== SP)
    ) {
      return this.fail(next, `invalid status line "${text.slice(0, Math.min(statusEnd, 64))}"`);
    }
    const status = parseStatus(text);
    if (status < 100 || status > 999) return this.fail(next, 'invalid status code');
    const http10 = text.charCodeAt(7) === 0x30;
    const reason = statusEnd > 13 ? text.slice(13, statusEnd) : '';

    let contentLength = -1;
    let chunked = false;
    let hasTe = false;
    const headers: string[] = [];
    const problem = readFields(text, statusEnd + 2, headers);
    if (problem !== null) return this.fail(next, `response header: ${problem}`);
    if (fields.nonAscii) nonAscii = true;
    // Connection tokens (RFC 9110 §7.6.1): close ends the connection; HTTP/1.0 keeps it only with keep-alive.
    const connClose = fields.close || (http10 && !fields.keepAlive);
    for (let k = 0; k < headers.length; k += 2) {
      const value = headers[k + 1]!;
      switch (headers[k]) {
        case 'content-length': {
          if (!/^\d{1,15}$/.test(value)) return this.fail(next, 'invalid Content-Length');
          const n = Number(value);
          if (contentLength >= 0 && n !== contentLength) return this.fail(next, 'differing Content-Length values');
          contentLength = n;
          break;
        }
        case 'transfer-encoding': {
          // Only a single `chunked` is accepted: a proxy that drops the other codings (gzip,
          // chunked) or reads `gzip` as close-delimited hands the client content it cannot
          // decode; a second TE line is an ambiguity a second parser could read differently.
          if (hasTe || value.toLowerCase() !== 'chunked') {
            return this.fail(next, `unsupported response Transfer-Encoding "${value.slice(0, 64)}" (only a single "chunked" is accepted)`);
          }
          hasTe = true;
          chunked = true;
          break;
        }
      }
    }
    if (hasTe && contentLength >= 0) return this.fail(next, 'both Content-Length and Transfer-Encoding in response');
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing (as on requests).
    if (hasTe && http10) return this.fail(next, 'Transfer-Encoding in an HTTP/1.0 response');

    this.status = status;
    if (status < 200) {
      // Interim response (100 Continue, 103 Early Hints): handed on where the sink wants it; the real one follows.
      if (status === 101) return this.fail(next, 'unexpected 101 Switching Protocols');
      this.status = 0;
      this.sink?.onInformational?.(status, reason, headers);
      return next;
    }
    this.keepAlive = !connClose;
    if (this.isHeadRequest || status === 204 || status === 304) {
      this.bodyKind = BodyKind.None;
    } else if (hasTe) {
      if (chunked) {
        this.bodyKind = BodyKind.Chunked;
      } else {
        this.bodyKind = BodyKind.Eof;
        this.keepAlive = false;
      }
    } else if (contentLength >= 0) {
      this.bodyKind = BodyKind.Length;
    } else {
      this.bodyKind = BodyKind.Eof;
      this.keepAlive = false;
    }
    switch (this.bodyKind) {
      case BodyKind.None:
        this.state = S.Done;
        break;
      case BodyKind.Length:
        this.remaining = contentLength;
        this.state = contentLength === 0 ? S.Done : S.BodyLength;
        break;
      case BodyKind.Chunked:
        this.remaining = 0;
        this.chunkSizeDigits = 0;
        this.state = S.ChunkSize;
        break;
      case BodyKind.Eof:
        this.state = S.BodyEof;
        break;
    }
    this.sink!.onHead(status, reason, headers, nonAscii, contentLength);
    if (this.state === S.Done) this.finish(null);
    return next;
  }

  private readTrailers(buf: Buffer, i: number, end: number): number {
    // Trailers end with an empty line. Without any, the next two bytes are CRLF.
    let j = i;
    for (; j < end; j++) {
      if (buf[j] === 0x0a) {
        this.trailerText += buf.toString('latin1', i, j + 1);
        i = j + 1;
        if (this.trailerText.endsWith('\r\n\r\n') || this.trailerText === '\r\n') {
          return this.completeTrailers(i);
        }
      }
    }
    this.trailerText += buf.toString('latin1', i, end);
    if (this.trailerText.length > MAX_TRAILER_BYTES) return this.fail(end, 'trailers larger than 16 KiB');
    return end;
  }

  private completeTrailers(next: number): number {
    const text = this.trailerText;
    this.trailerText = '';
    let trailers: string[] | null = null;
    if (text !== '\r\n') {
      trailers = [];
      const problem = readFields(text.slice(0, -2), 0, trailers);
      if (problem !== null) return this.fail(next, `trailer: ${problem}`);
    }
    this.state = S.Done;
    this.finish(trailers);
    return next;
  }

  private finish(trailers: string[] | null): void {
    const sink = this.sink!;
    this.sink = null;
    sink.onEnd(trailers);
  }

  private fail(at: number, why: string): number {
    this.state = S.Error;
    this.error = why;
    this.keepAlive = false;
    return at;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

function parseStatus(line: string): number {
  const a = line.charCodeAt(9) - 0x30;
  const b = line.charCodeAt(10) - 0x30;
  const c = line.charCodeAt(11) - 0x30;
  if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  return a * 100 + b * 10 + c;
}

/** What parseFieldLine notes while it reads a head's or trailer section's fields: Connection tokens, obs-text. */
const fields: ParsedHead = emptyHead();

/** Why parseFieldLine refused a line, by HeadError. */
const FIELD_PROBLEM: Readonly<Partial<Record<HeadError, string>>> = {
  [HeadError.FieldName]: 'invalid field name',
  [HeadError.FieldValue]: 'invalid character in a field value',
  [HeadError.ObsFold]: 'obsolete line folding',
  [HeadError.LineEnd]: 'line not ended by CRLF',
};

/**
 * Reads the field lines of `text` from `start` (a head or trailer section's latin1 text without
 * its empty line: every line ends with its CRLF) into `out` as [lower-case name, value without
 * leading and trailing OWS, ...], with the request parser's grammar (h1/parse.ts
 * parseFieldLine): token characters in a name, then a colon; in a value HTAB, SP, VCHAR and
 * obs-text only. Null when every line is well formed, else why not; `fields` says what it saw.
 */
function readFields(text: string, start: number, out: string[]): string | null {
  const n = text.length;
  fields.close = fields.keepAlive = fields.nonAscii = false;
  fields.headerBytes = 0;
  while (start < n) {
    const e = parseFieldLine(text, start, n, fields, out);
    if (e <= 0) return e === 0 ? 'empty line' : (FIELD_PROBLEM[-e as HeadError] ?? 'invalid field line');
    start = e;
  }
  return null;
}

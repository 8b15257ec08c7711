// Unit tests of the upstream HTTP/1.1 response parser (src/upstream/response_parser.ts): framing
// (Content-Length, chunked with extensions and trailers, EOF-delimited, bodiless by status and
// method), interim 1xx responses, strict refusals, and a fast-check property: feeding a response
// in arbitrary pieces — down to one byte at a time, through a buffer that is overwritten after
// every call, as the socket's shared read buffer is — gives exactly what feeding it whole gives.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResponseParser, type ResponseSink } from '../../src/upstream/response_parser.js';

interface Events {
  heads: Array<{ status: number; reason: string; headers: string[]; nonAscii: boolean; contentLength: number }>;
  body: Buffer;
  ends: Array<string[] | null>;
}

function sink(): ResponseSink & { events: Events } {
  const parts: Buffer[] = [];
  const events: Events = { heads: [], body: Buffer.alloc(0), ends: [] };
  return {
    events,
    onHead(status, reason, headers, nonAscii, contentLength) {
      events.heads.push({ status, reason, headers: headers.slice(), nonAscii, contentLength });
    },
    onBody(chunk) {
      parts.push(Buffer.from(chunk)); // copy: the chunk is a view valid only during the call
      events.body = Buffer.concat(parts);
    },
    onEnd(trailers) {
      events.ends.push(trailers);
    },
  };
}

interface Outcome {
  events: Events;
  failed: boolean;
  error: string | null;
  done: boolean;
  keepAlive: boolean;
  /** Bytes execute() reported as belonging to the response. */
  used: number;
}

/** Feeds `bytes` split at `cuts` (sorted offsets) through one scratch buffer that is scribbled over after each call. */
function parse(bytes: Buffer, opts: { head?: boolean; cuts?: number[]; eof?: boolean } = {}): Outcome {
  const p = new ResponseParser();
  const s = sink();
  p.start(s, opts.head ?? false);
  const cuts = [...new Set([0, ...(opts.cuts ?? []).filter((c) => c > 0 && c < bytes.length), bytes.length])].sort((a, b) => a - b);
  const scratch = Buffer.alloc(bytes.length + 16);
  let used = 0;
  for (let k = 0; k + 1 < cuts.length; k++) {
    const from = cuts[k]!;
    const to = cuts[k + 1]!;
    // Place the piece at an offset inside the scratch buffer, like a socket read into a shared buffer.
    const off = k % 7;
    bytes.copy(scratch, off, from, to);
    const n = p.execute(scratch, off, off + (to - from));
    used += n;
    scratch.fill(0xaa);
    if (p.failed || p.done) break;
  }
  if (opts.eof === true && !p.failed && !p.done) p.onEof();
  return { events: s.events, failed: p.failed, error: p.error, done: p.done, keepAlive: p.keepAlive, used };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const everyByte = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('framing', () => {
  it('Content-Length body', () => {
    const r = parse(b('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world'));
    expect(r.done).toBe(true);
    expect(r.events.heads).toEqual([
      { status: 200, reason: 'OK', headers: ['content-type', 'text/plain', 'content-length', '11'], nonAscii: false, contentLength: 11 },
    ]);
    expect(r.events.body.toString()).toBe('hello world');
    expect(r.events.ends).toEqual([null]);
    expect(r.keepAlive).toBe(true);
  });

  it('Content-Length: 0 ends at the head', () => {
    const r = parse(b('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
    expect(r.done).toBe(true);
    expect(r.events.body.length).toBe(0);
    expect(r.events.ends).toHaveLength(1);
  });

  it('repeated identical Content-Length is accepted', () => {
    const r = parse(b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'));
    expect(r.done).toBe(true);
    expect(r.events.body.toString()).toBe('ok');
  });

  it('chunked with extensions and trailers', () => {
    const wire =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n' +
      '5;name=value;other\r\nhello\r\n' +
      '1 ; spaced-ext\r\n,\r\n' +
      'A\r\n0123456789\r\n' +
      '0;last=1\r\ngrpc-status: 0\r\ngrpc-message:  done  \r\n\r\n';
    const r = parse(b(wire));
    expect(r.failed).toBe(false);
    expect(r.done).toBe(true);
    expect(r.events.body.toString()).toBe('hello,0123456789');
    expect(r.events.ends).toEqual([['grpc-status', '0', 'grpc-message', 'done']]);
    expect(r.events.heads[0]!.contentLength).toBe(-1);
    expect(r.keepAlive).toBe(true);
  });

  it('chunk sizes with leading zeros (any number of them) and whitespace before the CRLF', () => {
    const wire = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000005\r\nhello\r\n1 \t\r\n!\r\n00\r\n\r\n';
    const r = parse(b(wire));
    expect(r.failed).toBe(false);
    expect(r.done).toBe(true);
    expect(r.events.body.toString()).toBe('hello!');
    const r1 = parse(b(wire), { cuts: everyByte(wire.length) });
    expect(r1.events.body.toString()).toBe('hello!');
  });

  it('chunked without trailers ends with null trailers; hex digits in either case', () => {
    const r = parse(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n'));
    expect(r.done).toBe(true);
    expect(r.events.body.toString()).toBe('0123456789abcdefghijk');
    expect(r.events.ends).toEqual([null]);
  });

  it('EOF-delimited body runs to the close and the connection is not reused', () => {
    const bytes = b('HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nsome body that ends at close');
    const open = parse(bytes);
    expect(open.done).toBe(false);
    expect(open.events.ends).toHaveLength(0);
    const closed = parse(bytes, { eof: true });
    expect(closed.done).toBe(true);
    expect(closed.events.body.toString()).toBe('some body that ends at close');
    expect(closed.events.ends).toEqual([null]);
    expect(closed.keepAlive).toBe(false);
  });

  it('a Content-Length body cut short by EOF is not complete', () => {
    const p = new ResponseParser();
    const s = sink();
    p.start(s, false);
    const bytes = b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    p.execute(bytes, 0, bytes.length);
    expect(p.onEof()).toBe(false);
    expect(s.events.ends).toHaveLength(0);
  });

  it('1xx interim responses are skipped; the final response is reported once', () => {
    const r = parse(
      b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'),
    );
    expect(r.done).toBe(true);
    expect(r.events.heads.map((h) => h.status)).toEqual([201]);
    expect(r.events.body.toString()).toBe('ok');
  });

  it('HEAD responses have no body whatever Content-Length says', () => {
    const r = parse(b('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n'), { head: true });
    expect(r.done).toBe(true);
    expect(r.events.heads[0]!.contentLength).toBe(1234);
    expect(r.events.body.length).toBe(0);
    expect(r.keepAlive).toBe(true);
  });

  it('HEAD with Transfer-Encoding: chunked has no body either', () => {
    const r = parse(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), { head: true });
    expect(r.done).toBe(true);
    expect(r.events.body.length).toBe(0);
  });

  it.each([204, 304])('%i has no body whatever Content-Length says', (status) => {
    const bytes = b(`HTTP/1.1 ${status} X\r\nContent-Length: 5\r\n\r\n`);
    const r = parse(bytes);
    expect(r.done).toBe(true);
    expect(r.used).toBe(bytes.length);
    expect(r.events.body.length).toBe(0);
  });

  it('bytes after a complete response are not consumed (excess)', () => {
    const first = b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const r = parse(Buffer.concat([first, b('HTTP/1.1 200 OK\r\n')]));
    expect(r.done).toBe(true);
    expect(r.used).toBe(first.length);
  });

  it('Connection: close and HTTP/1.0 end keep-alive; HTTP/1.0 keep-alive keeps it', () => {
    expect(parse(b('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')).keepAlive).toBe(false);
    expect(parse(b('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n')).keepAlive).toBe(false);
    expect(parse(b('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n')).keepAlive).toBe(true);
  });

  it('Connection is read as a list of tokens in any case, on any of its lines', () => {
    const keepAlive = (conn: string, version = '1.1'): boolean => parse(b(`HTTP/${version} 200 OK\r\n${conn}Content-Length: 0\r\n\r\n`)).keepAlive;
    expect(keepAlive('Connection: Keep-Alive, CLOSE\r\n')).toBe(false);
    expect(keepAlive('Connection: x-trace\r\nconnection:  close \r\n')).toBe(false);
    expect(keepAlive('Connection: x-close-notify\r\n')).toBe(true); // a token that merely contains "close"
    expect(keepAlive('Connection: x-keep-alive-hint\r\n', '1.0')).toBe(false);
    expect(keepAlive('Connection: x-trace, Keep-Alive\r\n', '1.0')).toBe(true);
  });

  it('obs-text header bytes are kept as latin1 (byte-exact) and flagged', () => {
    const raw = Buffer.concat([b('HTTP/1.1 200 OK\r\nX-V: a'), Buffer.from([0xe9, 0xff, 0x80]), b('z\r\nContent-Length: 0\r\n\r\n')]);
    const r = parse(raw);
    const h = r.events.heads[0]!;
    expect(h.nonAscii).toBe(true);
    expect(Buffer.from(h.headers[1]!, 'latin1').equals(Buffer.concat([b('a'), Buffer.from([0xe9, 0xff, 0x80]), b('z')]))).toBe(true);
  });

  it('an empty reason phrase is allowed', () => {
    const r = parse(b('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n'));
    expect(r.done).toBe(true);
    expect(r.events.heads[0]!.reason).toBe('');
    const r2 = parse(b('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n'));
    expect(r2.done).toBe(true);
  });
});

describe('refusals', () => {
  const cases: Array<[string, string]> = [
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n'],
    ['obs-fold with a tab', 'HTTP/1.1 200 OK\r\nX-A: a\r\n\tfolded\r\nContent-Length: 0\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'],
    ['differing Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['non-numeric Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\nabc'],
    ['signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc'],
    ['comma list Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
    ['empty chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n'],
    ['chunk size overflow', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n'],
    ['negative chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n'],
    ['a word after the chunk size (only whitespace, then ";" or the CRLF)', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 junk\r\nabc\r\n0\r\n\r\n'],
    ['chunk size above 2^52 - 1', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding in an HTTP/1.0 response', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['chunk size line ended by bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n'],
    ['bare LF in the head', 'HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\nContent-Length: 0\r\n\r\n'],
    ['bare CR in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'],
    ['NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n'],
    ['header line without a colon', 'HTTP/1.1 200 OK\r\nX-A a\r\nContent-Length: 0\r\n\r\n'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n'],
    ['invalid header name', 'HTTP/1.1 200 OK\r\nX(A): a\r\nContent-Length: 0\r\n\r\n'],
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['HTTP/2 status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n'],
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
  ];

  it.each(cases)('%s', (_name, wire) => {
    const r = parse(b(wire));
    expect(r.failed).toBe(true);
    expect(r.error).toEqual(expect.any(String));
    expect(r.keepAlive).toBe(false);
    expect(r.events.ends).toHaveLength(0);
    // The same refusal byte by byte.
    const r1 = parse(b(wire), { cuts: everyByte(wire.length) });
    expect(r1.failed).toBe(true);
    expect(r1.events.ends).toHaveLength(0);
  });

  it('a head larger than 64 KiB is refused', () => {
    const r = parse(b(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 0\r\n\r\n`));
    expect(r.failed).toBe(true);
  });
});

// ---- property: any split gives the same result as no split ---------------------------------

const tokenChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".split(''));
const headerName = fc
  .string({ unit: tokenChar, minLength: 1, maxLength: 12 })
  .filter((n) => !['content-length', 'transfer-encoding', 'connection', 'trailer'].includes(n.toLowerCase()));
/** Visible ASCII, space/tab inside, and obs-text; no leading/trailing whitespace. */
const valueChar = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  fc.constantFrom(' ', '\t'),
  fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
);
const headerValue = fc.string({ unit: valueChar, maxLength: 20 }).map((v) => v.trim());

interface Spec {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  body: Uint8Array;
  framing: 'length' | 'chunked' | 'eof';
  chunkSizes: number[];
  extensions: boolean;
  trailers: Array<[string, string]>;
  interim: boolean;
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  status: fc.constantFrom(200, 201, 206, 301, 404, 500, 503),
  reason: fc.constantFrom('OK', 'Whatever', 'Two Words', ''),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
  body: fc.uint8Array({ maxLength: 300 }),
  framing: fc.constantFrom('length', 'chunked', 'eof'),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
  extensions: fc.boolean(),
  trailers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 3 }),
  interim: fc.boolean(),
});

function encode(s: Spec): Buffer {
  const body = Buffer.from(s.body);
  let head = s.interim ? 'HTTP/1.1 100 Continue\r\n\r\n' : '';
  head += `HTTP/1.1 ${s.status}${s.reason === '' ? '' : ` ${s.reason}`}\r\n`;
  for (const [n, v] of s.headers) head += `${n}: ${v}\r\n`;
  if (s.framing === 'length') head += `Content-Length: ${body.length}\r\n`;
  if (s.framing === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  head += '\r\n';
  const parts = [Buffer.from(head, 'latin1')];
  if (s.framing === 'chunked') {
    let i = 0;
    let k = 0;
    while (i < body.length) {
      const n = Math.min(s.chunkSizes[k++ % s.chunkSizes.length]!, body.length - i);
      parts.push(Buffer.from(`${n.toString(16)}${s.extensions ? ';ext="v"' : ''}\r\n`, 'latin1'), body.subarray(i, i + n), Buffer.from('\r\n'));
      i += n;
    }
    let tail = '0\r\n';
    for (const [n, v] of s.trailers) tail += `${n}: ${v}\r\n`;
    parts.push(Buffer.from(tail + '\r\n', 'latin1'));
  } else {
    parts.push(body);
  }
  return Buffer.concat(parts);
}

describe('property: splitting never changes the result', () => {
  it('random responses, random split points, and one byte at a time', () => {
    fc.assert(
      fc.property(specArb, fc.array(fc.nat(), { maxLength: 12 }), (spec, rawCuts) => {
        const wire = encode(spec);
        const eof = spec.framing === 'eof';
        const whole = parse(wire, { eof });
        // What was generated is what is reported.
        expect(whole.failed).toBe(false);
        expect(whole.done).toBe(true);
        expect(whole.events.heads).toHaveLength(1);
        const h = whole.events.heads[0]!;
        expect(h.status).toBe(spec.status);
        expect(h.reason).toBe(spec.reason);
        const expectedHeaders = spec.headers.flatMap(([n, v]) => [n.toLowerCase(), v]);
        expect(h.headers.slice(0, expectedHeaders.length)).toEqual(expectedHeaders);
        expect(whole.events.body.equals(Buffer.from(spec.body))).toBe(true);
        const trailers = spec.framing === 'chunked' && spec.trailers.length > 0 ? spec.trailers.flatMap(([n, v]) => [n.toLowerCase(), v]) : null;
        expect(whole.events.ends).toEqual([trailers]);
        expect(whole.used).toBe(wire.length);

        const cuts = rawCuts.map((c) => c % (wire.length + 1));
        for (const split of [parse(wire, { eof, cuts }), parse(wire, { eof, cuts: everyByte(wire.length) })]) {
          expect(split.failed).toBe(false);
          expect(split.done).toBe(true);
          expect(split.events.heads).toEqual(whole.events.heads);
          expect(split.events.body.equals(whole.events.body)).toBe(true);
          expect(split.events.ends).toEqual(whole.events.ends);
          expect(split.keepAlive).toBe(whole.keepAlive);
          expect(split.used).toBe(wire.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});

// The `strict` engine's parsers on byte strings (src/dataplane/h1/parse.ts, chunked.ts): what a
// head and a chunked body are read as, what is refused, and — property tests with fast-check —
// that where the socket splits the bytes never changes the result (a request split at every
// byte boundary parses the same as in one piece), the way H1Connection and ChunkedDecoder see it.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder } from '../../src/dataplane/h1/chunked.js';
import { emptyHead, HeadError, parseHead, parseRequestLine, type ParsedHead } from '../../src/dataplane/h1/parse.js';

const head = (s: string): { e: HeadError; h: ParsedHead } => {
  const h = emptyHead();
  return { e: parseHead(s, h), h };
};

describe('request head', () => {
  it('reads method, target, version and fields (names lower-cased, values trimmed, order and repeats kept)', () => {
    const { e, h } = head(
      'PROPFIND /a/b?x=1&y HTTP/1.1\r\nHost: a.test\r\nX-Two: 1\r\nx-two:\t 2 \t\r\nEmpty:\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n\r\n',
    );
    expect(e).toBe(HeadError.None);
    expect(h.method).toBe('PROPFIND');
    expect(h.target).toBe('/a/b?x=1&y');
    expect(h.minor).toBe(1);
    expect(h.headers).toEqual(['host', 'a.test', 'x-two', '1', 'x-two', '2', 'empty', '', 'connection', 'keep-alive, Upgrade', 'upgrade', 'h2c']);
    expect(h.keepAlive && h.connectionUpgrade && h.upgrade && !h.close).toBe(true);
    expect(h.headerBytes).toBe(h.headers.reduce((n, s) => n + s.length, 0) + 4 * (h.headers.length / 2));
  });

  it('keeps obs-text bytes exactly (latin1) and flags them', () => {
    const { e, h } = head('GET / HTTP/1.0\r\nHost: x\r\nX-A: caf\xe9 \xff\r\n\r\n');
    expect(e).toBe(HeadError.None);
    expect(h.minor).toBe(0);
    expect(h.headers[3]).toBe('caf\xe9 \xff');
    expect(h.nonAscii).toBe(true);
  });

  it('reads Expect: 100-continue and other expectations', () => {
    expect(head('PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n').h.expectContinue).toBe(true);
    expect(head('PUT / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n').h.expectOther).toBe(true);
  });

  const refused: Array<[string, string, HeadError]> = [
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: x\r\n\r\n', HeadError.Version],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', HeadError.Version],
    ['HTTP/1.10', 'GET / HTTP/1.10\r\nHost: x\r\n\r\n', HeadError.Version],
    ['lower-case version', 'GET / http/1.1\r\nHost: x\r\n\r\n', HeadError.Version],
    ['HTTP/0.9 line', 'GET /\r\n\r\n', HeadError.RequestLine],
    ['two spaces', 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['tab separator', 'GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['leading space', ' GET / HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['method outside tchar', 'G@T / HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.Version],
    ['NUL in the target', 'GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['DEL in the target', 'GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['non-ASCII in the target', 'GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n', HeadError.RequestLine],
    ['space before the colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', HeadError.FieldName],
    ['empty field name', 'GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n', HeadError.FieldName],
    ['field name x(y)', 'GET / HTTP/1.1\r\nx(y): 1\r\n\r\n', HeadError.FieldName],
    ['non-ASCII field name', 'GET / HTTP/1.1\r\nX-\xe9: 1\r\n\r\n', HeadError.FieldName],
    ['obs-fold', 'GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n', HeadError.ObsFold],
    ['NUL in a value', 'GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n', HeadError.FieldValue],
    ['bare CR in a value', 'GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n', HeadError.LineEnd],
    ['bare LF in a value', 'GET / HTTP/1.1\r\nX-A: a\nB: c\r\n\r\n', HeadError.FieldValue],
    ['DEL in a value', 'GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n', HeadError.FieldValue],
    ['vertical tab in a value', 'GET / HTTP/1.1\r\nX-A: \x0bchunked\r\n\r\n', HeadError.FieldValue],
    ['bare-LF line ends', 'GET / HTTP/1.1\nHost: x\n\n', HeadError.Version],
  ];
  it.each(refused)('refuses %s', (_name, s, want) => {
    expect(head(s).e).toBe(want);
  });

  it('checks a partial request line as it arrives (0 = could still become valid)', () => {
    const h = emptyHead();
    for (const ok of ['G', 'GET', 'GET /', 'GET /x HTT', 'GET /x HTTP/1.', 'GET /x HTTP/1.1\r']) expect(parseRequestLine(ok, h), ok).toBe(0);
    for (const bad of ['G@', 'GET /x\x01', 'GET /x HTTP/2', 'GET /x HTTP/1.2', 'GET /x http', 'GET /x HTTP/1.1\n'])
      expect(parseRequestLine(bad, h), bad).toBeLessThan(0);
  });

  it('100+ field lines are fine', () => {
    const lines = Array.from({ length: 150 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    const { e, h } = head(`GET / HTTP/1.1\r\nHost: x\r\n${lines}\r\n`);
    expect(e).toBe(HeadError.None);
    expect(h.headers.length).toBe(2 * 151);
  });
});

// ---------------------------------------------------------------------------------------------
// Chunked bodies

interface Decoded {
  data: string;
  done: boolean;
  failed: boolean;
  /** Bytes after the body (the next request). */
  rest: string;
  trailers: string[] | null;
}

/** Feeds `pieces` one by one, as socket reads, and collects what the decoder hands over. */
function decode(pieces: readonly Buffer[], maxTrailerBytes = 4096): Decoded {
  const d = new ChunkedDecoder(maxTrailerBytes);
  let data = '';
  let rest = '';
  const sink = { chunkData: (b: Buffer): void => void (data += b.toString('latin1')) };
  for (const p of pieces) {
    if (d.failed) break; // the connection reads nothing after a framing error
    if (d.done) {
      rest += p.toString('latin1');
      continue;
    }
    const at = d.decode(p, 0, p.length, sink, () => false);
    if (d.done) rest += p.toString('latin1', at);
  }
  return { data, done: d.done, failed: d.failed, rest, trailers: d.trailers };
}
const L = (s: string): Buffer => Buffer.from(s, 'latin1');
const one = (s: string): Decoded => decode([L(s)]);

describe('chunked body', () => {
  it('decodes sizes (any case, leading zeros), extensions (ignored), trailers, and stops at the body end', () => {
    const r = one('5;a=1;b="x;\\"y"\r\nhello\r\n00A\r\n0123456789\r\n0\r\nX-Sum: abc\r\nx-two: \t2\r\n\r\nGET / HTTP/1.1\r\n');
    expect(r).toEqual({ data: 'hello0123456789', done: true, failed: false, rest: 'GET / HTTP/1.1\r\n', trailers: ['x-sum', 'abc', 'x-two', '2'] });
  });

  const bad: Array<[string, string]> = [
    ['size with a leading space', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['size with a trailing space', '5 \r\nhello\r\n0\r\n\r\n'],
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['negative size', '-5\r\nhello\r\n0\r\n\r\n'],
    ['size overflow', 'FFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n'],
    ['data not followed by CRLF', '5\r\nhelloXX0\r\n\r\n'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['bare LF after the size', '5\nhello\n0\n\n'],
    ['extension without a name', '5;\r\nhello\r\n0\r\n\r\n'],
    ['extension with an empty value', '5;a=\r\nhello\r\n0\r\n\r\n'],
    ['unterminated quoted extension', '5;a="x\r\nhello\r\n0\r\n\r\n'],
    ['empty size line', '\r\nhello\r\n0\r\n\r\n'],
    ['last chunk without the final CRLF, then a request', '0\r\nGET /x HTTP/1.1\r\n\r\n'],
    ['obs-fold in a trailer', '0\r\nX-A: a\r\n b\r\n\r\n'],
    ['space before a trailer colon', '0\r\nX-A : a\r\n\r\n'],
  ];
  it.each(bad)('refuses %s', (_name, s) => {
    expect(one(s).failed).toBe(true);
  });

  it('refuses a trailer section larger than its limit', () => {
    expect(decode([L(`0\r\nX-Big: ${'b'.repeat(200)}\r\n\r\n`)], 100).failed).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Split anywhere: the same result

/** Every way of cutting `s` into two pieces, and into single bytes. */
function splits(s: string): Buffer[][] {
  const b = L(s);
  const out: Buffer[][] = [Array.from(b, (x) => Buffer.from([x]))];
  for (let i = 1; i < b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  return out;
}

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
const value = fc.stringMatching(/^[\x21-\x7e\xa0-\xff]([\x20-\x7e\xa0-\xff]{0,10}[\x21-\x7e\xa0-\xff])?$/);

describe('where the bytes are split does not matter', () => {
  it('chunked bodies (valid or not): data, trailers, end and rest are the same for every split', () => {
    const chunkArb = fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.boolean(), fc.boolean());
    const bodyArb = fc.record({
      chunks: fc.array(chunkArb, { maxLength: 4 }),
      trailers: fc.array(fc.tuple(token, value), { maxLength: 2 }),
      corrupt: fc.option(fc.nat(), { nil: null }),
      tail: fc.constantFrom('', 'GET /next HTTP/1.1\r\n\r\n'),
    });
    fc.assert(
      fc.property(bodyArb, ({ chunks, trailers, corrupt, tail }) => {
        let s = '';
        for (const [data, upper, ext] of chunks) {
          const size = data.length.toString(16);
          s += `${upper ? size.toUpperCase() : size}${ext ? ';e="1"' : ''}\r\n${data}\r\n`;
        }
        s += '0\r\n' + trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n' + tail;
        if (corrupt !== null) {
          const i = corrupt % s.length;
          s = s.slice(0, i) + '\x01' + s.slice(i + 1);
        }
        const whole = one(s);
        if (corrupt === null) {
          expect(whole.done).toBe(true);
          expect(whole.data).toBe(chunks.map(([d]) => d).join(''));
          expect(whole.rest).toBe(tail);
        }
        for (const pieces of splits(s)) expect(decode(pieces)).toEqual(whole);
      }),
      { numRuns: 150 },
    );
  });

  it('request heads: the same parse however the head arrives (as the connection reassembles it)', () => {
    const headArb = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PROPFIND', 'M-SEARCH'),
      target: fc.stringMatching(/^\/[\x21-\x7e]{0,20}$/),
      minor: fc.constantFrom(0, 1),
      fields: fc.array(fc.tuple(token, value, fc.constantFrom('', ' ', '\t')), { maxLength: 6 }),
      junk: fc.option(fc.tuple(fc.nat(), fc.constantFrom('\n', '\r', '\x00', ' ', ':')), { nil: null }),
    });
    fc.assert(
      fc.property(headArb, ({ method, target, minor, fields, junk }) => {
        let s = `${method} ${target} HTTP/1.${minor}\r\n` + fields.map(([n, v, ows]) => `${n}:${ows}${v}${ows}\r\n`).join('') + '\r\n';
        if (junk !== null) {
          const i = junk[0] % (s.length - 4);
          s = s.slice(0, i) + junk[1] + s.slice(i + 1);
        }
        const end = s.indexOf('\r\n\r\n');
        const whole = end < 0 ? null : head(s.slice(0, end + 4));
        if (junk === null) {
          expect(whole?.e).toBe(HeadError.None);
          expect(whole?.h.headers).toEqual(fields.flatMap(([n, v]) => [n, v]));
        }
        // The connection searches the bytes received so far for CRLFCRLF and parses the head
        // once it is there: whatever the split, the head text it parses is the same.
        for (const pieces of splits(s)) {
          let got: Buffer = Buffer.alloc(0);
          let parsed: { e: HeadError; h: ParsedHead } | null = null;
          for (const p of pieces) {
            got = Buffer.concat([got, p]);
            const at = got.indexOf('\r\n\r\n');
            if (at >= 0) {
              parsed = head(got.toString('latin1', 0, at + 4));
              break;
            }
          }
          expect(parsed).toEqual(whole);
        }
      }),
      { numRuns: 150 },
    );
  });
});

// The request-head parser of the `strict` listener engine (RFC 9112 §2–5), on the latin1 text of
// one complete head: `method SP target SP HTTP/1.x CRLF`, field lines `name ":" OWS value OWS
// CRLF`, an empty line. Nothing lenient: tchar methods and names, no whitespace before a colon,
// no obs-fold, no bare CR or LF, no control bytes in values (obs-text kept byte for byte). What
// Content-Length / Transfer-Encoding / Host mean is judged afterwards by request_head.ts, the
// same checks every engine runs. Pure functions over strings: no sockets, no allocation beyond
// the header strings themselves. parseFieldLine is the one field-line grammar of the code: the
// request trailers (chunked.ts) and the upstream response's head and trailers
// (upstream/response_parser.ts) are read with it too.

/** Why a head was refused: None (0) when it was parsed; the others are positive (the line parsers return them negated). */
export const enum HeadError {
  None,
  RequestLine,
  Version,
  FieldName,
  FieldValue,
  ObsFold,
  LineEnd,
}

/** A parsed request head. Reused per connection; `headers` is a fresh array per request. */
export interface ParsedHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Flat [name, value, ...]: names lower-cased, values trimmed of OWS, latin1 as received. */
  headers: string[];
  /** Σ(name + value + 4), the measure request_head.ts limits. */
  headerBytes: number;
  /** Connection tokens: close, keep-alive, upgrade. */
  close: boolean;
  keepAlive: boolean;
  connectionUpgrade: boolean;
  /** An Upgrade header was present. */
  upgrade: boolean;
  /** Expect: 100-continue. */
  expectContinue: boolean;
  /** Expect with anything else. */
  expectOther: boolean;
  /** Some value (or the target) holds a byte ≥ 0x80: the upstream head must be written as latin1. */
  nonAscii: boolean;
}

export function emptyHead(): ParsedHead {
  return {
    method: '',
    target: '',
    minor: 1,
    headers: [],
    headerBytes: 0,
    close: false,
    keepAlive: false,
    connectionUpgrade: false,
    upgrade: false,
    expectContinue: false,
    expectOther: false,
    nonAscii: false,
  };
}

/** tchar (RFC 9110 §5.6.2): 1, else 0. */
export const TCHAR = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;

/** Field-value bytes (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text. CR, LF, NUL, DEL and other CTLs are not. */
export const VCHAR = new Uint8Array(256);
VCHAR[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) VCHAR[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VCHAR[c] = 1;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

/**
 * Parses the request line at the start of `s` up to its CRLF. Returns the offset after the CRLF,
 * 0 when the line is not complete yet (no CR in `s`), or -HeadError.
 */
export function parseRequestLine(s: string, out: ParsedHead): number {
  const n = s.length;
  let i = 0;
  while (i < n && TCHAR[s.charCodeAt(i)] === 1) i++;
  if (i === n) return 0;
  if (i === 0 || s.charCodeAt(i) !== SP) return -HeadError.RequestLine;
  const m = i;
  // request-target: visible ASCII only (RFC 9112 §3.2; no CTL, SP, DEL or non-ASCII byte).
  let j = m + 1;
  for (; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === SP) break;
    if (c < 0x21 || c > 0x7e) return c === CR && j + 1 === n ? 0 : -HeadError.RequestLine;
  }
  if (j === n) return 0;
  if (j === m + 1) return -HeadError.RequestLine;
  // HTTP-version: exactly "HTTP/1.0" or "HTTP/1.1", then CRLF.
  const v = j + 1;
  if (n < v + 10) {
    // Incomplete: refuse as soon as what is there cannot become a valid version.
    const have = s.slice(v);
    return 'HTTP/1.1\r\n'.startsWith(have) || 'HTTP/1.0\r\n'.startsWith(have) ? 0 : -HeadError.Version;
  }
  if (
    s.charCodeAt(v) !== 0x48 ||
    s.charCodeAt(v + 1) !== 0x54 ||
    s.charCodeAt(v + 2) !== 0x54 ||
    s.charCodeAt(v + 3) !== 0x50 ||
    s.charCodeAt(v + 4) !== 0x2f ||
    s.charCodeAt(v + 5) !== 0x31 ||
    s.charCodeAt(v + 6) !== 0x2e
  ) {
    return -HeadError.Version;
  }
  const minor = s.charCodeAt(v + 7) - 0x30;
  if (minor !== 0 && minor !== 1) return -HeadError.Version;
  if (s.charCodeAt(v + 8) !== CR || s.charCodeAt(v + 9) !== LF) return -HeadError.Version;
  out.method = s.slice(0, m);
  out.target = s.slice(m + 1, j);
  out.minor = minor;
  return v + 10;
}

/**
 * Parses one complete head (`s` ends with the empty line's CRLF). Returns HeadError.None or why
 * it is refused. `out` is reset first.
 */
export function parseHead(s: string, out: ParsedHead): HeadError {
  out.headers = [];
  out.headerBytes = 0;
  out.close = out.keepAlive = out.connectionUpgrade = out.upgrade = false;
  out.expectContinue = out.expectOther = out.nonAscii = false;
  let pos = parseRequestLine(s, out);
  if (pos <= 0) return pos === 0 ? HeadError.RequestLine : -pos;
  const headers = out.headers;
  const n = s.length;
  for (;;) {
    const e = parseFieldLine(s, pos, n, out, headers);
    if (e < 0) return -e;
    if (e === 0) return pos + 2 === n ? HeadError.None : HeadError.LineEnd;
    pos = e;
  }
}

/**
 * One field line at `pos` (of a head or a trailer section) appended to `headers`. Returns the
 * offset after its CRLF, 0 at the empty line (CRLF at pos), or -HeadError.
 */
export function parseFieldLine(s: string, pos: number, n: number, out: ParsedHead, headers: string[]): number {
  let c = s.charCodeAt(pos);
  if (c === CR) return pos + 1 < n && s.charCodeAt(pos + 1) === LF ? 0 : -HeadError.LineEnd;
  if (c === SP || c === HTAB) return -HeadError.ObsFold;
  let i = pos;
  let upper = false;
  for (; i < n; i++) {
    c = s.charCodeAt(i);
    if (TCHAR[c] !== 1) break;
    if (c >= 0x41 && c <= 0x5a) upper = true;
  }
  if (i === pos || c !== 0x3a /* : */) return -HeadError.FieldName;
  const nameEnd = i;
  i++;
  while (i < n && ((c = s.charCodeAt(i)) === SP || c === HTAB)) i++;
  const vStart = i;
  let vEnd = i;
  for (; i < n; i++) {
    c = s.charCodeAt(i);
    if (c === CR) break;
    if (VCHAR[c] !== 1) return -HeadError.FieldValue;
    if (c !== SP && c !== HTAB) {
      vEnd = i + 1;
      if (c > 0x7e) out.nonAscii = true;
    }
  }
  if (i + 1 >= n || s.charCodeAt(i + 1) !== LF) return -HeadError.LineEnd;
  const name = upper ? s.slice(pos, nameEnd).toLowerCase() : s.slice(pos, nameEnd);
  const value = s.slice(vStart, vEnd);
  headers.push(name, value);
  out.headerBytes += name.length + value.length + 4;
  switch (name.length) {
    case 6:
      if (name === 'expect') {
        if (/(?:^|\W)100-continue(?:$|\W)/i.test(value)) out.expectContinue = true;
        else out.expectOther = true;
      }
      break;
    case 7:
      if (name === 'upgrade') out.upgrade = true;
      break;
    case 10:
      if (name === 'connection') connectionTokens(value, out);
      break;
  }
  return i + 2;
}

/** The Connection tokens this engine acts on (RFC 9110 §7.6.1; case-insensitive). */
function connectionTokens(value: string, out: ParsedHead): void {
  for (const t of value.split(',')) {
    const tok = t.trim().toLowerCase();
    if (tok === 'close') out.close = true;
    else if (tok === 'keep-alive') out.keepAlive = true;
    else if (tok === 'upgrade') out.connectionUpgrade = true;
  }
}

// Reads a request head out of uWS (synchronously, inside the handler), checks it the way a
// careful proxy must (DESIGN.md §6), and builds the head we send upstream: hop-by-hop headers
// removed, x-forwarded-* and x-request-id set, header order and duplicate lines kept.
// Module-level scratch state: the uWS handler runs to completion before the next one starts.

import type { IncomingMessage } from 'node:http';
import type { HttpRequest } from 'uWebSockets.js';
import { ProxyError } from '../errors.js';
import type { RequestTrace } from '../tracing/tracer.js';
import { connectionNamed, hopByHop } from './hop_by_hop.js';
import { normalizePath } from './path_normal.js';
import { newRequestId } from './request_id.js';

export const enum BodyFraming {
  None,
  Length,
  Chunked,
}

/** The checked request head. One per request; fields are plain values. */
export interface RequestHead {
  method: string;
  /** Path without the query, as received (and forwarded). */
  path: string;
  /** The path's normal form (path_normal.ts) that routing and authorization match against. */
  matchPath: string;
  /** Path plus `?query` when there is one. */
  target: string;
  host: string;
  framing: BodyFraming;
  contentLength: number;
  requestId: string;
  /** Flat [name, value, ...] as received, in order, lower-case names (uWS lower-cases them). */
  headers: string[];
  /** The client's SPIFFE ID on mTLS listeners, else null. */
  peer: string | null;
  /** The client's address. */
  client: string;
  /** Whether the request has a Connection header (whose named headers are hop-by-hop). */
  hasConnection: boolean;
  /** The client's protocol (access log): HTTP/1.1 unless the engine says otherwise. */
  protocol: 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';
  /** The request's trace when tracing is on (set by the listener before the upstream head is built). */
  trace?: RequestTrace | null;
}

// Scratch filled by req.forEach: no closure allocated per request.
let scratch: string[] = [];
let scratchBytes = 0;
function collect(name: string, value: string): void {
  scratch.push(name, value);
  scratchBytes += name.length + value.length + 4;
}

/** The headers the last readRequestHead() read from uWS (for the request id of its refusal). */
export function uwsHeadersRead(): readonly string[] {
  return scratch;
}

/** A client's x-request-id that a refusal may echo: printable ASCII, not too long. */
const ECHOABLE_ID = /^[\x20-\x7e]{1,200}$/;

/**
 * The request id of a request refused before its head was checked whole (checkRequestHead threw,
 * or the parser refused it): the client's x-request-id when it is plain printable text, else a
 * fresh one. Only refusals pay for this; an accepted head gets its id in checkRequestHead, once.
 * `headers`: flat [name, value, ...] in any case, or null when no header was parsed.
 */
export function refusalRequestId(headers: readonly string[] | null): string {
  if (headers !== null) {
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length === 12 && name.toLowerCase() === 'x-request-id') {
        const v = headers[i + 1]!;
        if (ECHOABLE_ID.test(v)) return v;
        break;
      }
    }
  }
  return newRequestId();
}

/**
 * Reads and checks the head from uWS. Throws ProxyError (bad_request / headers_too_large) for
 * what must be refused. `maxHeadBytes` bounds request line + headers.
 */
export function readRequestHead(req: HttpRequest, maxHeadBytes: number, underscores: UnderscorePolicy): RequestHead {
  const method = req.getCaseSensitiveMethod();
  const path = req.getUrl();
  // undefined when the target has no '?', '' for a bare '?' (kept: the upstream sees what was sent).
  const rawQuery = req.getQuery();
  scratch = [];
  scratchBytes = 0;
  req.forEach(collect);
  const head = checkRequestHead(method, path, rawQuery, scratch, scratchBytes, maxHeadBytes, underscores);
  if (head.framing === BodyFraming.Chunked) {
    // uWS 20.30's chunked decoder is lenient (a chunk size with a leading space ends the body;
    // the CRLF after chunk data is not checked): what it passes on may not be what the client
    // framed, so the uws engine takes request bodies with a Content-Length only.
    throw new ProxyError('bad_request', 'chunked request bodies are not accepted on the uws engine (use engine: node)');
  }
  return head;
}

/**
 * Reads and checks the head of a node:http request (inbound TLS listeners). Node's own parser
 * has already refused malformed framing; the same checks as for uWS run on top.
 */
export function readNodeRequestHead(req: IncomingMessage, maxHeadBytes: number, underscores: UnderscorePolicy): RequestHead {
  const raw = req.rawHeaders;
  const headers: string[] = new Array<string>(raw.length);
  let bytes = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    headers[i] = name;
    headers[i + 1] = value;
    bytes += name.length + value.length + 4;
  }
  if (req.httpVersionMajor !== 1) throw new ProxyError('bad_request', `unsupported HTTP version ${req.httpVersion}`);
  return readStrictRequestHead(req.method ?? 'GET', req.url ?? '/', req.httpVersionMinor, headers, bytes, maxHeadBytes, underscores);
}

/**
 * Checks a head parsed by the `strict` engine (src/dataplane/h1/parse.ts: method, target, HTTP
 * minor version, flat lower-case headers with latin1 values), or by node:http (above). The parser
 * has refused malformed syntax; the same checks as for every engine run on top.
 */
export function readStrictRequestHead(
  method: string,
  target: string,
  minor: number,
  headers: string[],
  headerBytes: number,
  maxHeadBytes: number,
  underscores: UnderscorePolicy,
): RequestHead {
  const q = target.indexOf('?');
  const head = checkRequestHead(
    method,
    q < 0 ? target : target.slice(0, q),
    q < 0 ? undefined : target.slice(q + 1),
    headers,
    headerBytes,
    maxHeadBytes,
    underscores,
  );
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
  if (minor === 0) {
    if (head.framing === BodyFraming.Chunked) throw new ProxyError('bad_request', 'Transfer-Encoding in an HTTP/1.0 request');
    head.protocol = 'HTTP/1.0';
  }
  return head;
}

const TOKEN_METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Bytes that never belong in a request target (RFC 9112 §3.2: no CTL, no space, no DEL). */
// eslint-disable-next-line no-control-regex -- matching control bytes is the point
const TARGET_CTL = /[\x00-\x20\x7f]/;
/** A Host value: reg-name or IP literal, optional port; no list, no whitespace, no control bytes. */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+;=]+)(?::\d{0,5})?$/;

/**
 * What to do with request header names containing `_` (Envoy's headers_with_underscores_action):
 * CGI, WSGI and PHP-FPM map `x_forwarded_client_cert` and `x-forwarded-client-cert` to the same
 * variable, so a forged one could shadow the real one. `dropped` counts what `drop` removed.
 */
export interface UnderscorePolicy {
  /** Set from the listener's config (a reload may change it). */
  action: 'drop' | 'reject' | 'allow';
  dropped: number;
}

/** The checks every request head passes, whoever parsed it. */
function checkRequestHead(
  method: string,
  path: string,
  rawQuery: string | undefined,
  headers: string[],
  headerBytes: number,
  maxHeadBytes: number,
  underscores: UnderscorePolicy,
): RequestHead {
  const query = rawQuery ?? '';
  if (headerBytes + path.length + query.length + method.length + 12 > maxHeadBytes) {
    throw new ProxyError('headers_too_large', `request head is larger than ${maxHeadBytes} bytes`);
  }
  if (!TOKEN_METHOD.test(method)) throw new ProxyError('bad_request', 'invalid method');
  if (path.charCodeAt(0) !== 0x2f /* / */) throw new ProxyError('bad_request', 'request target must be in origin form (/path)');
  if (path.includes('#') || query.includes('#')) throw new ProxyError('bad_request', 'request target must not carry a #fragment');
  if (TARGET_CTL.test(path) || TARGET_CTL.test(query)) throw new ProxyError('bad_request', 'control character or space in the request target');
  const matchPath = normalizePath(path);
  if (typeof matchPath !== 'string') throw new ProxyError('bad_request', `ambiguous request path: ${matchPath.refused}`);
  if (underscores.action !== 'allow') headers = screenUnderscores(headers, underscores);

  let host: string | null = null;
  let contentLength = -1;
  let chunked = false;
  let requestId = '';
  let hasConnection = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (value.includes('\uFFFD')) {
      // uWS decodes header bytes as UTF-8; invalid bytes arrive replaced and cannot be forwarded exactly.
      throw new ProxyError('bad_request', `header "${name}" has bytes that are not valid UTF-8`);
    }
    if (name.length === 0) throw new ProxyError('bad_request', 'empty header name');
    switch (name) {
      case 'host':
        if (host !== null) throw new ProxyError('bad_request', 'more than one Host header');
        if (!HOST_VALUE.test(value)) throw new ProxyError('bad_request', 'invalid Host header');
        host = value;
        break;
      case 'content-length': {
        if (!/^\d{1,15}$/.test(value)) throw new ProxyError('bad_request', 'invalid Content-Length');
        const n = Number(value);
        if (contentLength >= 0 && n !== contentLength) throw new ProxyError('bad_request', 'differing Content-Length headers');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        if (chunked || value.toLowerCase() !== 'chunked') {
          throw new ProxyError('bad_request', `unsupported Transfer-Encoding "${value.slice(0, 64)}" (only a single "chunked" is accepted)`);
        }
        chunked = true;
        break;
      case 'x-request-id':
        if (requestId === '') requestId = value;
        break;
      case 'connection':
        hasConnection = true;
        break;
    }
  }
  if (host === null || host === '') throw new ProxyError('bad_request', 'missing Host header');
  if (chunked && contentLength >= 0) throw new ProxyError('bad_request', 'both Content-Length and Transfer-Encoding');
  return {
    method,
    path,
    matchPath,
    target: rawQuery !== undefined ? `${path}?${query}` : path,
    host,
    framing: chunked ? BodyFraming.Chunked : contentLength > 0 ? BodyFraming.Length : BodyFraming.None,
    contentLength,
    requestId: requestId === '' ? newRequestId() : requestId,
    headers,
    peer: null,
    client: '',
    hasConnection,
    protocol: 'HTTP/1.1',
    trace: null,
  };
}

/** Applies the drop/reject policy to header names with `_`; the same array when there are none. */
function screenUnderscores(headers: string[], policy: UnderscorePolicy): string[] {
  let i = 0;
  while (i < headers.length && !headers[i]!.includes('_')) i += 2;
  if (i >= headers.length) return headers;
  if (policy.action === 'reject') throw new ProxyError('bad_request', `header name with an underscore: "${headers[i]!.slice(0, 64)}"`);
  const kept = headers.slice(0, i);
  for (; i < headers.length; i += 2) {
    if (headers[i]!.includes('_')) policy.dropped++;
    else kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}

// The head being routed: route matching runs synchronously inside the handler, so one static
// lookup function over a module-level reference avoids a closure per request.
let lookupHeaders: string[] = [];
function lookupHeader(name: string): string | undefined {
  const h = lookupHeaders;
  let found: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === name) found = found === undefined ? h[i + 1] : `${found}, ${h[i + 1]}`;
  }
  return found;
}

/** A header lookup over a head's flat header list (for route matching); repeated lines are joined with ", ". Valid until the next call. */
export function headerLookup(head: RequestHead): (name: string) => string | undefined {
  lookupHeaders = head.headers;
  return lookupHeader;
}

/**
 * The request head sent upstream, as one string (written as UTF-8, which restores the bytes uWS
 * decoded). Drops hop-by-hop headers (RFC 9110 §7.6.1) and those named in Connection, `expect`
 * (we answer 100-continue ourselves), and proxy-* headers meant for us; appends the client to
 * x-forwarded-for, sets x-forwarded-proto and x-request-id. A traced request whose trace
 * writes its own headers (tracer.ts) goes with those instead of the caller's traceparent and B3
 * headers (and without its tracestate when the trace starts here).
 */
export function buildUpstreamHead(head: RequestHead, clientAddress: string | null, proto: string, xfcc: string | null = null): string {
  const h = head.headers;
  const trace = head.trace ?? null;
  const traceHeaders = trace === null ? '' : trace.outgoing;
  const connectionTokens = head.hasConnection ? connectionNamed(h) : null;
  let xff = '';
  let sawLength = false;
  let out = `${head.method} ${head.target} HTTP/1.1\r\n`;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    const value = h[i + 1]!;
    if (hopByHop(name)) continue;
    switch (name) {
      case 'proxy-authorization':
      case 'proxy-authenticate':
      case 'expect':
      case 'x-forwarded-proto':
      case 'x-forwarded-client-cert': // only ours, never one a client sent
        continue;
      case 'te':
        // Only "trailers" is meaningful end to end (gRPC needs it).
        if (value.toLowerCase() === 'trailers') out += 'te: trailers\r\n';
        continue;
      case 'x-forwarded-for':
        if (clientAddress === null) break; // forwarded as sent
        xff = xff === '' ? value : `${xff}, ${value}`;
        continue;
      case 'x-request-id':
        continue; // re-added below, exactly once
      case 'traceparent':
      case 'b3':
      case 'x-b3-traceid':
      case 'x-b3-spanid':
      case 'x-b3-parentspanid':
      case 'x-b3-sampled':
      case 'x-b3-flags':
        if (traceHeaders !== '') continue; // replaced by ours below
        break;
      case 'tracestate':
        if (traceHeaders !== '' && trace!.parentSpanId === '') continue; // a new trace has no vendor state yet
        break;
      case 'content-length':
        // Framing belongs to the proxy (DESIGN §8): written from the length it checked, once,
        // where the client put it, and never removable by a Connection token.
        if (sawLength || head.framing === BodyFraming.Chunked) continue;
        sawLength = true;
        out += `content-length: ${head.contentLength}\r\n`;
        continue;
      case 'host':
        out += `host: ${value}\r\n`; // exactly one (checked); never removable by Connection
        continue;
    }
    if (connectionTokens !== null && connectionTokens.includes(name)) continue;
    out += `${name}: ${value}\r\n`;
  }
  if (clientAddress !== null) out += `x-forwarded-for: ${xff === '' ? clientAddress : `${xff}, ${clientAddress}`}\r\n`;
  out += `x-forwarded-proto: ${proto}\r\nx-request-id: ${head.requestId}\r\n`;
  if (xfcc !== null) out += `x-forwarded-client-cert: ${xfcc}\r\n`;
  if (traceHeaders !== '') out += traceHeaders;
  if (head.framing === BodyFraming.Chunked) out += 'transfer-encoding: chunked\r\n';
  return out + '\r\n';
}

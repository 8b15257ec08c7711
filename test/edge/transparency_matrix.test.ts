// The transparency matrix (issue 19): every case is run direct (client → app) and through each
// listener engine of ONE sidecar — `engine: uws`, `engine: node`, and a TLS listener (node:https)
// — and what the app and the client see is diffed, modulo the documented proxy changes
// (README "HTTP/1.1 behaviour and known limits"; normalisation in transparency_harness.ts):
//
//  request (app side): hop-by-hop headers removed (connection and the names it lists, keep-alive,
//    te except `te: trailers`, transfer-encoding, upgrade, proxy-connection, proxy-authorization,
//    proxy-authenticate) and `expect` (the proxy answers 100-continue itself); x-forwarded-for
//    appended (exactly one line: the client's values + 127.0.0.1), x-forwarded-proto set (one line),
//    x-request-id kept or generated (one line); header NAMES lower-cased on every engine (the
//    proxy writes the upstream head with lower-case names: EngineRules.requestNames); the request
//    version may become HTTP/1.1; the body framing kind (length / chunked / none) must not change,
//    chunk boundaries and chunk extensions may (re-framing); content-length stays where the
//    client put it; method, target, header order, duplicates, values (obs-text byte for byte),
//    body bytes and trailers must be identical.
//  response (client side): status, reason, header lines in order (names lower-cased by every
//    engine: EngineRules.responseNames) modulo hop-by-hop (connection + named, keep-alive, te,
//    transfer-encoding, upgrade, proxy-connection); content-length / transfer-encoding are framing
//    and compared apart (a Content-Length keeps its value, chunked stays chunked, a close-delimited
//    body may be re-framed as chunked for HTTP/1.1 clients and as Content-Length or close for 1.0;
//    never chunked to an HTTP/1.0 client); Date by engine policy (exactly one line; EngineRules.date);
//    no engine may add a `uWebSockets` header; body bytes, trailers, 1xx interims, the connection
//    state after the exchange (a probe request must be answered, or the connection is closed), and
//    truncation (the app closing mid-body must reach the client as an abrupt close).
//
// The expected outcome per case and engine is in one table, EXPECTED: `exact` unless a `limited`
// entry says otherwise. A limited case asserts what does happen: the documented refusal
// (connection closed without a response, nothing reaches the app) or that the output equals the
// direct output after removing exactly the documented loss (e.g. trailers) — and that the loss is
// real, so a change of behaviour fails the test. The node engine and the TLS listener are expected
// to be exact everywhere.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, filesSource, leaf, newCa, spiffe, startSidecar, tempDir, writeTlsFiles, type Sidecar } from '../helpers/sidecar.js';
import {
  APP_DATE,
  closeHarness,
  diffApp,
  diffClient,
  headerValues,
  latin1,
  parseRequests,
  RawApp,
  requestBytes,
  responseBytes,
  sleep,
  wantsClose,
  type AppExchange,
  type AppScript,
  type ClientPlan,
  type ClientStep,
  type Diff,
  type EngineRules,
  type Header,
  type Message,
  type Notes,
  type ResponseSpec,
  type RunResult,
  type Target,
  runClient,
} from './transparency_harness.js';

// ---------------------------------------------------------------------------------------------
// Engines

type EngineName = 'uws' | 'node' | 'tls' | 'strict' | 'strict-tls';

interface Engine {
  readonly name: EngineName;
  readonly rules: EngineRules;
}

const ENGINES: readonly Engine[] = [
  // uWS writes its own Date (README: "the upstream's Date is replaced").
  { name: 'uws', rules: { name: 'uws', proto: 'http', requestNames: 'lower', responseNames: 'lower', date: 'replaced' } },
  // node:http / node:https: exactly one Date; whether it is the app's is reported in the score line.
  { name: 'node', rules: { name: 'node', proto: 'http', requestNames: 'lower', responseNames: 'lower', date: 'either' } },
  { name: 'tls', rules: { name: 'tls', proto: 'https', requestNames: 'lower', responseNames: 'lower', date: 'either' } },
  // `engine: strict` (src/dataplane/h1/), plaintext and on a TLS listener: the app's Date is kept.
  { name: 'strict', rules: { name: 'strict', proto: 'http', requestNames: 'lower', responseNames: 'lower', date: 'kept' } },
  { name: 'strict-tls', rules: { name: 'strict-tls', proto: 'https', requestNames: 'lower', responseNames: 'lower', date: 'kept' } },
];

// ---------------------------------------------------------------------------------------------
// Expectations

/**
 * How a limited case behaves instead of `exact`: `check` says what must happen instead (null =
 * it did), given the direct and the proxied run and the full diff between them.
 */
interface Limited {
  readonly limited: string;
  readonly check: (direct: RunResult, proxied: RunResult, diffs: readonly Diff[], c: Case, rules: EngineRules) => string | null;
}

type Expectation = 'exact' | Limited;

const UWS_HTTP10 = 'HTTP/1.0 requests get no response from uWS 20.30 (the connection stays open until its ~10 s idle timeout)';

const UWS_PIPELINE = 'pipelined requests: uWS 20.30 closes the connection, nothing is forwarded';

const saw = (p: RunResult): string =>
  `${p.client.outcome}, ${p.client.bytes} B ${JSON.stringify(p.client.rawStart.slice(0, 120))}, app saw ${p.app.length} request(s)`;

/** Closed at once without a response byte; the app sees nothing. */
const closedBy = (reason: string): Limited => ({
  limited: reason,
  check: (_d, p) =>
    p.client.outcome === 'closed-no-response' && p.client.bytes === 0 && p.app.length === 0
      ? null
      : `expected a close without a response and nothing at the app; got ${saw(p)}`,
});

/** No response and no close within the case's time limit; the app sees nothing. */
const ignoredBy = (reason: string): Limited => ({
  limited: reason,
  check: (_d, p) =>
    p.client.outcome === 'timeout' && p.client.bytes === 0 && p.app.length === 0 ? null : `expected no response, no close, nothing at the app; got ${saw(p)}`,
});

/** A local reply with this status and x-outrigger-error; the app sees nothing. */
const refusedWith = (status: number, reason: string): Limited => ({
  limited: reason,
  check: (_d, p) => {
    const finals = p.client.messages.filter((m) => !m.interim);
    const ok = p.app.length === 0 && finals.length === 1 && finals[0]!.status === status && headerValues(finals[0]!.headers, 'x-outrigger-error').length === 1;
    return ok ? null : `expected a local ${status} with x-outrigger-error and nothing at the app; got ${saw(p)}`;
  },
});

/** A local 400, or a close without a response byte (when more bytes followed in the same read); the app sees nothing. */
const refusedOrClosedBy = (reason: string): Limited => ({
  limited: reason,
  check: (_d, p) => {
    const finals = p.client.messages.filter((m) => !m.interim);
    const refused = finals.length === 1 && finals[0]!.status === 400 && headerValues(finals[0]!.headers, 'x-outrigger-error').length === 1;
    const closed = p.client.outcome === 'closed-no-response' && p.client.bytes === 0;
    return p.app.length === 0 && (refused || closed) ? null : `expected a local 400 or a close, and nothing at the app; got ${saw(p)}`;
  },
});

/** uws refuses chunked request bodies: uWS 20.30's chunk decoder is lenient (see test/edge/hostile.test.ts). */
const UWS_CHUNKED = 'chunked request bodies are refused on the uws engine (uWS 20.30 decodes chunk sizes leniently)';

/** Exact once `loss` is applied to the direct result — and not without it (the loss is real). */
const lossOf = (reason: string, loss: (direct: RunResult) => RunResult): Limited => ({
  limited: reason,
  check: (d, p, _diffs, c, rules) => {
    const rest = diffAll(loss(d), p, c, rules, { dateKept: [] });
    return rest.length === 0 ? null : `beyond "${reason}" it differs:\n${fmt(rest)}`;
  },
});

/** The direct result without response trailers (and the Trailer header announcing them). */
const withoutResponseTrailers = (r: RunResult): RunResult => ({
  ...r,
  client: {
    ...r.client,
    messages: r.client.messages.map((m) => ({ ...m, trailers: [], headers: m.headers.filter(([n]) => n.toLowerCase() !== 'trailer') })),
  },
});

/** The direct result with non-ASCII bytes (and blanks) trimmed off both ends of request header values. */
const withEdgesTrimmed = (r: RunResult): RunResult => ({
  ...r,
  app: r.app.map((a) => ({
    ...a,
    msg: { ...a.msg, headers: a.msg.headers.map(([n, v]): Header => [n, v.replace(/^[\x80-\xff \t]+|[\x80-\xff \t]+$/g, '')]) },
  })),
});

/** The direct result without the 1xx interim responses of `status`. */
const withoutInterim =
  (status: number) =>
  (r: RunResult): RunResult => ({
    ...r,
    client: { ...r.client, messages: r.client.messages.filter((m) => !(m.interim && m.status === status)) },
  });

// ---------------------------------------------------------------------------------------------
// Cases

interface Case {
  readonly id: string;
  /** The client's exact bytes, or steps. */
  readonly send: Buffer | ClientStep[];
  readonly app: AppScript;
  /** Sanity checks of the direct run: the case tests what it says it tests. */
  readonly directCheck?: (r: RunResult) => void;
  /** Final responses the client waits for (default: one per request in the bytes sent). */
  readonly finals?: number;
  readonly timeoutMs?: number;
  /** Compare the app's requests sorted by target (pipelined requests may use several pool connections). */
  readonly unordered?: boolean;
  /** Both connection outcomes are correct (the app's own Connection: close is hop-by-hop). */
  readonly conn?: 'either';
  /** After the client is done, wait (bounded) until this holds for the app's requests. */
  readonly appWait?: (reqs: RunResult['app']) => boolean;
}

const HOST: Header = ['Host', 'example.test'];
const UA: Header = ['User-Agent', 'transparency-matrix/1'];

const get = (target: string, extra: Header[] = [], o: { version?: string; method?: string } = {}): Buffer =>
  requestBytes(o.method ?? 'GET', target, [HOST, UA, ...extra], undefined, { version: o.version });

const withBody = (method: string, target: string, body: Buffer | string, extra: Header[] = [], o: { version?: string } = {}): Buffer =>
  requestBytes(method, target, [HOST, UA, ...extra], body, { version: o.version });

/** What a correct server does with a request's connection: close when asked (or 1.0 without keep-alive). */
function connectionHeaders(req: Message): { headers: Header[]; close: boolean } {
  const close = wantsClose([req]);
  if (close && req.version === 'HTTP/1.1') return { headers: [['Connection', 'close']], close };
  if (!close && req.version === 'HTTP/1.0') return { headers: [['Connection', 'keep-alive']], close };
  return { headers: [], close };
}

/** Once the body is in: answer `make(request)` (default: 200 naming the request), closing when the request asked to. */
function answer(make?: ResponseSpec | ((req: Message) => ResponseSpec)): AppScript {
  return async (x: AppExchange) => {
    if (!(await x.body())) return;
    const req = x.req.msg;
    const spec: ResponseSpec =
      make === undefined
        ? {
            headers: [
              ['Content-Type', 'text/plain; charset=utf-8'],
              ['X-App', 'raw'],
            ],
            body: `ok ${req.method} ${req.target}`,
          }
        : typeof make === 'function'
          ? make(req)
          : make;
    const c = connectionHeaders(req);
    let bytes = responseBytes({ ...spec, headers: [...(spec.headers ?? []), ...c.headers] });
    // A HEAD answer has the head of the GET answer and no body.
    if (req.method === 'HEAD') bytes = bytes.subarray(0, bytes.indexOf('\r\n\r\n') + 4);
    x.write(bytes);
    if (c.close || spec.framing === 'close') x.end();
  };
}

const RND_64K = randomBytes(64 * 1024);
const RND_1M = randomBytes(1024 * 1024);
const RND_50M = randomBytes(50 * 1024 * 1024);
const LATIN_VALUE = Buffer.concat([latin1('caf'), Buffer.from([0xe9, 0x20, 0xff, 0x80]), latin1(' end')]).toString('latin1');
const UTF8_VALUE = Buffer.from('naïve ✓ 日本 😀 ok', 'utf8').toString('latin1');
const UTF8_EDGES = Buffer.from('été ✓ ü', 'utf8').toString('latin1');
/** With Host and User-Agent: 100 header lines. */
const HUNDRED: Header[] = Array.from({ length: 98 }, (_, i): Header => [`X-Line-${String(i + 1).padStart(3, '0')}`, `value ${i + 1}`]);

/** A response cut short: the app writes `parts`, then ends (or destroys) the connection before the body is complete. */
function truncated(id: string, path: string, parts: Array<Buffer | string>, close: 'end' | 'destroy' = 'end'): Case {
  return {
    id,
    send: get(path),
    app: async (x) => {
      await x.body();
      for (const p of parts) x.write(p);
      await sleep(20);
      if (close === 'end') x.end();
      else x.destroy();
    },
    directCheck: (r) => expect(r.client.outcome).toBe('truncated'),
  };
}

/** Streams `total` bytes of `src` (repeated) with backpressure; stops when the connection closes. */
async function streamBody(x: AppExchange, src: Buffer, total: number, piece = 65536, pauseMs = 0): Promise<number> {
  let sent = 0;
  while (sent < total && !x.closed) {
    const n = Math.min(piece, total - sent);
    const off = sent % src.length;
    const part = off + n <= src.length ? src.subarray(off, off + n) : Buffer.concat([src.subarray(off), src.subarray(0, n - (src.length - off))]);
    sent += n;
    if (!x.write(part)) await x.drain();
    if (pauseMs > 0) await sleep(pauseMs);
  }
  return sent;
}

const CASES: Case[] = [
  // ---- methods ---------------------------------------------------------------------------
  { id: 'method-get', send: get('/method/get', [['Accept', '*/*']]), app: answer() },
  {
    id: 'method-head-content-length',
    send: get('/method/head', [], { method: 'HEAD' }),
    app: answer({
      headers: [
        ['X-Head', '1'],
        ['Content-Type', 'text/html'],
        ['Content-Length', '1234'],
      ],
      framing: 'none',
    }),
    directCheck: (r) => expect(headerValues(r.client.messages[0]!.headers, 'content-length')).toEqual(['1234']),
  },
  {
    id: 'method-post',
    send: withBody('POST', '/method/post', 'a=1&b=%20two', [['Content-Type', 'application/x-www-form-urlencoded']]),
    app: answer({ status: 201, reason: 'Created', headers: [['Location', '/method/post/17']], body: 'created' }),
  },
  { id: 'method-put', send: withBody('PUT', '/method/put', '{"k":"v"}', [['Content-Type', 'application/json']]), app: answer() },
  { id: 'method-patch', send: withBody('PATCH', '/method/patch', '[{"op":"add"}]', [['Content-Type', 'application/json-patch+json']]), app: answer() },
  {
    id: 'method-delete',
    send: get('/method/delete', [], { method: 'DELETE' }),
    app: answer({ status: 204, reason: 'No Content', headers: [['X-Deleted', 'yes']], framing: 'none' }),
  },
  {
    id: 'method-options',
    send: get('/method/options', [['Access-Control-Request-Method', 'PUT']], { method: 'OPTIONS' }),
    app: answer({ headers: [['Allow', 'GET, HEAD, PUT, OPTIONS']], body: '' }),
  },
  {
    id: 'method-propfind',
    send: withBody('PROPFIND', '/dav/', '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>', [
      ['Depth', '1'],
      ['Content-Type', 'application/xml'],
    ]),
    app: answer({ status: 207, reason: 'Multi-Status', headers: [['Content-Type', 'application/xml']], body: '<multistatus xmlns="DAV:"/>' }),
  },
  { id: 'method-purge', send: get('/method/purge', [['X-Purge', 'all']], { method: 'PURGE' }), app: answer() },
  {
    id: 'method-query',
    send: withBody('QUERY', '/method/query?x=1', 'select * where a > 1', [['Content-Type', 'text/plain']]),
    app: answer(),
  },
  {
    id: 'method-m-search',
    send: get(
      '/',
      [
        ['MAN', '"ssdp:discover"'],
        ['MX', '1'],
        ['ST', 'ssdp:all'],
      ],
      { method: 'M-SEARCH' },
    ),
    app: answer(),
  },

  // ---- targets -----------------------------------------------------------------------------
  { id: 'target-encoded-slash', send: get('/a%2Fb'), app: answer() },
  { id: 'target-encoded-tilde', send: get('/%7e'), app: answer() },
  { id: 'target-path-params', send: get('/a;b=c'), app: answer() },
  { id: 'target-dot-segments', send: get('/a/../b'), app: answer() },
  { id: 'target-query-plus-space', send: get('/?q=a+b&x=%20'), app: answer() },
  { id: 'target-bare-question-mark', send: get('/bare?'), app: answer() },
  { id: 'target-long-query', send: get(`/long?q=${'abcdefgh%20'.repeat(700)}&end=1`), app: answer() },
  { id: 'target-unicode-encoded', send: get('/%E6%97%A5%E6%9C%AC/caf%C3%A9?q=%F0%9F%98%80&%C3%BC=1'), app: answer() },
  { id: 'target-odd-legal-chars', send: get("/x/!$&'()*+,=:@-._~/y?a=b?c&/=/&%00%FF&sp=%20"), app: answer() },
  { id: 'target-double-slashes', send: get('//double//slashes/?x=//'), app: answer() },

  // ---- request headers ---------------------------------------------------------------------
  {
    id: 'req-header-order',
    send: requestBytes('GET', '/req/order', [
      ['Accept', 'text/html'],
      ['X-Zeta', '1'],
      HOST,
      ['Cache-Control', 'no-cache'],
      ['X-Alpha', '2'],
      ['Authorization', 'Bearer abc.def'],
      ['Accept-Language', 'de-CH, en;q=0.5'],
      UA,
      ['X-Middle', '3'],
      ['Referer', 'http://example.test/a'],
    ]),
    app: answer(),
  },
  {
    id: 'req-duplicate-lines',
    send: get('/req/dup', [
      ['X-Dup', 'one'],
      ['Cookie', 'a=1'],
      ['Accept', '*/*'],
      ['X-Dup', 'two, with comma'],
      ['Cookie', 'b=2'],
      ['X-Dup', 'three'],
    ]),
    app: answer(),
    directCheck: (r) => expect(headerValues(r.app[0]!.msg.headers, 'x-dup')).toHaveLength(3),
  },
  {
    id: 'req-whitespace-in-values',
    send: latin1('GET /req/ws HTTP/1.1\r\nHost: example.test\r\nX-Inner: a  b\tc\r\nX-Padded: \t padded \t\r\n\r\n'),
    app: answer(),
  },
  {
    id: 'req-mixed-case',
    send: get('/req/case', [
      ['X-MiXeD-NaMe', 'VaLuE WiTh CaSe'],
      ['Accept', 'Text/HTML; Charset=UTF-8'],
    ]),
    app: answer(),
  },
  {
    id: 'req-empty-values',
    send: latin1('GET /req/empty HTTP/1.1\r\nHost: example.test\r\nX-Empty:\r\nX-Empty-Space: \r\nX-After: a\r\n\r\n'),
    app: answer(),
  },
  {
    id: 'req-obs-text-latin1',
    send: get('/req/latin1', [
      ['X-Latin', LATIN_VALUE],
      ['X-After', 'plain'],
    ]),
    app: answer(),
    directCheck: (r) => expect(Buffer.from(headerValues(r.app[0]!.msg.headers, 'x-latin')[0]!, 'latin1').includes(0xff)).toBe(true),
  },
  {
    id: 'req-obs-text-utf8',
    send: get('/req/utf8', [
      ['X-Utf8', UTF8_VALUE],
      ['X-After', 'plain'],
    ]),
    app: answer(),
  },
  {
    id: 'req-obs-text-utf8-edges',
    send: get('/req/utf8-edges', [
      ['X-Edges', UTF8_EDGES],
      ['X-After', 'plain'],
    ]),
    app: answer(),
  },
  {
    id: 'req-100-header-lines',
    send: get('/req/hundred', HUNDRED),
    app: answer(),
    timeoutMs: 1500,
    directCheck: (r) => expect(r.app[0]!.msg.headers).toHaveLength(100),
  },
  {
    id: 'req-long-header-value',
    send: get('/req/long', [
      ['X-Long', 'v'.repeat(8000)],
      ['X-After', 'plain'],
    ]),
    app: answer(),
  },
  {
    id: 'req-hop-by-hop',
    send: get('/req/hop', [
      ['Connection', 'keep-alive, X-Hop, X-Hop-Two'],
      ['Keep-Alive', 'timeout=5, max=100'],
      ['TE', 'gzip, deflate'],
      ['Upgrade', 'websocket'],
      ['Proxy-Connection', 'keep-alive'],
      ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
      ['X-Hop', 'named in Connection'],
      ['X-Hop-Two', 'also'],
      ['X-End-To-End', 'kept'],
    ]),
    app: answer(),
  },
  {
    id: 'req-te-trailers',
    send: get('/req/te', [
      ['TE', 'trailers'],
      ['X-After', 'a'],
    ]),
    app: answer(),
  },
  {
    id: 'req-forwarded-headers',
    send: get('/req/xff', [
      ['X-Forwarded-For', '10.0.0.1, 10.0.0.2'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Request-Id', 'given-id-123'],
    ]),
    app: answer(),
  },

  // ---- response headers ----------------------------------------------------------------------
  {
    id: 'resp-set-cookie-duplicates',
    send: get('/resp/cookies'),
    app: answer({
      headers: [
        ['Set-Cookie', 'a=1; Path=/'],
        ['X-Dup', 'one'],
        ['Set-Cookie', 'b=2; HttpOnly; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
        ['X-Dup', 'two'],
      ],
      body: 'cookies',
    }),
  },
  {
    id: 'resp-mixed-case',
    send: get('/resp/case'),
    app: answer({
      headers: [
        ['X-MiXeD-CaSe', 'VaLuE'],
        ['Content-Type', 'Text/Plain; Charset=ISO-8859-1'],
      ],
      body: 'x',
    }),
  },
  {
    id: 'resp-empty-values',
    send: get('/resp/empty'),
    app: async (x) => {
      await x.body();
      x.write(`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nX-Empty:\r\nX-Empty-Space: \r\nX-After: a\r\nContent-Length: 2\r\n\r\nok`);
    },
  },
  {
    id: 'resp-obs-text',
    send: get('/resp/obs'),
    app: answer({
      headers: [
        ['X-Latin', LATIN_VALUE],
        ['X-Utf8', UTF8_VALUE],
        ['X-Edges', UTF8_EDGES],
      ],
      body: 'ok',
    }),
  },
  { id: 'resp-100-header-lines', send: get('/resp/hundred'), app: answer({ headers: HUNDRED, body: 'many' }) },
  {
    id: 'resp-long-header-value',
    send: get('/resp/long'),
    app: answer({
      headers: [
        ['X-Long', 'w'.repeat(16 * 1024)],
        ['X-After', 'b'],
      ],
      body: 'long',
    }),
  },
  {
    id: 'resp-hop-by-hop',
    send: get('/resp/hop'),
    app: answer({
      headers: [
        ['Connection', 'keep-alive, X-Resp-Hop'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Resp-Hop', 'secret'],
        ['Proxy-Connection', 'keep-alive'],
        ['Upgrade', 'foo'],
        ['X-Kept', 'yes'],
      ],
      body: 'hop',
    }),
  },
  { id: 'resp-status-reason', send: get('/resp/reason'), app: answer({ status: 299, reason: 'Custom Reason, With  Spaces', body: 'reason' }) },
  { id: 'resp-status-418', send: get('/resp/teapot'), app: answer({ status: 418, reason: "I'm a teapot", body: 'short and stout' }) },
  { id: 'resp-empty-reason', send: get('/resp/empty-reason'), app: answer({ status: 200, reason: '', body: 'no reason' }) },

  // ---- bodies ----------------------------------------------------------------------------------
  { id: 'req-body-0', send: withBody('POST', '/body/req0', ''), app: answer() },
  { id: 'req-body-1', send: withBody('POST', '/body/req1', 'x'), app: answer() },
  { id: 'req-body-64k', send: withBody('POST', '/body/req64k', RND_64K, [['Content-Type', 'application/octet-stream']]), app: answer() },
  { id: 'req-body-1m', send: withBody('PUT', '/body/req1m', RND_1M, [['Content-Type', 'application/octet-stream']]), app: answer(), timeoutMs: 10_000 },
  {
    id: 'req-body-50m',
    send: [{ send: requestBytes('POST', '/body/req50m', [HOST, ['Content-Length', String(RND_50M.length)]]) }, { stream: RND_50M }],
    app: answer((req) => ({ body: `sha256 ${req.bodySha256} ${req.bodyLength}` })),
    timeoutMs: 30_000,
    directCheck: (r) => expect(r.app[0]!.msg.bodyLength).toBe(RND_50M.length),
  },
  { id: 'resp-body-0', send: get('/body/resp0'), app: answer({ body: '' }) },
  { id: 'resp-body-1', send: get('/body/resp1'), app: answer({ body: 'y' }) },
  { id: 'resp-body-64k', send: get('/body/resp64k'), app: answer({ headers: [['Content-Type', 'application/octet-stream']], body: RND_64K }) },
  { id: 'resp-body-1m', send: get('/body/resp1m'), app: answer({ body: RND_1M }), timeoutMs: 10_000 },
  {
    id: 'resp-body-50m',
    send: get('/body/resp50m'),
    app: async (x) => {
      await x.body();
      x.write(`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${RND_50M.length}\r\n\r\n`);
      await streamBody(x, RND_50M, RND_50M.length);
    },
    timeoutMs: 30_000,
    directCheck: (r) => expect(r.client.messages[0]!.bodyLength).toBe(RND_50M.length),
  },
  {
    id: 'req-chunked',
    send: requestBytes('POST', '/body/chunked-up', [HOST, ['Content-Type', 'application/octet-stream']], RND_64K.subarray(0, 9000), { chunked: 4000 }),
    app: answer(),
    directCheck: (r) => expect(r.app[0]!.msg.framing).toBe('chunked'),
  },
  {
    id: 'req-chunked-1m',
    send: requestBytes('PUT', '/body/chunked-1m', [HOST], RND_1M, { chunked: 16 * 1024 }),
    app: answer(),
    timeoutMs: 10_000,
  },
  {
    id: 'req-chunked-extensions',
    send: latin1('POST /body/chunk-ext HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n'),
    app: answer(),
  },
  {
    id: 'resp-chunked',
    send: get('/body/chunked-down'),
    app: async (x) => {
      await x.body();
      x.write(`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`);
      for (let i = 0; i < 6; i++) {
        const c = RND_64K.subarray(i * 3000, i * 3000 + 1000 + i);
        x.write(Buffer.concat([latin1(`${c.length.toString(16)}\r\n`), c, latin1('\r\n')]));
        await sleep(3);
      }
      x.write('0\r\n\r\n');
    },
  },
  { id: 'resp-chunked-1m', send: get('/body/chunked-1m'), app: answer({ body: RND_1M, framing: 'chunked', chunkSize: 16 * 1024 }), timeoutMs: 10_000 },
  {
    id: 'resp-close-delimited',
    send: get('/body/close-delimited'),
    app: async (x) => {
      await x.body();
      // HTTP/1.0 style: no length, the close ends the body.
      x.write(Buffer.concat([latin1(`HTTP/1.0 200 OK\r\nDate: ${APP_DATE}\r\nContent-Type: application/octet-stream\r\n\r\n`), RND_64K.subarray(0, 20_000)]));
      await sleep(5);
      x.write(RND_64K.subarray(20_000, 30_000));
      x.end();
    },
    directCheck: (r) => expect(r.client.messages[0]!.framing).toBe('close'),
  },
  { id: 'resp-204', send: get('/body/204'), app: answer({ status: 204, reason: 'No Content', headers: [['X-No-Content', '1']], framing: 'none' }) },
  {
    id: 'resp-204-content-length',
    send: withBody('POST', '/body/204-cl', 'saved'),
    // Content-Length in a 204 is not allowed (RFC 9110 §8.6) but apps send it: no body follows either way.
    app: answer({ status: 204, reason: 'No Content', headers: [['Content-Length', '0']], framing: 'none' }),
  },
  {
    id: 'resp-304-content-length',
    send: get('/body/304', [['If-None-Match', '"v1"']]),
    app: answer({
      status: 304,
      reason: 'Not Modified',
      headers: [
        ['ETag', '"v1"'],
        ['Content-Length', '1234'],
      ],
      framing: 'none',
    }),
  },
  {
    id: 'resp-head-chunked',
    send: get('/body/head-chunked', [], { method: 'HEAD' }),
    app: answer({
      headers: [
        ['X-Head', 'chunked'],
        ['Transfer-Encoding', 'chunked'],
      ],
      framing: 'none',
    }),
  },
  {
    id: 'resp-trailers',
    send: get('/body/trailers', [['TE', 'trailers']]),
    app: answer({
      headers: [
        ['Content-Type', 'application/grpc'],
        ['Trailer', 'grpc-status, grpc-message'],
      ],
      body: RND_64K.subarray(0, 3000),
      framing: 'chunked',
      chunkSize: 1000,
      trailers: [
        ['grpc-status', '0'],
        ['grpc-message', 'OK'],
      ],
    }),
    directCheck: (r) => expect(r.client.messages[0]!.trailers).toHaveLength(2),
  },
  {
    id: 'req-trailers',
    send: requestBytes('POST', '/body/req-trailers', [HOST, ['Trailer', 'X-Checksum']], 'some body bytes', {
      chunked: 5,
      trailers: [['X-Checksum', 'abc123']],
    }),
    app: answer(),
    directCheck: (r) => expect(r.app[0]!.msg.trailers).toEqual([['X-Checksum', 'abc123']]),
  },
  {
    id: 'expect-100-continue',
    send: [
      { send: requestBytes('PUT', '/expect', [HOST, ['Expect', '100-continue'], ['Content-Length', '10000']]) },
      { awaitInterim: 100, timeoutMs: 1500 },
      { send: RND_64K.subarray(0, 10_000) },
    ],
    app: async (x) => {
      // What a server does: 100 Continue when asked, then read the body.
      if (/100-continue/i.test(headerValues(x.req.msg.headers, 'expect').join())) x.write('HTTP/1.1 100 Continue\r\n\r\n');
      await answer()(x);
    },
    directCheck: (r) => expect(r.client.interimsAwaited).toEqual([true]),
  },
  {
    id: 'early-hints-103',
    send: get('/hints'),
    app: async (x) => {
      await x.body();
      x.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nLink: </app.js>; rel=preload; as=script\r\n\r\n');
      await sleep(10);
      await answer({ headers: [['Link', '</style.css>; rel=preload; as=style']], body: 'page' })(x);
    },
    directCheck: (r) => expect(r.client.messages.filter((m) => m.interim).map((m) => m.status)).toEqual([103]),
  },

  // ---- truncation and aborts ---------------------------------------------------------------
  truncated('truncate-content-length', '/trunc/cl', [
    Buffer.concat([latin1(`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nContent-Length: 100000\r\n\r\n`), RND_64K.subarray(0, 30_000)]),
  ]),
  truncated('truncate-chunked', '/trunc/chunked', [
    `HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    ...[0, 1, 2].map((i) => Buffer.concat([latin1('3e8\r\n'), RND_64K.subarray(i * 1000, (i + 1) * 1000), latin1('\r\n')])),
  ]),
  truncated('truncate-after-head', '/trunc/head-only', [`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nContent-Length: 5000\r\n\r\n`], 'destroy'),
  {
    id: 'client-abort-upload',
    send: [
      { send: Buffer.concat([requestBytes('POST', '/abort/upload', [HOST, ['Content-Length', String(RND_1M.length)]]), RND_1M.subarray(0, 100_000)]) },
      { abortWhen: () => (app.requests[0]?.msg.bodyLength ?? 0) > 0, timeoutMs: 3000 },
    ],
    app: answer(),
    appWait: (reqs) => reqs[0]?.aborted === true,
    directCheck: (r) => expect(r.app[0]!.aborted).toBe(true),
  },
  {
    id: 'client-abort-download',
    send: [{ send: get('/abort/download') }, { abortAfterResponseBytes: 100_000, timeoutMs: 3000 }],
    app: async (x) => {
      await x.body();
      x.write(`HTTP/1.1 200 OK\r\nDate: ${APP_DATE}\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
      const sent = await streamBody(x, RND_1M, 10 * 1024 * 1024, 32 * 1024, 3);
      if (sent < 10 * 1024 * 1024 || x.closed) x.req.responseCutShort = true;
    },
    appWait: (reqs) => reqs[0]?.responseCutShort === true,
    directCheck: (r) => expect(r.app[0]!.responseCutShort).toBe(true),
  },

  // ---- HTTP/1.0 ----------------------------------------------------------------------------------
  {
    id: 'http10-get',
    send: get('/http10/get', [], { version: 'HTTP/1.0' }),
    app: answer(),
    timeoutMs: 1500,
    directCheck: (r) => expect(r.client.conn).toBe('closed'),
  },
  {
    id: 'http10-keep-alive',
    send: get('/http10/keep-alive', [['Connection', 'keep-alive']], { version: 'HTTP/1.0' }),
    app: answer(),
    timeoutMs: 1500,
    directCheck: (r) => expect(r.client.conn).toBe('open'),
  },
  {
    id: 'http10-app-answers-chunked',
    send: get('/http10/chunked', [['Connection', 'keep-alive']], { version: 'HTTP/1.0' }),
    // The app sees HTTP/1.1 through the proxy and answers chunked; direct (1.0) it delimits by close.
    app: answer((req) => ({ body: RND_64K.subarray(0, 5000), framing: req.version === 'HTTP/1.1' ? 'chunked' : 'close' })),
    timeoutMs: 1500,
  },
  {
    id: 'http10-post-keep-alive',
    send: withBody('POST', '/http10/post', 'hello 1.0', [['Connection', 'keep-alive']], { version: 'HTTP/1.0' }),
    app: answer(),
    timeoutMs: 1500,
  },

  // ---- connections and pipelining ----------------------------------------------------------------
  {
    id: 'pipeline-2',
    send: Buffer.concat([get('/pipe/one'), get('/pipe/two')]),
    app: answer(),
    unordered: true,
  },
  {
    id: 'pipeline-3',
    send: Buffer.concat([get('/pipe/a'), withBody('POST', '/pipe/b', 'body of b'), get('/pipe/c', [], { method: 'HEAD' })]),
    app: answer(),
    unordered: true,
  },
  { id: 'conn-close-request', send: get('/conn/close', [['Connection', 'close']]), app: answer(), directCheck: (r) => expect(r.client.conn).toBe('closed') },
  {
    id: 'conn-close-from-app',
    send: get('/conn/app-close'),
    app: async (x) => {
      await x.body();
      x.write(responseBytes({ headers: [['Connection', 'close']], body: 'bye' }));
      x.end();
    },
    // The app's Connection: close is about its own connection (hop-by-hop): keeping the client's is as correct.
    conn: 'either',
  },
];

// ---------------------------------------------------------------------------------------------
// The expected outcome per case and engine: `exact` unless listed here. The node engine and the
// TLS listener (node:https) have no entry: they are expected to be exact on every case.

const UWS_METHODS = 'extension methods refused by uWS 20.30';

const EXPECTED: Readonly<Record<string, Partial<Record<EngineName, Expectation>>>> = {
  // Policy, not a limit of an engine: a dot segment in the target is refused on every listener
  // (src/dataplane/path_normal.ts), because an app that resolves it may land outside the route or
  // authorization rule that matched (README, "Paths").
  'target-dot-segments': {
    uws: refusedWith(400, 'dot segments in the target are refused (policy)'),
    node: refusedWith(400, 'dot segments in the target are refused (policy)'),
    tls: refusedWith(400, 'dot segments in the target are refused (policy)'),
    strict: refusedWith(400, 'dot segments in the target are refused (policy)'),
    'strict-tls': refusedWith(400, 'dot segments in the target are refused (policy)'),
  },
  'method-propfind': { uws: closedBy(UWS_METHODS) },
  'method-purge': { uws: closedBy(UWS_METHODS) },
  'method-query': { uws: closedBy(UWS_METHODS) },
  'method-m-search': { uws: closedBy(UWS_METHODS) },
  'req-obs-text-latin1': { uws: refusedWith(400, 'header bytes that are not UTF-8 cannot pass uWS 20.30 exactly: refused') },
  'req-obs-text-utf8-edges': { uws: lossOf('non-ASCII bytes at the ends of a header value are trimmed by uWS 20.30', withEdgesTrimmed) },
  'req-100-header-lines': { uws: ignoredBy('more than ~50 header lines: no response from uWS 20.30 (the connection stays open until its idle timeout)') },
  'req-chunked': { uws: refusedOrClosedBy(UWS_CHUNKED) },
  'req-chunked-1m': { uws: refusedOrClosedBy(UWS_CHUNKED) },
  'req-chunked-extensions': { uws: refusedOrClosedBy(UWS_CHUNKED) },
  'req-trailers': { uws: refusedOrClosedBy(UWS_CHUNKED) },
  'resp-trailers': { uws: lossOf('response trailers dropped by uWS 20.30 (no API to send them), the Trailer header with them', withoutResponseTrailers) },
  'early-hints-103': { uws: lossOf('1xx interim responses dropped (uWS 20.30 cannot write them)', withoutInterim(103)) },
  'http10-get': { uws: ignoredBy(UWS_HTTP10) },
  'http10-keep-alive': { uws: ignoredBy(UWS_HTTP10) },
  'http10-app-answers-chunked': { uws: ignoredBy(UWS_HTTP10) },
  'http10-post-keep-alive': { uws: ignoredBy(UWS_HTTP10) },
  'pipeline-2': { uws: closedBy(UWS_PIPELINE) },
  'pipeline-3': { uws: closedBy(UWS_PIPELINE) },
};

// ---------------------------------------------------------------------------------------------
// Runs

let app: RawApp;
let sc: Sidecar;
let bundle: string;
const direct = new Map<string, RunResult>();

interface Outcome {
  readonly status: 'exact' | 'limited' | 'FAIL';
  readonly reason?: string;
  readonly diffs: Diff[];
}
const outcomes = new Map<EngineName, Map<string, Outcome>>();
const notes = new Map<EngineName, Notes>();

function planOf(c: Case): { plan: ClientPlan; sent: Message[] } {
  const steps: ClientStep[] = Buffer.isBuffer(c.send) ? [{ send: c.send }] : c.send;
  const sent = parseRequests(Buffer.concat(steps.flatMap((s) => ('send' in s ? [s.send] : []))));
  return {
    sent,
    plan: {
      steps,
      finals: c.finals ?? sent.length,
      heads: sent.map((m) => m.method === 'HEAD'),
      timeoutMs: c.timeoutMs ?? 4000,
      probe: true,
    },
  };
}

async function run(c: Case, target: Target): Promise<RunResult> {
  const { plan, sent } = planOf(c);
  app.beginRun(c.app);
  const client = await runClient(target, plan);
  await app.settle(c.timeoutMs ?? 3000);
  if (c.appWait !== undefined) {
    const until = Date.now() + 3000;
    while (!c.appWait(app.requests) && Date.now() < until) await sleep(10);
  }
  // Let late arrivals show (a request the proxy forwarded after answering, say).
  await sleep(2);
  return { app: app.requests.slice(), client, sent };
}

function diffAll(d: RunResult, p: RunResult, c: Case, rules: EngineRules, n: Notes): Diff[] {
  return [...diffApp(d.app, p.app, d.sent, rules, c.unordered === true), ...diffClient(d.client, p.client, d.sent, rules, { conn: c.conn }, n)];
}

const fmt = (diffs: readonly Diff[]): string => diffs.map((x) => `  [${x.tag}] ${x.detail}`).join('\n');

beforeAll(async () => {
  app = new RawApp();
  await app.listen();
  const ca = await newCa();
  const identity = spiffe('edge');
  const files = writeTlsFiles(tempDir(), ca.certPem, leaf(ca, identity));
  bundle = ca.certPem;
  const routes = [{ match: { path_prefix: '/' }, cluster: 'app', timeout_ms: 30_000 }];
  sc = await startSidecar(
    {
      node: { workers: 1, identity, drain_timeout_ms: 1000 },
      tls: filesSource(files),
      listeners: [
        { name: 'uws', address: '127.0.0.1:0', engine: 'uws', routes },
        { name: 'node', address: '127.0.0.1:0', engine: 'node', routes },
        { name: 'tls', address: '127.0.0.1:0', engine: 'node', tls: { mode: 'tls' }, routes },
        { name: 'strict', address: '127.0.0.1:0', engine: 'strict', routes },
        { name: 'strict-tls', address: '127.0.0.1:0', engine: 'strict', tls: { mode: 'tls' }, routes },
      ],
      clusters: [{ name: 'app', endpoints: [{ address: app.address }] }],
    },
    { workers: 1 },
  );
  for (const e of ENGINES) {
    outcomes.set(e.name, new Map());
    notes.set(e.name, { dateKept: [] });
  }
});

afterAll(async () => {
  for (const e of ENGINES) {
    const o = outcomes.get(e.name)!;
    const all = [...o.entries()];
    const exact = all.filter(([, x]) => x.status === 'exact').length;
    const limited = all.filter(([, x]) => x.status === 'limited');
    const failing = all.filter(([, x]) => x.status === 'FAIL');
    const reasons = new Map<string, string[]>();
    for (const [id, x] of limited) reasons.set(x.reason!, [...(reasons.get(x.reason!) ?? []), id]);
    const kept = notes.get(e.name)!.dateKept;
    const date =
      kept.length === 0 ? 'no Date seen' : kept.every(Boolean) ? "app's Date kept" : kept.some(Boolean) ? "app's Date sometimes kept" : "app's Date replaced";
    console.log(
      `engine ${e.name}: ${exact}/${all.length} exact; limited: ${limited.length}${reasons.size > 0 ? ` (${[...reasons].map(([r, ids]) => `${r}: ${ids.join(', ')}`).join('; ')})` : ''}` +
        `; failing: ${failing.length}${failing.length > 0 ? ` (${failing.map(([id]) => id).join(', ')})` : ''}; ${date}`,
    );
  }
  await sc?.stop();
  closeHarness();
  await closeAll();
});

describe('the case table', () => {
  it('has at least 60 cases with unique ids, and every expectation names a case', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CASES.map((c) => c.id)).size).toBe(CASES.length);
    for (const id of Object.keys(EXPECTED))
      expect(
        CASES.some((c) => c.id === id),
        id,
      ).toBe(true);
  });
});

describe('direct (client → app): the harness sees what each case is about', () => {
  for (const c of CASES) {
    it(c.id, async () => {
      const r = await run(c, { port: app.port });
      direct.set(c.id, r);
      expect(r.client.parseError, 'client-side parse error').toBeNull();
      if (c.directCheck !== undefined) c.directCheck(r);
      else {
        expect(r.client.outcome).toBe('complete');
        expect(r.app.length).toBe(r.sent.length);
      }
    });
  }
});

describe('the diff itself: an ideal proxy is exact, each kind of change is caught', () => {
  const copyMsg = (m: Message): Message => ({
    ...m,
    headers: m.headers.map((h): Header => [h[0], h[1]]),
    trailers: m.trailers.map((h): Header => [h[0], h[1]]),
    body: Buffer.from(m.body),
  });
  const lowerNames = (h: Header[]): Header[] => h.map(([n, v]): Header => [n.toLowerCase(), v]);
  /** What a perfectly transparent proxy would produce from a direct run. */
  const ideal = (id: string): RunResult => {
    const d = direct.get(id);
    if (d === undefined) throw new Error(`no direct run of ${id}`);
    return {
      sent: d.sent,
      app: d.app.map((a, i) => {
        const msg = copyMsg(a.msg);
        const sentXff = headerValues(d.sent[i]!.headers, 'x-forwarded-for');
        msg.headers = [
          ...lowerNames(msg.headers.filter(([n]) => !['x-forwarded-for', 'x-forwarded-proto', 'x-request-id'].includes(n.toLowerCase()))),
          ['x-forwarded-for', [...sentXff, '127.0.0.1'].join(', ')],
          ['x-forwarded-proto', 'http'],
          ['x-request-id', headerValues(d.sent[i]!.headers, 'x-request-id')[0] ?? '0f0e0d0c-generated'],
        ];
        msg.trailers = lowerNames(msg.trailers);
        msg.version = 'HTTP/1.1';
        return { ...a, msg };
      }),
      client: { ...d.client, messages: d.client.messages.map((m) => ({ ...copyMsg(m), headers: lowerNames(m.headers), trailers: lowerNames(m.trailers) })) },
    };
  };
  const RULES: EngineRules = { name: 'ideal', proto: 'http', requestNames: 'lower', responseNames: 'lower', date: 'either' };
  const tagsOf = (id: string, p: RunResult): string[] => {
    const c = CASES.find((x) => x.id === id)!;
    return diffAll(direct.get(id)!, p, c, RULES, { dateKept: [] }).map((x) => x.tag);
  };
  const finalOf = (r: RunResult): Message => r.client.messages.find((m) => !m.interim)!;

  it('an ideal proxy is exact on every case', () => {
    for (const c of CASES) {
      if (!direct.has(c.id)) continue;
      expect(tagsOf(c.id, ideal(c.id)), c.id).toEqual([]);
    }
  });
  it('request header order, duplicate lines and obs-text bytes', () => {
    const swapped = ideal('req-header-order');
    const h = swapped.app[0]!.msg.headers;
    [h[1], h[2]] = [h[2]!, h[1]!];
    expect(tagsOf('req-header-order', swapped)).toContain('app.headers');
    const merged = ideal('req-duplicate-lines');
    const mh = merged.app[0]!.msg.headers;
    const dups = mh.filter(([n]) => n === 'x-dup');
    merged.app[0]!.msg.headers = [...mh.filter(([n]) => n !== 'x-dup'), ['x-dup', dups.map(([, v]) => v).join(', ')]];
    expect(tagsOf('req-duplicate-lines', merged)).toContain('app.headers');
    const flipped = ideal('req-obs-text-latin1');
    flipped.app[0]!.msg.headers = flipped.app[0]!.msg.headers.map(([n, v]): Header => [n, n === 'x-latin' ? v.replace('\xff', '\xfd') : v]);
    expect(tagsOf('req-obs-text-latin1', flipped)).toContain('app.headers');
    const xff = ideal('req-forwarded-headers');
    xff.app[0]!.msg.headers = xff.app[0]!.msg.headers.filter(([n]) => n !== 'x-request-id');
    expect(tagsOf('req-forwarded-headers', xff)).toEqual(['app.x-request-id']);
  });
  it('body bytes, trailers, 1xx, uWebSockets, Date, framing, truncation, connection', () => {
    const body = ideal('req-body-64k');
    body.app[0]!.msg.bodySha256 = '0'.repeat(64);
    expect(tagsOf('req-body-64k', body)).toEqual(['app.body']);
    const trailers = ideal('resp-trailers');
    finalOf(trailers).trailers = [];
    expect(tagsOf('resp-trailers', trailers)).toEqual(['client.trailers']);
    const hints = ideal('early-hints-103');
    hints.client.messages = hints.client.messages.filter((m) => !m.interim);
    expect(tagsOf('early-hints-103', hints)).toEqual(['client.interim']);
    const uws = ideal('method-get');
    finalOf(uws).headers.push(['uwebsockets', '20']);
    expect(tagsOf('method-get', uws)).toContain('client.uwebsockets-header');
    const dates = ideal('method-get');
    finalOf(dates).headers.push(['date', APP_DATE]);
    expect(tagsOf('method-get', dates)).toEqual(['client.date']);
    const chunked10 = ideal('http10-keep-alive');
    finalOf(chunked10).framing = 'chunked';
    expect(tagsOf('http10-keep-alive', chunked10)).toContain('client.framing');
    const clean = ideal('truncate-content-length');
    clean.client.outcome = 'complete';
    expect(tagsOf('truncate-content-length', clean)).toContain('client.outcome');
    const closed = ideal('method-get');
    closed.client.conn = 'closed';
    expect(tagsOf('method-get', closed)).toEqual(['client.connection']);
  });
});

for (const engine of ENGINES) {
  describe(`through the ${engine.name} listener`, () => {
    for (const c of CASES) {
      const want: Expectation = EXPECTED[c.id]?.[engine.name] ?? 'exact';
      const label = want === 'exact' ? `${c.id}: exact` : `${c.id}: limited (${want.limited})`;
      it(label, async () => {
        const d = direct.get(c.id);
        if (d === undefined) throw new Error(`the direct run of ${c.id} failed: nothing to compare with`);
        const target: Target = engine.rules.proto === 'https' ? { port: sc.port(engine.name), tlsCa: bundle } : { port: sc.port(engine.name) };
        const p = await run(c, target);
        const n = notes.get(engine.name)!;
        const diffs = diffAll(d, p, c, engine.rules, n);
        const record = (o: Outcome): void => void outcomes.get(engine.name)!.set(c.id, o);
        if (want === 'exact') {
          record({ status: diffs.length === 0 ? 'exact' : 'FAIL', diffs });
          expect(diffs, `${engine.name} ${c.id} differs from direct:\n${fmt(diffs)}`).toEqual([]);
          return;
        }
        // Limited: what does happen instead, exactly.
        const problem = diffs.length === 0 ? `expected "${want.limited}" but the result is exact: update the table` : want.check(d, p, diffs, c, engine.rules);
        record(problem === null ? { status: 'limited', reason: want.limited, diffs } : { status: 'FAIL', diffs });
        expect(problem, `${engine.name} ${c.id}: ${problem ?? ''}\nfull diff:\n${fmt(diffs)}`).toBeNull();
      });
    }
  });
}

// Malformed and hostile requests over raw sockets (DESIGN.md §6): each is refused with a 4xx or
// the connection is closed without any response; none ever reaches the upstream, none is
// answered 2xx, and none crashes a worker. uWS detects some errors itself and then sends nothing
// (it drops the connection, in some cases only at its ~10 s idle timeout); for the ones our code
// handles (request_head.ts) the exact status and `x-outrigger-error` are asserted. This file
// runs the uws engine; test/edge/hostile.test.ts runs 131 shapes on every engine.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  header,
  httpGet,
  proxyConfig,
  rawRequest,
  restartLines,
  startSidecar,
  startUpstream,
  type RawResult,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

let up: Upstream;
let sc: Sidecar;

beforeAll(async () => {
  up = await startUpstream();
  sc = await startSidecar(proxyConfig([up.address], { maxRequestHeadersBytes: 2048, engine: 'uws' }), { workers: 2 });
});
afterAll(closeAll);

/** Requests the upstream saw whose URL or headers carry this test's marker. */
function forwarded(marker: string): number {
  return up.requests.filter((r) => r.url.includes(marker) || r.rawHeaders.some((h) => h.includes(marker))).length;
}

/** "4xx or closed, never 2xx, never forwarded". Long limit: uWS may only close at its idle timeout. */
function expectRefusedOrClosed(r: RawResult): void {
  if (r.response !== null) {
    expect(r.response.status).toBeGreaterThanOrEqual(400);
    expect(r.response.status).toBeLessThan(500);
  } else {
    expect(r.timedOut).toBe(false);
    expect(r.closed).toBe(true);
    // Whatever arrived is not a success response.
    expect(r.raw.toString('latin1')).not.toMatch(/^HTTP\/1\.[01] [123]/);
  }
}

const H = 'Host: example\r\n';

/** Cases uWS or our code may answer: assert the weak contract. Each carries a unique marker `mN`. */
const refusedOrClosed: Array<[string, string]> = [
  ['bad request line (extra token)', 'GET /m1 HTTP/1.1 extra\r\n' + H + '\r\n'],
  ['bad request line (invalid method char)', 'G@T /m2 HTTP/1.1\r\n' + H + '\r\n'],
  ['bad request line (no version)', 'GET /m3\r\n' + H + '\r\n'],
  ['Content-Length and Transfer-Encoding together', 'POST /m4 HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['missing Host', 'GET /m5 HTTP/1.1\r\n\r\n'],
  ['absolute-form target, same host', 'GET http://example/m6 HTTP/1.1\r\n' + H + '\r\n'],
  ['absolute-form target, other host', 'GET http://evil.example/m7 HTTP/1.1\r\n' + H + '\r\n'],
  ['obs-fold', 'GET /m8 HTTP/1.1\r\n' + H + 'X-A: a\r\n folded\r\n\r\n'],
  ['bare LF in a header block', 'GET /m9 HTTP/1.1\r\n' + H + 'X-A: a\nX-B: b\r\n\r\n'],
  ['bare CR in a header value', 'GET /m10 HTTP/1.1\r\n' + H + 'X-A: a\rb\r\n\r\n'],
  ['invalid header name: parentheses', 'GET /m11 HTTP/1.1\r\n' + H + 'X(A): a\r\n\r\n'],
  ['invalid header name: space', 'GET /m12 HTTP/1.1\r\n' + H + 'X A: a\r\n\r\n'],
  ['invalid header name: space before colon', 'GET /m13 HTTP/1.1\r\n' + H + 'X-A : a\r\n\r\n'],
  ['NUL in a header value', 'GET /m14 HTTP/1.1\r\n' + H + 'X-A: a\x00b\r\n\r\n'],
  ['non-numeric Content-Length', 'POST /m15 HTTP/1.1\r\n' + H + 'Content-Length: 1e3\r\n\r\n'],
  ['negative Content-Length', 'POST /m16 HTTP/1.1\r\n' + H + 'Content-Length: -1\r\n\r\n'],
  // uWS caps the number of header lines (below 60 in this build) and drops the request itself.
  ['more header lines than uWS accepts', 'GET /m17 HTTP/1.1\r\n' + H + Array.from({ length: 120 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n'],
];

/** Cases our request_head.ts refuses: exact status and code. */
const ours: Array<[string, string, number, string]> = [
  ['two differing Content-Length', 'POST /o1 HTTP/1.1\r\n' + H + 'Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400, 'bad_request'],
  ['duplicate Host', 'GET /o2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'bad_request'],
  ['#fragment in the target', 'GET /o3#frag HTTP/1.1\r\n' + H + '\r\n', 400, 'bad_request'],
  ['Transfer-Encoding: gzip, chunked', 'POST /o4 HTTP/1.1\r\n' + H + 'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request'],
  [
    'Transfer-Encoding: chunked twice',
    'POST /o5 HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    400,
    'bad_request',
  ],
  ['header block larger than max_request_headers_bytes (2048)', 'GET /o7 HTTP/1.1\r\n' + H + `X-Big: ${'a'.repeat(3000)}\r\n\r\n`, 431, 'headers_too_large'],
  [
    'many headers adding up to more than max_request_headers_bytes',
    'GET /o8 HTTP/1.1\r\n' + H + Array.from({ length: 20 }, (_, i) => `X-H${i}: ${'v'.repeat(120)}\r\n`).join('') + '\r\n',
    431,
    'headers_too_large',
  ],
];

describe('malformed requests', () => {
  it('are refused with 4xx or closed without a response, and never forwarded', async () => {
    // All at once: the uWS-detected ones may take until its idle timeout to close.
    const results = await Promise.all(refusedOrClosed.map(([, bytes]) => rawRequest(sc.port(), bytes, { timeoutMs: 25_000 })));
    results.forEach((r, i) => {
      const [name] = refusedOrClosed[i]!;
      try {
        expectRefusedOrClosed(r);
        expect(forwarded(`/m${i + 1}`)).toBe(0);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}\nraw: ${JSON.stringify(r.raw.toString('latin1').slice(0, 300))}`);
      }
    });
  });

  it.each(ours)('%s → exact status and x-outrigger-error', async (_name, bytes, status, code) => {
    const marker = /^[A-Z]+ (\/o\d+)/.exec(bytes)![1]!;
    const r = await rawRequest(sc.port(), bytes, { timeoutMs: 5000 });
    expect(r.response, JSON.stringify(r.raw.toString('latin1'))).not.toBeNull();
    const res = r.response!;
    expect(res.status).toBe(status);
    expect(header(res, 'x-outrigger-error')).toBe(code);
    const body = JSON.parse(res.body.toString('utf8')) as { error: string; message: string };
    expect(body.error).toBe(code);
    expect(typeof body.message).toBe('string');
    // A malformed request closes the connection: what follows cannot be trusted to be framed.
    expect(header(res, 'connection')?.toLowerCase()).toBe('close');
    expect(forwarded(marker)).toBe(0);
  });

  it('a chunk size that overflows never delivers a complete request or any body byte upstream', async () => {
    // The head of a chunked request may already be on its way upstream when uWS meets the bad
    // chunk size (the proxy streams); the request must then be cut off, never completed.
    const r = await rawRequest(sc.port(), 'POST /c1 HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n', {
      timeoutMs: 25_000,
    });
    expectRefusedOrClosed(r);
    const seen = up.requests.filter((x) => x.url === '/c1');
    await Promise.all(seen.map((x) => x.settled)); // bounded by the test timeout
    for (const x of seen) {
      expect(x.complete).toBe(false);
      expect(x.bodyLength).toBe(0);
    }
  });

  it('an invalid chunk-size character is refused the same way', async () => {
    const r = await rawRequest(sc.port(), 'POST /c2 HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n', {
      timeoutMs: 25_000,
    });
    expectRefusedOrClosed(r);
    for (const x of up.requests.filter((q) => q.url === '/c2')) {
      await x.settled;
      expect(x.complete).toBe(false);
      expect(x.bodyLength).toBe(0);
    }
  });

  it('afterwards the sidecar still serves normal requests and no worker restarted', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await httpGet(sc.url(`/after-${i}`), { headers: { host: 'example' } });
      expect(res.status).toBe(200);
    }
    expect(forwarded('/after-')).toBe(6);
    expect(restartLines(sc)).toEqual([]);
    expect(sc.entries().filter((e) => e.msg === 'worker crashed')).toEqual([]);
    expect(sc.exited()).toBe(false);
  });
});

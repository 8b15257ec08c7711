// The transparency test (STYLE.md item 14, DESIGN.md §2/§6): what the client sends is what the
// upstream receives — method, path, query, header order and repeated lines, header bytes, body
// bytes — modulo hop-by-hop headers and the x-forwarded-* / x-request-id the proxy sets; and what
// the upstream answers is what the client receives (status, reason, repeated set-cookie lines,
// body bytes, framing). Real sockets, a real sidecar process, real node:http and raw upstreams.
// This file runs the uws engine (its limits are asserted); test/edge/transparency_matrix.test.ts
// compares every engine with the direct path.

import { randomBytes, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  header,
  proxyConfig,
  RawClient,
  rawRequest,
  startRawUpstream,
  startSidecar,
  startUpstream,
  type RawUpstream,
  type ReceivedRequest,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

const ONE_MIB = randomBytes(1024 * 1024);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let up: Upstream;
let raw: RawUpstream;
let sc: Sidecar;

/** Responses the node:http upstream gives, chosen by path. */
function respond(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, rec: ReceivedRequest): void {
  void rec.settled.then(() => {
    const url = rec.url;
    if (url.startsWith('/status/')) {
      res.writeHead(Number(url.slice(8, 11)), 'Custom Reason, With Spaces', { 'x-status': 'yes', 'content-length': '2' });
      res.end('ok');
    } else if (url === '/cookies') {
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Max-Age=10, d=4']);
      res.setHeader('x-after', 'z');
      res.setHeader('content-length', '4');
      res.end('done');
    } else if (url === '/chunked') {
      // No Content-Length: node sends chunked; several writes spread over time.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let i = 0;
      const tick = (): void => {
        if (i === 8) {
          res.end();
          return;
        }
        res.write(ONE_MIB.subarray(i * 4096, (i + 1) * 4096));
        i++;
        setTimeout(tick, 5);
      };
      tick();
    } else if (url === '/download') {
      res.writeHead(200, { 'content-length': String(ONE_MIB.length) });
      res.end(ONE_MIB);
    } else if (url === '/length') {
      res.writeHead(200, { 'content-length': '11' });
      res.end('hello world');
    } else if (url === '/head') {
      res.writeHead(200, { 'content-length': '1234', 'x-head': '1' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
    } else if (url === '/204') {
      res.writeHead(204, { 'x-no-content': '1' });
      res.end();
    } else if (url === '/304') {
      res.writeHead(304, { etag: '"v1"' });
      res.end();
    } else {
      const body = JSON.stringify({ ok: true });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }
  });
}

beforeAll(async () => {
  up = await startUpstream(respond);
  raw = await startRawUpstream((c) => {
    void c.head().then((head) => {
      const path = head.toString('latin1').split(' ')[1];
      if (path === '/raw/hop') {
        // Each raw response ends its connection: the raw upstream serves one request per connection.
        c.socket.end(
          'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Resp-Hop\r\nKeep-Alive: timeout=5\r\nX-Resp-Hop: secret\r\n' +
            'Proxy-Connection: keep-alive\r\nUpgrade: foo\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok',
        );
      } else if (path === '/raw/obs-text') {
        c.socket.end(
          Buffer.concat([
            Buffer.from('HTTP/1.1 200 OK\r\nX-Latin: caf', 'latin1'),
            Buffer.from([0xe9, 0x20, 0xff, 0x80]),
            Buffer.from(' end\r\nX-Utf8: ', 'latin1'),
            Buffer.from('naïve ✓ 日本', 'utf8'),
            Buffer.from('\r\nContent-Length: 2\r\n\r\nok', 'latin1'),
          ]),
        );
      } else {
        c.socket.end('HTTP/1.1 500 Unknown\r\nContent-Length: 0\r\n\r\n');
      }
    });
  });
  sc = await startSidecar(
    proxyConfig([up.address], {
      engine: 'uws',
      routes: [{ name: 'raw', match: { path_prefix: '/raw/' }, cluster: 'raw' }],
      clusters: [{ name: 'raw', endpoints: [{ address: raw.address }] }],
    }),
    { workers: 1 },
  );
});
afterAll(closeAll);

/** Sends exact request bytes and returns what the upstream recorded for the request with `url`. */
async function sendAndRecord(bytes: Buffer | string, url: string): Promise<{ rec: ReceivedRequest; status: number }> {
  const before = up.requests.length;
  const r = await rawRequest(sc.port(), bytes, { timeoutMs: 10_000 });
  expect(r.response, JSON.stringify(r.raw.toString('latin1').slice(0, 300))).not.toBeNull();
  const rec = up.requests.slice(before).find((x) => x.url === url);
  expect(rec, `upstream did not receive ${url}`).toBeDefined();
  return { rec: rec!, status: r.response!.status };
}

/** The upstream's raw headers as [name, value] pairs (names lower-case; uWS lower-cases them). */
function pairs(rec: ReceivedRequest): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) out.push([rec.rawHeaders[i]!.toLowerCase(), rec.rawHeaders[i + 1]!]);
  return out;
}

const PROXY_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-request-id']);

describe('request transparency', () => {
  it('method, path and query arrive unchanged, including percent-encoding and odd legal characters', async () => {
    const targets = [
      '/plain',
      "/a%20b/c%2Fd/%E2%9C%93;p=1/~user/!$&'()*+,;=:@-._",
      '/q?x=1&x=2&y=a+b&z=%2B%26%3D&empty=&flag&u=%E6%97%A5',
      "/q2?/?:@!$'()*,;=%00%FF&sp=%20",
      '/trailing/?',
      '//double//slashes/x?a=b?c',
    ];
    // Dot segments are refused before routing (README, "Paths"): see test/edge/safety.test.ts.
    const before = up.requests.length;
    const dots = await rawRequest(sc.port(), 'GET //double/./../x HTTP/1.1\r\nHost: example\r\n\r\n');
    expect(dots.response?.status).toBe(400);
    expect(up.requests.length).toBe(before);
    for (const target of targets) {
      // Extension methods (PROPFIND, ...) are dropped by this uWS build before our code runs.
      for (const method of ['GET', 'DELETE', 'OPTIONS', 'PATCH', 'PUT', 'POST']) {
        const { rec, status } = await sendAndRecord(`${method} ${target} HTTP/1.1\r\nHost: example\r\nContent-Length: 0\r\n\r\n`, target);
        expect(status).toBe(200);
        expect(rec.method).toBe(method);
        expect(rec.url).toBe(target);
      }
    }
  });

  it('header order and repeated header lines arrive in order, as separate lines', async () => {
    const req =
      'GET /order HTTP/1.1\r\n' +
      'Host: example\r\n' +
      'X-Multi: one\r\n' +
      'Accept: */*\r\n' +
      'X-Multi: two, with comma\r\n' +
      'Cookie: a=1\r\n' +
      'X-Multi: three\r\n' +
      'Cookie: b=2\r\n' +
      'X-Empty:\r\n' +
      'X-Spaces:   padded value  \r\n' +
      'User-Agent: transparency/1\r\n\r\n';
    const { rec } = await sendAndRecord(req, '/order');
    const got = pairs(rec).filter(([n]) => !PROXY_SET.has(n));
    expect(got).toEqual([
      ['host', 'example'],
      ['x-multi', 'one'],
      ['accept', '*/*'],
      ['x-multi', 'two, with comma'],
      ['cookie', 'a=1'],
      ['x-multi', 'three'],
      ['cookie', 'b=2'],
      ['x-empty', ''],
      ['x-spaces', 'padded value'],
      ['user-agent', 'transparency/1'],
    ]);
  });

  it('a non-ASCII UTF-8 header value arrives byte-exact', async () => {
    const value = Buffer.from('start café ✓ 日本語 😀 end', 'utf8');
    const req = Buffer.concat([
      Buffer.from('GET /utf8 HTTP/1.1\r\nHost: example\r\nX-Utf8: ', 'latin1'),
      value,
      Buffer.from('\r\nX-After: plain\r\n\r\n', 'latin1'),
    ]);
    const { rec } = await sendAndRecord(req, '/utf8');
    const got = pairs(rec).find(([n]) => n === 'x-utf8');
    // node:http hands header bytes over as latin1: one char per byte.
    expect(Buffer.from(got![1], 'latin1').equals(value)).toBe(true);
    expect(pairs(rec).find(([n]) => n === 'x-after')?.[1]).toBe('plain');
  });

  it('a header value with invalid UTF-8 bytes is refused with 400 and not forwarded', async () => {
    // uWS decodes header bytes as UTF-8 before we see them, so invalid sequences arrive as U+FFFD
    // and could not be forwarded byte for byte; the proxy refuses them rather than alter them.
    const before = up.requests.length;
    const req = Buffer.concat([
      Buffer.from('GET /bad-utf8 HTTP/1.1\r\nHost: example\r\nX-Bad: a', 'latin1'),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from('b\r\n\r\n', 'latin1'),
    ]);
    const r = await rawRequest(sc.port(), req);
    expect(r.response?.status).toBe(400);
    expect(header(r.response!, 'x-outrigger-error')).toBe('bad_request');
    expect(up.requests.slice(before).some((x) => x.url === '/bad-utf8')).toBe(false);
  });

  it('a random 1 MiB binary body arrives byte for byte (Content-Length)', async () => {
    const before = up.requests.length;
    const r = await rawRequest(
      sc.port(),
      [`POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: ${ONE_MIB.length}\r\nContent-Type: application/octet-stream\r\n\r\n`, ONE_MIB],
      {
        timeoutMs: 20_000,
      },
    );
    expect(r.response?.status).toBe(200);
    const rec = up.requests.slice(before).find((x) => x.url === '/upload')!;
    expect(rec.complete).toBe(true);
    expect(rec.headers['content-length']).toBe(String(ONE_MIB.length));
    expect(rec.headers['transfer-encoding']).toBeUndefined();
    expect(rec.bodySha256).toBe(sha(ONE_MIB));
    expect(rec.body.equals(ONE_MIB)).toBe(true);
  });

  it('a chunk extension in a request body is never forwarded altered', async () => {
    // RFC 9112 allows chunk extensions; this uWS build drops such a request (closes the
    // connection). Whatever happens, the upstream must not see a complete but different body.
    const before = up.requests.length;
    const r = await rawRequest(sc.port(), 'POST /chunk-ext HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n');
    const rec = up.requests.slice(before).find((x) => x.url === '/chunk-ext');
    if (r.response?.status === 200) {
      expect(rec?.body.toString()).toBe('abc');
    } else {
      expect(r.response === null || r.response.status >= 400).toBe(true);
      if (rec !== undefined) {
        await rec.settled;
        expect(rec.complete).toBe(false);
      }
    }
  });

  // The node engine forwards chunked bodies re-framed (test/edge/transparency_matrix.test.ts,
  // req-chunked*); the uws engine refuses them: uWS 20.30's chunk decoder is lenient.
  it('uws engine: a chunked request body is refused and never reaches the app', async () => {
    const parts = [ONE_MIB.subarray(0, 1000), ONE_MIB.subarray(1000, 70_000), ONE_MIB.subarray(70_000, 70_001)];
    const chunks: Buffer[] = [Buffer.from('POST /chunked-up HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1')];
    for (const p of parts) chunks.push(Buffer.from(`${p.length.toString(16)}\r\n`, 'latin1'), p, Buffer.from('\r\n', 'latin1'));
    chunks.push(Buffer.from('0\r\n\r\n', 'latin1'));
    const before = up.requests.length;
    const r = await rawRequest(sc.port(), chunks, { timeoutMs: 10_000, untilClose: true });
    expect(r.closed).toBe(true);
    if (r.response !== null) expect(r.response.status).toBe(400); // closed unanswered when the body came in the same read
    expect(up.requests.slice(before).some((x) => x.url === '/chunked-up')).toBe(false);
  });

  it('hop-by-hop request headers are stripped, end-to-end ones kept, te: trailers kept', async () => {
    const req =
      'GET /hop HTTP/1.1\r\n' +
      'Host: example\r\n' +
      'Connection: keep-alive, X-Hop, X-Hop-Two\r\n' +
      'Keep-Alive: timeout=5, max=100\r\n' +
      'TE: trailers\r\n' +
      'Upgrade: websocket\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'Proxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
      'X-Hop: named-in-connection\r\n' +
      'X-Hop-Two: also\r\n' +
      'X-End-To-End: kept\r\n\r\n';
    const { rec } = await sendAndRecord(req, '/hop');
    const names = pairs(rec).map(([n]) => n);
    for (const gone of ['connection', 'keep-alive', 'upgrade', 'proxy-connection', 'proxy-authorization', 'x-hop', 'x-hop-two', 'transfer-encoding']) {
      // node:http adds nothing of its own to rawHeaders, so absence here is absence on the wire.
      expect(names, gone).not.toContain(gone);
    }
    expect(pairs(rec).filter(([n]) => n === 'te')).toEqual([['te', 'trailers']]);
    expect(pairs(rec).find(([n]) => n === 'x-end-to-end')?.[1]).toBe('kept');
  });

  it('te other than trailers is stripped', async () => {
    const { rec } = await sendAndRecord('GET /te HTTP/1.1\r\nHost: example\r\nTE: gzip, deflate\r\n\r\n', '/te');
    expect(pairs(rec).map(([n]) => n)).not.toContain('te');
  });

  it('x-forwarded-for is appended to, x-forwarded-proto is set, x-request-id generated or kept', async () => {
    const a = await sendAndRecord(
      'GET /xff HTTP/1.1\r\nHost: example\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Request-Id: my-id-123\r\n\r\n',
      '/xff',
    );
    const ap = pairs(a.rec);
    expect(ap.filter(([n]) => n === 'x-forwarded-for')).toEqual([['x-forwarded-for', '10.0.0.1, 10.0.0.2, 127.0.0.1']]);
    expect(ap.filter(([n]) => n === 'x-forwarded-proto')).toEqual([['x-forwarded-proto', 'http']]);
    expect(ap.filter(([n]) => n === 'x-request-id')).toEqual([['x-request-id', 'my-id-123']]);

    const b = await sendAndRecord('GET /xff2 HTTP/1.1\r\nHost: example\r\n\r\n', '/xff2');
    const c = await sendAndRecord('GET /xff3 HTTP/1.1\r\nHost: example\r\n\r\n', '/xff3');
    const idB = pairs(b.rec).filter(([n]) => n === 'x-request-id');
    const idC = pairs(c.rec).filter(([n]) => n === 'x-request-id');
    expect(idB).toHaveLength(1);
    expect(idC).toHaveLength(1);
    expect(idB[0]![1]).toMatch(/^[0-9a-f-]{16,}$/i);
    expect(idB[0]![1]).not.toBe(idC[0]![1]);
    expect(pairs(b.rec).filter(([n]) => n === 'x-forwarded-for')).toEqual([['x-forwarded-for', '127.0.0.1']]);
  });
});

describe('response transparency', () => {
  it('status code and reason phrase arrive unchanged', async () => {
    for (const code of [200, 201, 299, 404, 418, 500, 503, 599]) {
      const r = await rawRequest(sc.port(), `GET /status/${code} HTTP/1.1\r\nHost: example\r\n\r\n`);
      expect(r.response?.status).toBe(code);
      expect(r.response?.reason).toBe('Custom Reason, With Spaces');
      expect(header(r.response!, 'x-status')).toBe('yes');
      expect(r.response?.body.toString()).toBe('ok');
    }
  });

  it('several set-cookie lines arrive separately and in order', async () => {
    const r = await rawRequest(sc.port(), 'GET /cookies HTTP/1.1\r\nHost: example\r\n\r\n');
    const res = r.response!;
    expect(res.headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Max-Age=10, d=4']);
    expect(header(res, 'x-after')).toBe('z');
    expect(res.body.toString()).toBe('done');
  });

  it('Content-Length is preserved and a 1 MiB binary body arrives byte for byte', async () => {
    const r = await rawRequest(sc.port(), 'GET /download HTTP/1.1\r\nHost: example\r\n\r\n', { timeoutMs: 20_000 });
    const res = r.response!;
    expect(res.status).toBe(200);
    expect(header(res, 'content-length')).toBe(String(ONE_MIB.length));
    expect(header(res, 'transfer-encoding')).toBeUndefined();
    expect(res.body.equals(ONE_MIB)).toBe(true);

    const small = await rawRequest(sc.port(), 'GET /length HTTP/1.1\r\nHost: example\r\n\r\n');
    expect(header(small.response!, 'content-length')).toBe('11');
    expect(small.response!.body.toString()).toBe('hello world');
  });

  it('a chunked response arrives complete', async () => {
    const r = await rawRequest(sc.port(), 'GET /chunked HTTP/1.1\r\nHost: example\r\n\r\n', { timeoutMs: 10_000 });
    const res = r.response!;
    expect(res.status).toBe(200);
    expect(header(res, 'content-length')).toBeUndefined();
    expect(header(res, 'transfer-encoding')?.toLowerCase()).toBe('chunked');
    expect(res.body.equals(ONE_MIB.subarray(0, 8 * 4096))).toBe(true);
  });

  it('HEAD, 204 and 304 are framed by method and status: no body, and the connection stays usable', async () => {
    const c = await RawClient.connect(sc.port());
    c.send('HEAD /head HTTP/1.1\r\nHost: example\r\n\r\n');
    const head = await c.readResponse({ noBody: true });
    expect(head.status).toBe(200);
    expect(header(head, 'content-length')).toBe('1234');
    expect(header(head, 'x-head')).toBe('1');

    c.send('GET /204 HTTP/1.1\r\nHost: example\r\n\r\n');
    const r204 = await c.readResponse();
    expect(r204.status).toBe(204);
    expect(header(r204, 'x-no-content')).toBe('1');
    expect(header(r204, 'content-length')).toBeUndefined();
    expect(header(r204, 'transfer-encoding')).toBeUndefined();

    c.send('GET /304 HTTP/1.1\r\nHost: example\r\nIf-None-Match: "v1"\r\n\r\n');
    const r304 = await c.readResponse();
    expect(r304.status).toBe(304);
    expect(header(r304, 'etag')).toBe('"v1"');
    expect(header(r304, 'transfer-encoding')).toBeUndefined();

    // Had any of these carried body bytes, this response would not parse from the first byte.
    c.send('GET /length HTTP/1.1\r\nHost: example\r\n\r\n');
    const next = await c.readResponse();
    expect(next.status).toBe(200);
    expect(next.body.toString()).toBe('hello world');
    // Nor did this one: the next response also starts at its first byte, with nothing after it.
    c.send('GET /length HTTP/1.1\r\nHost: example\r\n\r\n');
    expect((await c.readResponse()).body.toString()).toBe('hello world');
    expect(c.pending.length).toBe(0);
    c.close();
  });

  it('hop-by-hop response headers (and those named in Connection) are stripped', async () => {
    const r = await rawRequest(sc.port(), 'GET /raw/hop HTTP/1.1\r\nHost: example\r\n\r\n');
    const res = r.response!;
    expect(res.status).toBe(200);
    const names = res.headers.map(([n]) => n.toLowerCase());
    for (const gone of ['keep-alive', 'x-resp-hop', 'proxy-connection', 'upgrade']) expect(names, gone).not.toContain(gone);
    // uWS may write its own Connection header, but never the upstream's tokens.
    expect(header(res, 'connection') ?? '').not.toMatch(/x-resp-hop/i);
    expect(header(res, 'x-kept')).toBe('yes');
    expect(res.body.toString()).toBe('ok');
  });

  it('obs-text and UTF-8 bytes in response header values arrive byte for byte', async () => {
    const r = await rawRequest(sc.port(), 'GET /raw/obs-text HTTP/1.1\r\nHost: example\r\n\r\n');
    const res = r.response!;
    expect(res.status).toBe(200);
    // header() values are latin1 strings: one char per byte.
    expect(
      Buffer.from(header(res, 'x-latin')!, 'latin1').equals(Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9, 0x20, 0xff, 0x80]), Buffer.from(' end')])),
    ).toBe(true);
    expect(Buffer.from(header(res, 'x-utf8')!, 'latin1').equals(Buffer.from('naïve ✓ 日本', 'utf8'))).toBe(true);
  });
});

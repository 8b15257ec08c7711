// The request-head checks every engine runs (src/dataplane/request_head.ts): framing judgments
// (Content-Length, Transfer-Encoding), Host, the request target, the underscore policy, the
// path-normalisation hook, the request id. The shared checks are driven through the strict
// engine's entry point (plain values); the uWS and node:http entry points against real servers
// on 127.0.0.1. normalizePath itself is covered by test/edge/path_normal.test.ts.

import http from 'node:http';
import net from 'node:net';
import uWS from 'uWebSockets.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import {
  BodyFraming,
  buildUpstreamHead,
  readNodeRequestHead,
  readRequestHead,
  readStrictRequestHead,
  type RequestHead,
  type UnderscorePolicy,
} from '../../src/dataplane/request_head.js';

const MAX = 8192;

function allow(): UnderscorePolicy {
  return { action: 'allow', dropped: 0 };
}

/** Flat [name, value, ...] with the byte count the engines compute. */
function read(
  target: string,
  headers: readonly string[],
  opts: { method?: string; minor?: number; max?: number; underscores?: UnderscorePolicy } = {},
): RequestHead {
  let bytes = 0;
  for (let i = 0; i < headers.length; i += 2) bytes += headers[i]!.length + headers[i + 1]!.length + 4;
  return readStrictRequestHead(opts.method ?? 'GET', target, opts.minor ?? 1, [...headers], bytes, opts.max ?? MAX, opts.underscores ?? allow());
}

/** The refusal `f` throws: its code and message. */
function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof ProxyError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('not refused');
}

const H = ['host', 'svc.local'];

describe('request head: framing', () => {
  it('no body headers: no body; Content-Length 0: no body; Content-Length n: a length-framed body', () => {
    expect(read('/', H).framing).toBe(BodyFraming.None);
    expect(read('/', [...H, 'content-length', '0'])).toMatchObject({ framing: BodyFraming.None, contentLength: 0 });
    expect(read('/', [...H, 'content-length', '42'])).toMatchObject({ framing: BodyFraming.Length, contentLength: 42 });
    expect(read('/', [...H, 'content-length', '000000000000005'])).toMatchObject({ contentLength: 5 });
  });

  it('refuses a Content-Length that is not 1-15 digits', () => {
    for (const v of ['', '+5', '-1', '5 ', ' 5', '0x10', '1e3', '5, 5', '1.0', '1234567890123456']) {
      expect(
        refusal(() => read('/', [...H, 'content-length', v])),
        JSON.stringify(v),
      ).toEqual({ code: 'bad_request', message: 'invalid Content-Length' });
    }
  });

  it('repeated Content-Length lines must agree', () => {
    expect(read('/', [...H, 'content-length', '7', 'content-length', '7']).contentLength).toBe(7);
    expect(refusal(() => read('/', [...H, 'content-length', '7', 'content-length', '8'])).message).toBe('differing Content-Length headers');
  });

  it('accepts exactly one Transfer-Encoding: chunked (any case); refuses every other coding and repetition', () => {
    expect(read('/', [...H, 'transfer-encoding', 'chunked']).framing).toBe(BodyFraming.Chunked);
    expect(read('/', [...H, 'transfer-encoding', 'Chunked']).framing).toBe(BodyFraming.Chunked);
    for (const te of [['gzip, chunked'], ['chunked, chunked'], ['identity'], ['chunked '], ['chunked', 'chunked'], ['gzip', 'chunked']]) {
      const headers = [...H];
      for (const v of te) headers.push('transfer-encoding', v);
      expect(refusal(() => read('/', headers)).message, te.join(' | ')).toMatch(/^unsupported Transfer-Encoding/);
    }
  });

  it('refuses Content-Length together with Transfer-Encoding, in either order', () => {
    expect(refusal(() => read('/', [...H, 'content-length', '3', 'transfer-encoding', 'chunked'])).message).toBe('both Content-Length and Transfer-Encoding');
    expect(refusal(() => read('/', [...H, 'transfer-encoding', 'chunked', 'content-length', '3'])).message).toBe('both Content-Length and Transfer-Encoding');
  });

  it('refuses Transfer-Encoding in an HTTP/1.0 request', () => {
    expect(refusal(() => read('/', [...H, 'transfer-encoding', 'chunked'], { minor: 0 })).message).toBe('Transfer-Encoding in an HTTP/1.0 request');
    expect(read('/', [...H, 'content-length', '1'], { minor: 0 }).framing).toBe(BodyFraming.Length);
  });
});

describe('request head: Host', () => {
  it('takes names, IPv4, IPv6 literals, with or without a port', () => {
    for (const h of ['svc.local', 'svc.local:8080', '10.0.0.1', '10.0.0.1:80', '[::1]', '[::1]:443', 'a-b_c~d', 'xn--bcher-kva.example']) {
      expect(read('/', ['host', h]).host).toBe(h);
    }
  });

  it('refuses a missing, empty, repeated or malformed Host', () => {
    expect(refusal(() => read('/', [])).message).toBe('missing Host header');
    expect(refusal(() => read('/', ['host', 'a', 'host', 'a'])).message).toBe('more than one Host header');
    for (const h of ['', 'a b', 'a,b', 'a@b', 'a/b', 'a:80:80', '[::1', 'a:123456', 'a\tb', 'a?b', 'a#b']) {
      expect(refusal(() => read('/', ['host', h])).message, JSON.stringify(h)).toBe('invalid Host header');
    }
  });
});

describe('request head: target, method, header bytes', () => {
  it('keeps path and query as received; a bare ? is kept', () => {
    expect(read('/a/b?x=1&y', H)).toMatchObject({ path: '/a/b', target: '/a/b?x=1&y', matchPath: '/a/b' });
    expect(read('/a?', H)).toMatchObject({ path: '/a', target: '/a?' });
    expect(read('/a', H).target).toBe('/a');
  });

  it('refuses a target not in origin form, with a fragment, or with a control byte or space', () => {
    for (const t of ['*', 'http://svc.local/', 'a/b', '']) {
      expect(refusal(() => read(t, H)).message, t).toBe('request target must be in origin form (/path)');
    }
    expect(refusal(() => read('/a#frag', H)).message).toBe('request target must not carry a #fragment');
    expect(refusal(() => read('/a?q#frag', H)).message).toBe('request target must not carry a #fragment');
    for (const t of ['/a b', '/a\x00', '/a?x=\x7f', '/a\tb']) {
      expect(refusal(() => read(t, H)).message, JSON.stringify(t)).toBe('control character or space in the request target');
    }
  });

  it('routes and authorizes on the normal form of the path, and forwards the path as received', () => {
    const head = read('/v1//%75sers;jsessionid=1/x', H);
    expect(head.matchPath).toBe('/v1/users/x');
    expect(head.path).toBe('/v1//%75sers;jsessionid=1/x');
    expect(buildUpstreamHead(head, null, 'http')).toMatch(/^GET \/v1\/\/%75sers;jsessionid=1\/x HTTP\/1\.1\r\n/);
    const r = refusal(() => read('/v1/%2e%2e/admin', H));
    expect(r).toEqual({ code: 'bad_request', message: 'ambiguous request path: dot segment in path' });
  });

  it('refuses a method that is not a token', () => {
    for (const m of ['G T', 'GET/', '', 'GÉT', 'GET\r']) expect(refusal(() => read('/', H, { method: m })).message, JSON.stringify(m)).toBe('invalid method');
    expect(read('/', H, { method: 'PROPFIND' }).method).toBe('PROPFIND');
  });

  it('bounds the head size: request line plus headers', () => {
    const big = 'x'.repeat(200);
    expect(read('/', [...H, 'x-big', big], { max: 300 }).headers).toContain(big);
    const r = refusal(() => read('/', [...H, 'x-big', big], { max: 220 }));
    expect(r).toEqual({ code: 'headers_too_large', message: 'request head is larger than 220 bytes' });
    expect(refusal(() => read('/' + 'p'.repeat(300), H, { max: 300 })).code).toBe('headers_too_large');
  });

  it('refuses an empty header name and values with bytes that were not UTF-8', () => {
    expect(refusal(() => read('/', [...H, '', 'v'])).message).toBe('empty header name');
    expect(refusal(() => read('/', [...H, 'x-a', 'caf\uFFFD'])).message).toBe('header "x-a" has bytes that are not valid UTF-8');
  });

  it('keeps the client x-request-id (the first), or makes one', () => {
    expect(read('/', [...H, 'x-request-id', 'abc', 'x-request-id', 'def']).requestId).toBe('abc');
    expect(read('/', H).requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(read('/', [...H, 'x-request-id', '']).requestId).not.toBe('');
  });

  it('makes distinct version 4 UUIDs, across refills of the random pool (256 ids each)', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = read('/', H).requestId;
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(1000);
  });

  it('notes a Connection header (its named headers are hop-by-hop)', () => {
    expect(read('/', H).hasConnection).toBe(false);
    const head = read('/', [...H, 'connection', 'x-secret', 'x-secret', '1', 'x-kept', '2']);
    expect(head.hasConnection).toBe(true);
    const up = buildUpstreamHead(head, null, 'http');
    expect(up).not.toMatch(/x-secret/);
    expect(up).toMatch(/x-kept: 2\r\n/);
  });
});

describe('request head: header names with underscores', () => {
  const headers = [...H, 'x_forwarded_client_cert', 'forged', 'x-ok', '1', 'my_header', 'v'];

  it('allow: kept as they are', () => {
    const p = allow();
    expect(read('/', headers, { underscores: p }).headers).toEqual(headers);
    expect(p.dropped).toBe(0);
  });

  it('drop: removed and counted; the others keep their order', () => {
    const p: UnderscorePolicy = { action: 'drop', dropped: 0 };
    expect(read('/', headers, { underscores: p }).headers).toEqual([...H, 'x-ok', '1']);
    expect(p.dropped).toBe(2);
    const clean = [...H, 'x-ok', '1'];
    expect(read('/', clean, { underscores: p }).headers).toEqual(clean);
    expect(p.dropped).toBe(2);
  });

  it('reject: a 400 naming the first one', () => {
    const p: UnderscorePolicy = { action: 'reject', dropped: 0 };
    expect(refusal(() => read('/', headers, { underscores: p }))).toEqual({
      code: 'bad_request',
      message: 'header name with an underscore: "x_forwarded_client_cert"',
    });
  });

  it('a dropped underscore Host does not count as the Host', () => {
    const p: UnderscorePolicy = { action: 'drop', dropped: 0 };
    expect(refusal(() => read('/', ['ho_st', 'svc.local'], { underscores: p })).message).toBe('missing Host header');
  });
});

// ---- the engines' entry points, on real sockets ------------------------------------------------

/** Sends raw bytes to 127.0.0.1:port and resolves with everything read until the server closes. */
function exchange(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(raw));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

/** What the handler reports: the judged head's fields, or the refusal. */
function verdict(f: () => RequestHead): string {
  try {
    const h = f();
    return JSON.stringify({ method: h.method, target: h.target, host: h.host, framing: h.framing, contentLength: h.contentLength });
  } catch (e) {
    return e instanceof ProxyError ? `refused ${e.code}: ${e.message}` : `crashed: ${String(e)}`;
  }
}

describe('readNodeRequestHead (node:http) and readRequestHead (uWebSockets.js) on 127.0.0.1', () => {
  let server: http.Server;
  let listenSocket: uWS.us_listen_socket | null = null;
  const ports = { node: 0, uws: 0 };
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      res.setHeader('connection', 'close');
      res.end(verdict(() => readNodeRequestHead(req, MAX, allow())));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.node = (server.address() as net.AddressInfo).port;
    const app = uWS.App().any('/*', (res, req) => {
      const v = verdict(() => readRequestHead(req, MAX, allow()));
      res.cork(() => res.writeHeader('connection', 'close').end(v, true));
    });
    await new Promise<void>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (ls) => {
        if (ls === false) {
          reject(new Error('uWS could not listen'));
          return;
        }
        listenSocket = ls;
        ports.uws = uWS.us_socket_local_port(ls);
        resolve();
      }),
    );
  });
  afterAll(async () => {
    if (listenSocket !== null) uWS.us_listen_socket_close(listenSocket);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it.each`
    engine    | what                                                                                | request                                                                                     | answer
    ${'node'} | ${'judges a request node parsed: target with query, host, Content-Length framing'}  | ${'POST /a?b=1 HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 2\r\n\r\nhi'}                 | ${'{"method":"POST","target":"/a?b=1","host":"svc.local","framing":1,"contentLength":2}'}
    ${'node'} | ${'refuses Transfer-Encoding in an HTTP/1.0 request'}                               | ${'POST / HTTP/1.0\r\nHost: svc.local\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'}      | ${'refused bad_request: Transfer-Encoding in an HTTP/1.0 request'}
    ${'node'} | ${'runs the shared checks on top of node (an underscore-free Host that is a list)'} | ${'GET / HTTP/1.1\r\nHost: a,b\r\n\r\n'}                                                    | ${'refused bad_request: invalid Host header'}
    ${'uws'}  | ${'reads method, target, headers in order and judges them'}                         | ${'PUT /x/y?q HTTP/1.1\r\nHost: svc.local:8080\r\nContent-Length: 3\r\n\r\nabc'}            | ${'{"method":"PUT","target":"/x/y?q","host":"svc.local:8080","framing":1,"contentLength":3}'}
    ${'uws'}  | ${'refuses chunked request bodies on the uws engine'}                               | ${'POST / HTTP/1.1\r\nHost: svc.local\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'}      | ${'refused bad_request: chunked request bodies are not accepted on the uws engine (use engine: node)'}
    ${'uws'}  | ${'refuses differing Content-Length lines that uWS passes on'}                      | ${'POST / HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'} | ${'refused bad_request: differing Content-Length headers'}
  `('$engine: $what', async ({ engine, request, answer }: { engine: keyof typeof ports; request: string; answer: string }) => {
    expect(await exchange(ports[engine], request)).toContain(answer);
  });
});

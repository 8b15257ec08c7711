// What an HTTP/2 client gets through a plaintext `protocol: auto` listener (strict engine, the
// default): pseudo-headers mapped to the HTTP/1.1 upstream request, header-name case refused by
// the h2 layer, large HPACK header lists, 100 concurrent streams on one session, 10 MiB bodies
// both ways byte for byte, flow control reaching the upstream (a client that does not read stops
// the upstream's writes), trailers both ways, local replies per stream, the access log's
// protocol field and the listener stats, curl, the keep-alive idle GOAWAY, and the rapid-reset
// guard (CVE-2023-44487).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  closeAll,
  eventually,
  headerValues,
  httpGet,
  rawRequest,
  sleep,
  startRawUpstream,
  startSidecar,
  startUpstream,
  tempDir,
  type ReceivedRequest,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { h2connect, h2Frame, h2request } from './h2_client.js';

const MiB = 1024 * 1024;
const BIG = Buffer.alloc(10 * MiB);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 31 + 7) & 0xff;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The slow-reader upstream's state: bytes written and whether its last write is waiting for 'drain'. */
const flood = { written: 0, waiting: false, done: false };
const FLOOD_BYTES = 64 * MiB;

function appHandler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, rec: ReceivedRequest): void {
  const url = rec.url;
  void rec.settled.then(() => {
    if (url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
      res.end(BIG);
    } else if (url === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'grpc-status, grpc-message' });
      res.write('abc');
      res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
      res.end('def');
    } else if (url === '/flood') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FLOOD_BYTES });
      const piece = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        flood.waiting = false;
        while (flood.written < FLOOD_BYTES) {
          flood.written += piece.length;
          if (!res.write(piece)) {
            flood.waiting = true;
            res.once('drain', pump);
            return;
          }
        }
        flood.done = true;
        res.end();
      };
      pump();
    } else {
      const body = JSON.stringify({
        method: rec.method,
        url,
        rawHeaders: rec.rawHeaders,
        trailers: req.rawTrailers,
        bodyLength: rec.bodyLength,
        sha256: rec.bodySha256,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'set-cookie': ['a=1', 'b=2'] });
      res.end(body);
    }
  });
}

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  trailers: string[];
  bodyLength: number;
  sha256: string;
}

let app: Upstream;
let sc: Sidecar;
let logFile: string;
let origin: string;

beforeAll(async () => {
  app = await startUpstream({ name: 'app', handler: appHandler, recordBody: false });
  // Answers every request head with the list of its lines (no limit on the head's size), then closes.
  const raw = await startRawUpstream((c) => {
    void c.head(20_000).then((buf) => {
      const head = buf.toString('latin1');
      const body = JSON.stringify({ lines: head.slice(0, head.indexOf('\r\n\r\n')).split('\r\n') });
      c.socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  });
  logFile = path.join(tempDir(), 'access.log');
  sc = await startSidecar({
    node: { workers: 1, drain_timeout_ms: 2000 },
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        access_log: { path: logFile, format: 'json' },
        routes: [
          { match: { path_prefix: '/forbidden-route' }, cluster: 'nowhere' },
          { match: { path_prefix: '/raw/' }, cluster: 'raw' },
          { match: { path_prefix: '/' }, cluster: 'app' },
        ],
      },
      {
        name: 'idle',
        address: '127.0.0.1:0',
        protocol: 'http2',
        timeouts: { keepalive_idle_ms: 300 },
        routes: [{ match: { path_prefix: '/' }, cluster: 'app' }],
      },
    ],
    clusters: [
      { name: 'app', endpoints: [{ address: app.address }] },
      { name: 'nowhere', endpoints: [{ address: '127.0.0.1:1' }] },
      { name: 'raw', endpoints: [{ address: raw.address }] },
    ],
  });
  origin = `http://127.0.0.1:${sc.port('main')}`;
}, 60_000);
afterAll(closeAll);

describe('request mapping', () => {
  it('pseudo-headers become the request line and Host; cookies are joined; te: trailers passes', async () => {
    const s = await h2connect(origin);
    expect(s.remoteSettings.maxConcurrentStreams).toBe(100);
    const r = await h2request(s, {
      ':method': 'PATCH',
      ':path': '/p/q?x=1&y',
      ':authority': 'api.test:8080',
      cookie: ['a=1', 'b=2'],
      te: 'trailers',
      'x-obs': 'caf\xe9',
    });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body.toString()) as Seen;
    expect(seen.method).toBe('PATCH');
    expect(seen.url).toBe('/p/q?x=1&y');
    expect(headerValues(seen.rawHeaders, 'host')).toEqual(['api.test:8080']);
    expect(headerValues(seen.rawHeaders, 'cookie')).toEqual(['a=1; b=2']);
    expect(headerValues(seen.rawHeaders, 'te')).toEqual(['trailers']);
    // Each set-cookie stays a field of its own.
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    // The app's Date is kept (node:http2 would add its own otherwise: one field either way).
    expect(typeof r.headers['date']).toBe('string');
    s.close();
  });

  it('a Host that differs from :authority is 400; the session goes on', async () => {
    const s = await h2connect(origin);
    const r = await h2request(s, { ':path': '/x', ':authority': 'a.test', host: 'b.test' });
    expect(r.status).toBe(400);
    expect(r.headers['x-outrigger-error']).toBe('bad_request');
    expect(JSON.parse(r.body.toString()).request_id).toBe(r.headers['x-request-id']);
    expect((await h2request(s, { ':path': '/after' })).status).toBe(200);
    s.close();
  });

  /**
   * Sends one request whose HEADERS block is written by hand (node:http2's client lower-cases
   * names and refuses connection-specific fields) and resolves with the server's first frame on
   * stream 1: RST_STREAM's error code, or a response HEADERS block's first byte.
   */
  const rawH2 = async (fields: ReadonlyArray<readonly [string, string]>): Promise<{ type: number; first: number }> => {
    const lit = (name: string, value: string): Buffer =>
      Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
    // :method GET and :scheme http from the static table (indices 2 and 6), the rest as literals.
    const block = Buffer.concat([Buffer.from([0x82, 0x86]), ...fields.map(([n, v]) => lit(n, v))]);
    const sock = net.connect(sc.port('main'), '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', () => undefined);
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(0x4, 0, 0), h2Frame(0x1, 0x5, 1, block)]));
    try {
      return await eventually(() => {
        const all = Buffer.concat(got);
        for (let at = 0; at + 9 <= all.length; at += 9 + all.readUIntBE(at, 3)) {
          const type = all[at + 3]!;
          if (all.readUInt32BE(at + 5) !== 1 || at + 13 > all.length) continue;
          if (type === 0x3) return { type, first: all.readUInt32BE(at + 9) };
          if (type === 0x1) return { type, first: all[at + 9]! };
        }
        return undefined;
      }, 'a frame on stream 1');
    } finally {
      sock.destroy();
    }
  };

  it('an upper-case header name is refused by the h2 layer (RST_STREAM PROTOCOL_ERROR), nothing reaches the app', async () => {
    const r = await rawH2([
      [':path', '/UPPER-CASE-TEST'],
      [':authority', 'a.test'],
      ['X-Upper', 'v'],
    ]);
    expect(r).toEqual({ type: 0x3, first: http2.constants.NGHTTP2_PROTOCOL_ERROR });
    expect(app.requests.some((x) => x.url === '/UPPER-CASE-TEST')).toBe(false);
  });

  it('connection-specific fields: reset by the h2 layer, or 400 from outrigger (http2-settings); never forwarded', async () => {
    for (const [name, value] of [
      ['connection', 'close'],
      ['keep-alive', '5'],
      ['transfer-encoding', 'chunked'],
      ['upgrade', 'h2c'],
      ['te', 'gzip'],
    ] as const) {
      expect(
        await rawH2([
          [':path', `/conn-specific/${name}`],
          [':authority', 'a.test'],
          [name, value],
        ]),
      ).toEqual({ type: 0x3, first: http2.constants.NGHTTP2_PROTOCOL_ERROR });
    }
    // :status 400 is static table index 12: an indexed field 0x8c.
    expect(
      await rawH2([
        [':path', '/conn-specific/http2-settings'],
        [':authority', 'a.test'],
        ['http2-settings', 'AAMAAABk'],
      ]),
    ).toEqual({ type: 0x1, first: 0x8c });
    expect(app.requests.some((x) => x.url.startsWith('/conn-specific/'))).toBe(false);
  });

  it('60 headers of 1 KiB each (HPACK) reach the app', async () => {
    const s = await h2connect(origin);
    const h: http2.OutgoingHttpHeaders = { ':path': '/many' };
    for (let i = 0; i < 60; i++) h[`x-h${i}`] = String(i % 10).repeat(1024);
    // To the raw upstream (node:http's own 16 KiB head limit would refuse them).
    h[':path'] = '/raw/many';
    const r = await h2request(s, h);
    expect(r.status).toBe(200);
    const lines = (JSON.parse(r.body.toString()) as { lines: string[] }).lines;
    for (let i = 0; i < 60; i++) expect(lines).toContain(`x-h${i}: ${String(i % 10).repeat(1024)}`);
    s.close();
  });

  it('100 concurrent streams on one session are all answered', async () => {
    const s = await h2connect(origin);
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => h2request(s, { ':path': `/c/${i}` })));
    expect(rs.map((r) => r.status)).toEqual(Array.from({ length: 100 }, () => 200));
    expect(rs.map((r) => (JSON.parse(r.body.toString()) as Seen).url)).toEqual(Array.from({ length: 100 }, (_, i) => `/c/${i}`));
    s.close();
  });

  it('expect: 100-continue gets the interim 100, then the response', async () => {
    const s = await h2connect(origin);
    const req = s.request({ ':method': 'POST', ':path': '/continue', expect: '100-continue', 'content-length': '2' });
    await new Promise<void>((resolve) => req.once('continue', () => resolve()));
    req.end('ok');
    const status = await new Promise<number>((resolve) => req.once('response', (h) => resolve(Number(h[':status']))));
    expect(status).toBe(200);
    req.resume();
    s.close();
  });
});

describe('bodies and trailers', () => {
  it('a 10 MiB request body arrives byte for byte (content-length, then without one: chunked upstream)', async () => {
    const s = await h2connect(origin);
    const a = await h2request(s, { ':method': 'POST', ':path': '/up', 'content-length': String(BIG.length) }, BIG);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body.toString())).toMatchObject({ bodyLength: BIG.length, sha256: sha(BIG) });
    const b = await h2request(s, { ':method': 'PUT', ':path': '/up-chunked' }, BIG);
    const seen = JSON.parse(b.body.toString()) as Seen;
    expect(seen).toMatchObject({ bodyLength: BIG.length, sha256: sha(BIG) });
    expect(headerValues(seen.rawHeaders, 'transfer-encoding')).toEqual(['chunked']);
    s.close();
  });

  it('a 10 MiB response body arrives byte for byte', async () => {
    const s = await h2connect(origin);
    const r = await h2request(s, { ':path': '/big' });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(BIG.length));
    expect(r.body.length).toBe(BIG.length);
    expect(sha(r.body)).toBe(sha(BIG));
    s.close();
  });

  it('trailers of a chunked HTTP/1.1 response reach the h2 client; the client trailers reach the app', async () => {
    const s = await h2connect(origin);
    const r = await h2request(s, { ':path': '/trailers' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('abcdef');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'fine' });
    const req = s.request({ ':method': 'POST', ':path': '/req-trailers' }, { waitForTrailers: true });
    req.on('wantTrailers', () => req.sendTrailers({ 'x-checksum': 'abc' }));
    req.end('body');
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    await new Promise<void>((resolve) => req.on('close', () => resolve()));
    const seen = JSON.parse(Buffer.concat(chunks).toString()) as Seen;
    expect(seen.bodyLength).toBe(4);
    expect(seen.trailers).toEqual(['x-checksum', 'abc']);
    s.close();
  });

  it('a client that does not read stops the upstream (flow control end to end), and then gets every byte', async () => {
    const s = await h2connect(origin);
    const req = s.request({ ':path': '/flood' });
    req.pause(); // read nothing: the stream's window fills, then the session's buffers, then the proxy's upstream socket
    await eventually(() => (flood.waiting ? true : undefined), 'the upstream waiting for drain', 20_000);
    // Hold still a moment: a proxy without backpressure would keep reading and the app would finish.
    await sleep(500);
    const stuckAt = flood.written;
    expect(flood.waiting).toBe(true);
    expect(flood.done).toBe(false);
    expect(stuckAt).toBeLessThan(FLOOD_BYTES / 2);
    let got = 0;
    req.on('data', (d: Buffer) => {
      got += d.length;
    });
    req.resume();
    await new Promise<void>((resolve) => req.on('close', () => resolve()));
    expect(got).toBe(FLOOD_BYTES);
    expect(flood.done).toBe(true);
    s.close();
  }, 60_000);
});

describe('listener plumbing', () => {
  it('local replies per stream: no route to a live endpoint gives 502 with x-outrigger-error', async () => {
    const s = await h2connect(origin);
    const r = await h2request(s, { ':path': '/forbidden-route/x' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('upstream_connect_failed');
    // The same while the client is still uploading 1 MiB (beyond the stream's window): answered, and the stream ends (no stall on a body nobody reads).
    const up = await h2request(s, { ':method': 'POST', ':path': '/forbidden-route/upload' }, BIG.subarray(0, MiB), 10_000);
    expect([up.status, up.error, up.rstCode]).toEqual([502, null, 0]);
    expect((await h2request(s, { ':path': '/after-upload' })).status).toBe(200);
    s.close();
  });

  it('keepalive_idle_ms: an idle h2 session gets GOAWAY and is closed', async () => {
    const s = await h2connect(`http://127.0.0.1:${sc.port('idle')}`);
    expect((await h2request(s, { ':path': '/idle' })).status).toBe(200);
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(s.closed || s.destroyed).toBe(true);
  });

  it('HTTP/1.1 Upgrade: h2c is served as HTTP/1.1, never switched', async () => {
    const r = await rawRequest(
      sc.port('main'),
      `GET /upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    );
    expect(r.response?.status).toBe(200);
    const seen = JSON.parse(r.response!.body.toString()) as Seen;
    expect(headerValues(seen.rawHeaders, 'upgrade')).toEqual([]);
    expect(headerValues(seen.rawHeaders, 'http2-settings')).toEqual([]);
  });
});

describe('rapid reset (CVE-2023-44487)', () => {
  it('a flood of HEADERS + RST_STREAM closes the session with GOAWAY; the listener keeps serving', async () => {
    const s = await h2connect(origin);
    const goaway = new Promise<number>((resolve) => {
      s.once('goaway', (code: number) => resolve(code));
      s.once('close', () => resolve(-1));
    });
    s.on('error', () => undefined);
    for (let i = 0; i < 1000 && !s.closed && !s.destroyed; i++) {
      const req = s.request({ ':path': `/reset/${i}` });
      req.on('error', () => undefined);
      req.close(http2.constants.NGHTTP2_CANCEL);
      if (i % 50 === 49) await sleep(1); // let the frames go out in batches
    }
    const code = await goaway;
    // The guard: 100 streams reset before their responses, at least half of all (nghttp2's own limit is 1000 a burst).
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    s.destroy();
    const t = await h2connect(origin);
    expect((await h2request(t, { ':path': '/after-flood' })).status).toBe(200);
    t.close();
  }, 60_000);
});

const curlHasHttp2 = await new Promise<boolean>((resolve) => execFile('curl', ['-V'], (err, out) => resolve(err === null && /HTTP2/.test(out))));

describe.skipIf(!curlHasHttp2)('curl', () => {
  const curl = (args: string[]): Promise<string> =>
    new Promise((resolve, reject) =>
      execFile('curl', ['-s', '-S', '--max-time', '10', ...args], (err, out) => (err === null ? resolve(out) : reject(new Error(err.message)))),
    );

  it('--http2-prior-knowledge through the plaintext auto listener', async () => {
    const out = await curl(['--http2-prior-knowledge', '-w', '\\n%{http_version} %{http_code}', `${origin}/curl`]);
    expect(out.split('\n').pop()).toBe('2 200');
    expect((JSON.parse(out.split('\n')[0]!) as Seen).url).toBe('/curl');
  });
});

// Last: it stops the sidecar (the access log is complete at shutdown).
describe('accounting', () => {
  it('access log lines and listener stats count h2 requests with protocol HTTP/2', async () => {
    const s = await h2connect(origin);
    const id = `h2-log-${Date.now()}`;
    expect((await h2request(s, { ':path': '/logged', 'x-request-id': id })).status).toBe(200);
    s.close();
    expect((await httpGet(sc.url('/logged-h1', 'main'), { headers: { 'x-request-id': `${id}-h1` } })).status).toBe(200);
    const stats = await eventually(async () => {
      const r = await adminCall(sc, 'GET', '/stats');
      const main = (r.json as { listeners: Array<{ name: string; requests: number }> }).listeners.find((l) => l.name === 'main');
      return main !== undefined && main.requests >= 2 ? main : undefined;
    }, 'listener stats');
    expect(stats.requests).toBeGreaterThanOrEqual(2);
    // The access log is written in 4 KiB batches, and whole at shutdown.
    expect(await sc.stop()).toBe(0);
    const lines = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes(id))
      .map((l) => JSON.parse(l) as { protocol: string; request_id: string; status: number });
    expect(lines.find((l) => l.request_id === id)).toMatchObject({ protocol: 'HTTP/2', status: 200 });
    expect(lines.find((l) => l.request_id === `${id}-h1`)).toMatchObject({ protocol: 'HTTP/1.1', status: 200 });
  });
});

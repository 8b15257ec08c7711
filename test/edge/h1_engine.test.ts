// The `strict` listener engine end to end (src/dataplane/h1/), for what the shared suites
// (hostile.test.ts, transparency_matrix.test.ts, safety.test.ts) do not cover on it: its
// keep-alive idle timeout (slow clients and max_connections are in safety.test.ts), Expect handling,
// bodiless local replies to HEAD, pipelined requests forwarded one at a time in order, HTTP/1.0
// response framing, large bodies both ways with backpressure, and an mTLS listener on strict
// between two sidecars (peer identity to the app, clients without a certificate refused).

import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  API,
  caSource,
  clientSideConfig,
  closeAll,
  filesSource,
  headerValues,
  leaf,
  newCa,
  rawRequest,
  sleep,
  startMeshServer,
  startRawUpstream,
  startSidecar,
  startUpstream,
  tempDir,
  WEB,
  writeTlsFiles,
  type MeshServer,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

/** Opens a connection, writes `bytes`, and collects what comes back until `done(raw)` or the close. */
function exchange(port: number, bytes: Array<string | Buffer>, done: (raw: string) => boolean, timeoutMs = 5000): Promise<{ raw: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let raw = '';
    let closed = false;
    const finish = (): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ raw, closed });
    };
    const t = setTimeout(finish, timeoutMs);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      raw += d.toString('latin1');
      if (done(raw)) finish();
    });
    s.on('close', () => {
      closed = true;
      finish();
    });
    s.on('connect', () => {
      for (const b of bytes) s.write(b);
    });
  });
}

const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;

/** 4 MiB of a fixed pattern, and its sha256. */
const BIG = Buffer.alloc(4 * 1024 * 1024);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + 13) & 0xff;
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

/**
 * A keep-alive GET-only app on a raw socket: records the order of arrival; answers /slow/1 after
 * 300 ms, /slow/chunked chunked, /slow/big with BIG (Content-Length), /slow/bigc with BIG chunked.
 */
async function startSlowApp(seen: string[]): Promise<{ address: string; close(): void }> {
  const server = net.createServer((sock) => {
    let buf = '';
    let busy = Promise.resolve();
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let at = buf.indexOf('\r\n\r\n'); at >= 0; at = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, at).split(' ')[1] ?? '';
        buf = buf.slice(at + 4);
        busy = busy.then(async () => {
          seen.push(path);
          if (path === '/slow/1') await sleep(300);
          const body = `answer ${path}`;
          if (path === '/slow/chunked') sock.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
          else if (path === '/slow/big') sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${BIG.length}\r\n\r\n`), BIG]));
          else if (path === '/slow/bigc') {
            sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
            for (let o = 0; o < BIG.length; o += 65_536)
              sock.write(Buffer.concat([Buffer.from('10000\r\n'), BIG.subarray(o, o + 65_536), Buffer.from('\r\n')]));
            sock.write('0\r\n\r\n');
          } else sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() };
}

describe('strict engine', () => {
  let app: Upstream;
  let slowApp: { address: string; close(): void };
  let sc: Sidecar;
  /** Order in which the slow app saw requests, and when it answered each. */
  const slowSeen: string[] = [];

  beforeAll(async () => {
    app = await startUpstream();
    slowApp = await startSlowApp(slowSeen);
    const ca = await newCa();
    const files = writeTlsFiles(tempDir(), ca.certPem, leaf(ca, WEB));
    const routes = [
      { match: { path_prefix: '/slow/' }, cluster: 'slow' },
      { match: { path_prefix: '/v1/' }, cluster: 'app' },
    ];
    const slow = { keepalive_idle_ms: 1500 };
    sc = await startSidecar({
      node: { workers: 1, identity: WEB },
      tls: filesSource(files),
      listeners: [
        { name: 'strict', address: '127.0.0.1:0', engine: 'strict', routes, timeouts: slow },
        { name: 'fast', address: '127.0.0.1:0', engine: 'strict', routes },
      ],
      clusters: [
        { name: 'app', endpoints: [{ address: app.address }] },
        { name: 'slow', endpoints: [{ address: slowApp.address }] },
      ],
    });
  });
  afterAll(async () => {
    slowApp.close();
    await closeAll();
  });

  it('an idle keep-alive connection is closed at timeouts.keepalive_idle_ms, not before', async () => {
    const s = net.connect({ host: '127.0.0.1', port: sc.port('strict') });
    let raw = '';
    let closedAt = 0;
    s.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('close', () => (closedAt = Date.now()));
    await new Promise((r) => s.once('connect', r));
    s.write('GET /v1/k HTTP/1.1\r\nHost: x\r\n\r\n');
    const answered = Date.now();
    await closed;
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(closedAt - answered).toBeGreaterThanOrEqual(1400);
  });

  it('Expect: 100-continue gets 100 Continue before the body; another expectation gets 417 and the connection stays usable', async () => {
    const port = sc.port('fast');
    const r = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      let raw = '';
      s.on('data', (d: Buffer) => {
        raw += d.toString('latin1');
        if (raw === 'HTTP/1.1 100 Continue\r\n\r\n') s.write('hello');
        if (/\r\n\r\nhello$|\r\n\r\n.*$/s.test(raw) && raw.includes('200 OK')) {
          s.destroy();
          resolve(raw);
        }
      });
      s.on('connect', () => s.write('PUT /v1/expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n'));
    });
    expect(r.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
    expect(app.requests.at(-1)!.body.toString()).toBe('hello');
    expect(app.requests.at(-1)!.headers['expect']).toBeUndefined();
    const e = await exchange(
      port,
      ['GET /v1/teapot HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\nGET /v1/after HTTP/1.1\r\nHost: x\r\n\r\n'],
      (raw) => count(raw, /HTTP\/1\.1 /g) === 2 && raw.endsWith('}') === false && /200 OK[\s\S]*\r\n\r\n/.test(raw),
    );
    expect(e.raw).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
    expect(e.raw).toContain('x-outrigger-error: expectation_failed');
    expect(e.raw).toMatch(/HTTP\/1\.1 200 /);
  });

  it('a local reply on a connection that closes after it says Connection: close (client asked to close; HTTP/1.0)', async () => {
    const port = sc.port('fast');
    const asked = await exchange(port, ['GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'], () => false);
    expect(asked.raw).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(asked.raw).toMatch(/\r\nconnection: close\r\n/i);
    expect(asked.closed).toBe(true);
    const old = await exchange(port, ['GET /nowhere HTTP/1.0\r\nHost: x\r\n\r\n'], () => false);
    expect(old.raw).toMatch(/\r\nconnection: close\r\n/i);
    expect(old.closed).toBe(true);
    const kept = await exchange(port, ['GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n'], (raw) => raw.endsWith('}'));
    expect(kept.raw).not.toMatch(/connection: close/i);
    expect(kept.closed).toBe(false);
  });

  it('a head and body sent in one-byte writes arrive intact (the connection reassembles them)', async () => {
    const value = 'v'.repeat(3000);
    const bytes = `POST /v1/bytes HTTP/1.1\r\nHost: x\r\nX-Long: ${value}\r\nContent-Length: 5\r\n\r\nhello`;
    const r = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: sc.port('fast') });
      s.setNoDelay(true);
      let raw = '';
      s.on('data', (d: Buffer) => {
        raw += d.toString('latin1');
        if (/\r\n\r\n/.test(raw)) {
          s.destroy();
          resolve(raw);
        }
      });
      let i = 0;
      const next = (): void => {
        if (i < bytes.length) s.write(bytes[i++]!, () => setImmediate(next));
      };
      s.on('connect', next);
    });
    expect(r).toMatch(/^HTTP\/1\.1 200 /);
    const got = app.requests.at(-1)!;
    expect(got.headers['x-long']).toBe(value);
    expect(got.body.toString()).toBe('hello');
  });

  it('a local reply to HEAD has no body, and the connection carries on', async () => {
    const r = await exchange(
      sc.port('fast'),
      ['HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/next HTTP/1.1\r\nHost: x\r\n\r\n'],
      (raw) => count(raw, /HTTP\/1\.1 /g) === 2 && raw.includes('x-got') === false && /HTTP\/1\.1 200[\s\S]*\r\n\r\n/.test(raw),
    );
    const first = r.raw.slice(0, r.raw.indexOf('HTTP/1.1 200'));
    expect(first).toMatch(/^HTTP\/1\.1 404 [^]*content-length: \d+\r\n\r\n$/);
    expect(r.raw).toMatch(/HTTP\/1\.1 200 /);
  });

  it('pipelined requests reach the upstream one at a time, in order, and are answered in order', async () => {
    slowSeen.length = 0;
    const r = await exchange(
      sc.port('fast'),
      ['GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/3 HTTP/1.1\r\nHost: x\r\n\r\n'],
      (raw) => raw.includes('answer /slow/3'),
    );
    expect([...r.raw.matchAll(/answer (\/slow\/\d)/g)].map((m) => m[1])).toEqual(['/slow/1', '/slow/2', '/slow/3']);
    expect(slowSeen).toEqual(['/slow/1', '/slow/2', '/slow/3']);
  });

  it('HTTP/1.0: a response of unknown length is close-delimited (never chunked); keep-alive only when asked and the length is known', async () => {
    const r = await exchange(sc.port('fast'), ['GET /slow/chunked HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n'], () => false);
    expect(r.closed).toBe(true);
    expect(r.raw).not.toMatch(/transfer-encoding/i);
    expect(r.raw).toMatch(/connection: close\r\n\r\nanswer \/slow\/chunked$/);
    const k = await exchange(
      sc.port('fast'),
      ['GET /slow/k HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n'],
      (raw) => raw.endsWith('answer /slow/k'),
      2000,
    );
    expect(k.raw).toMatch(/connection: keep-alive\r\n/);
    expect(k.closed).toBe(false);
  });

  it('a response that turns bad after its head: the client gets that head, then the close (as when the app closes mid-body)', async () => {
    // The head is held until the first body bytes; here the bytes that follow it in the same read
    // are a bad chunk size, so the response is aborted while the client connection is corked.
    const bad = await startRawUpstream((c) => {
      void c.head().then(() => c.socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Bad: 1\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'));
    });
    const one = await startSidecar({
      node: { workers: 1 },
      listeners: [{ name: 'main', address: '127.0.0.1:0', engine: 'strict', routes: [{ match: { path_prefix: '/' }, cluster: 'bad' }] }],
      clusters: [{ name: 'bad', endpoints: [{ address: bad.address }] }],
    });
    const r = await exchange(one.port(), ['GET /bad HTTP/1.1\r\nHost: t\r\n\r\n'], () => false);
    expect(r.closed).toBe(true);
    expect(r.raw).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(r.raw).toMatch(/\r\nx-bad: 1\r\n/);
    expect(r.raw.endsWith('\r\n\r\n')).toBe(true); // the head, and not one byte of body
  });

  it('4 MiB both ways pass byte for byte (Content-Length and chunked), with backpressure', async () => {
    const up = await rawRequest(sc.port('fast'), [`POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${BIG.length}\r\n\r\n`, BIG], { timeoutMs: 20_000 });
    expect(up.response?.status).toBe(200);
    expect(app.requests.at(-1)!.bodySha256).toBe(BIG_SHA);
    const parts: Buffer[] = [Buffer.from('POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n')];
    for (let o = 0; o < BIG.length; o += 100_000) {
      const c = BIG.subarray(o, Math.min(BIG.length, o + 100_000));
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    const c = await rawRequest(sc.port('fast'), parts, { timeoutMs: 20_000 });
    expect(c.response?.status).toBe(200);
    expect(app.requests.at(-1)!.bodySha256).toBe(BIG_SHA);
    for (const path of ['/slow/big', '/slow/bigc']) {
      const d = await rawRequest(sc.port('fast'), `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 20_000 });
      expect(d.response?.status, path).toBe(200);
      expect(createHash('sha256').update(d.response!.body).digest('hex'), path).toBe(BIG_SHA);
    }
  });
});

describe('strict engine as an mTLS listener between two sidecars', () => {
  let mesh: MeshServer;
  let client: Sidecar;

  beforeAll(async () => {
    mesh = await startMeshServer({
      edit: (cfg) => {
        (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = 'strict';
      },
    });
    client = await startSidecar(clientSideConfig({ tls: caSource(mesh.ca), upstream: `127.0.0.1:${mesh.inbound}`, workers: 1 }));
  });
  afterAll(closeAll);

  it('serves requests from a verified peer, with its identity in x-forwarded-client-cert', async () => {
    const r = await rawRequest(client.port('outbound'), 'GET /hello HTTP/1.1\r\nHost: api\r\n\r\n');
    expect(r.response?.status).toBe(200);
    const seen = mesh.app.requests.at(-1)!;
    expect(headerValues(seen.rawHeaders, 'x-forwarded-client-cert')).toEqual([`By=${API};URI=${WEB}`]);
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: mesh.inbound, rejectUnauthorized: false });
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n'));
      s.on('data', (d: Buffer) => resolve(`answered ${d.toString('latin1').slice(0, 20)}`));
      s.on('error', (e: Error) => resolve(`error ${e.message}`));
      s.on('close', () => resolve('closed'));
    });
    expect(outcome).not.toMatch(/^answered/);
  });
});

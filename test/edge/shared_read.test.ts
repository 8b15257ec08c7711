// The strict engine reads plaintext connections into one buffer per worker thread
// (src/net/user_buffer.ts, h1/connection.ts): the bytes of a read are overwritten by the next
// read of any connection. Each case here makes bytes outlive their read while other reads come,
// and checks that what reaches the upstream is exactly what the client sent: a head split across
// reads, pipelined heads waiting behind a slow response, and request bodies (Content-Length and
// chunked) that the upstream is too slow to take at once, so that they wait in the sidecar's
// socket buffers. On each way a listener starts its reads: `protocol: auto` (the preface check
// takes the first read), `protocol: http1`, and TLS (taken over after node:tls's handshake). The
// other traffic goes to the http1 listener: every listener of a worker reads into one buffer.

import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  filesSource,
  leaf,
  newCa,
  rawRequest,
  sleep,
  startSidecar,
  startUpstream,
  tempDir,
  WEB,
  writeTlsFiles,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

interface Seen {
  url: string;
  rawHeaders: string[];
}

/** 3 MiB of a pattern that differs from every other request's bytes, and its sha256. */
const BODY = Buffer.alloc(3 * 1024 * 1024);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + 7) & 0xff;
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

/**
 * An app on a raw socket that takes a request's body slowly: after the head it reads nothing for
 * 300 ms (the sidecar's writes to it back up), then reads the body (Content-Length or chunked, as
 * node:http would de-chunk it) and answers with the body's length and sha256.
 */
async function startSlowReader(): Promise<{ address: string; close(): void }> {
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    let head: string | null = null;
    let raw = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      raw = Buffer.concat([raw, d]);
      if (head === null) {
        const at = raw.indexOf('\r\n\r\n');
        if (at < 0) return;
        head = raw.toString('latin1', 0, at);
        raw = raw.subarray(at + 4);
        sock.pause();
        setTimeout(() => sock.resume(), 300);
      }
      const body = bodyOf(head, raw);
      if (body === null) return;
      sock.off('data', onData);
      const answer = JSON.stringify({ length: body.length, sha256: createHash('sha256').update(body).digest('hex') });
      sock.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\nconnection: close\r\n\r\n${answer}`);
    };
    sock.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() };
}

/** The whole body once it has arrived, else null. */
function bodyOf(head: string, raw: Buffer): Buffer | null {
  const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (cl !== null) return raw.length >= Number(cl[1]) ? raw.subarray(0, Number(cl[1])) : null;
  if (!raw.subarray(-5).equals(Buffer.from('0\r\n\r\n'))) return null;
  const parts: Buffer[] = [];
  let p = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', p);
    if (eol < 0) return null;
    const size = parseInt(raw.toString('latin1', p, eol), 16);
    if (size === 0) return Buffer.concat(parts);
    if (eol + 2 + size + 2 > raw.length) return null;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    p = eol + 2 + size + 2;
  }
}

/** Connects (over TLS to the `tls` listener) and writes `first`; returns the socket and everything it receives. */
function openWith(port: number, first: string, secure: boolean): Promise<{ socket: net.Socket; received: () => string }> {
  return new Promise((resolve) => {
    const socket = secure ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : net.connect({ host: '127.0.0.1', port });
    let raw = '';
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    socket.on(secure ? 'secureConnect' : 'connect', () => {
      socket.write(first);
      resolve({ socket, received: () => raw });
    });
  });
}

/** The JSON bodies of the responses in `raw` (Content-Length framed, as the echo app answers). */
function echoBodies(raw: string): Seen[] {
  const out: Seen[] = [];
  let p = 0;
  for (;;) {
    const at = raw.indexOf('\r\n\r\n', p);
    if (at < 0) return out;
    const len = Number(/content-length: *(\d+)/i.exec(raw.slice(p, at))?.[1] ?? 'NaN');
    if (!(at + 4 + len <= raw.length)) return out;
    out.push(JSON.parse(raw.slice(at + 4, at + 4 + len)) as Seen);
    p = at + 4 + len;
  }
}

async function until<T>(f: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = f();
    if (v !== undefined) return v;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Other clients' traffic: `n` requests with heads of filler bytes, each read into the same buffer. */
async function otherTraffic(port: number, n: number): Promise<void> {
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) => rawRequest(port, `GET /other/${'z'.repeat(200)}${i} HTTP/1.1\r\nhost: other\r\nx-filler: ${'#'.repeat(400)}\r\n\r\n`)),
  );
  for (const r of rs) expect(r.response?.status).toBe(200);
}

describe('strict engine: bytes that outlive their read into the shared buffer', () => {
  let echo: Upstream;
  let slow: { address: string; close(): void };
  let sc: Sidecar;

  beforeAll(async () => {
    echo = await startUpstream();
    slow = await startSlowReader();
    const routes = [
      { match: { path_prefix: '/upload' }, cluster: 'slow' },
      { match: { path_prefix: '/' }, cluster: 'echo' },
    ];
    const ca = await newCa();
    sc = await startSidecar({
      node: { workers: 1, identity: WEB },
      tls: filesSource(writeTlsFiles(tempDir(), ca.certPem, leaf(ca, WEB))),
      listeners: [
        { name: 'auto', address: '127.0.0.1:0', engine: 'strict', routes },
        { name: 'http1', address: '127.0.0.1:0', engine: 'strict', protocol: 'http1', routes },
        { name: 'tls', address: '127.0.0.1:0', engine: 'strict', tls: { mode: 'tls' }, routes },
      ],
      clusters: [
        { name: 'echo', endpoints: [{ address: echo.address }] },
        { name: 'slow', endpoints: [{ address: slow.address }] },
      ],
    });
  });
  afterAll(async () => {
    slow.close();
    await closeAll();
  });

  for (const listener of ['auto', 'http1', 'tls']) {
    const secure = listener === 'tls';
    const other = (): number => sc.port('http1');
    it(`${listener}: heads split across reads arrive whole while other connections are read in between`, async () => {
      const port = sc.port(listener);
      const clients = await Promise.all(
        Array.from({ length: 6 }, (_, i) => openWith(port, `GET /split/${i}/${'a'.repeat(100)} HTTP/1.1\r\nhost: split\r\nx-part: ${'b'.repeat(50)}`, secure)),
      );
      await sleep(100); // the first parts are read (and kept) before anything below
      await otherTraffic(other(), 8);
      for (const [i, c] of clients.entries()) c.socket.write(`-${i}\r\nx-tail: ${'c'.repeat(30)}\r\n\r\n`);
      const seen = await Promise.all(clients.map((c) => until(() => echoBodies(c.received())[0], 'the split request answered')));
      for (const [i, s] of seen.entries()) {
        expect(s.url).toBe(`/split/${i}/${'a'.repeat(100)}`);
        expect(s.rawHeaders).toContain(`${'b'.repeat(50)}-${i}`);
        expect(s.rawHeaders).toContain('c'.repeat(30));
      }
      for (const c of clients) c.socket.destroy();
    });

    it(`${listener}: pipelined heads read with the first request wait intact behind its response`, async () => {
      const port = sc.port(listener);
      const heads = [1, 2, 3].map((k) => `GET /pipe/${k}/${'p'.repeat(300)} HTTP/1.1\r\nhost: pipe\r\nx-k: ${String(k).repeat(40)}\r\n\r\n`);
      const c = await openWith(port, heads.join(''), secure);
      // While the first response is on its way, other reads reuse the buffer.
      await otherTraffic(other(), 8);
      const seen = await until(() => {
        const b = echoBodies(c.received());
        return b.length === 3 ? b : undefined;
      }, 'three pipelined responses');
      expect(seen.map((s) => s.url)).toEqual([1, 2, 3].map((k) => `/pipe/${k}/${'p'.repeat(300)}`));
      for (const [i, s] of seen.entries()) expect(s.rawHeaders).toContain(String(i + 1).repeat(40));
      c.socket.destroy();
    });

    for (const framing of ['content-length', 'chunked']) {
      it(`${listener}: a ${framing} body the upstream takes slowly reaches it byte for byte`, async () => {
        const port = sc.port(listener);
        const head =
          framing === 'chunked'
            ? 'POST /upload HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n'
            : `POST /upload HTTP/1.1\r\nhost: up\r\ncontent-length: ${BODY.length}\r\n\r\n`;
        const c = await openWith(port, head, secure);
        for (let o = 0; o < BODY.length; o += 256 * 1024) {
          const piece = BODY.subarray(o, o + 256 * 1024);
          c.socket.write(framing === 'chunked' ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
        }
        if (framing === 'chunked') c.socket.write('0\r\n\r\n');
        await otherTraffic(other(), 4);
        const answer = await until(() => {
          const raw = c.received();
          const at = raw.indexOf('\r\n\r\n');
          return at >= 0 && raw.endsWith('}') ? raw.slice(at + 4) : undefined;
        }, 'the upload answered');
        expect(JSON.parse(answer)).toEqual({ length: BODY.length, sha256: BODY_SHA });
        c.socket.destroy();
      });
    }
  }
});

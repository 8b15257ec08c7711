// The SO_REUSEPORT addon (src/net/reuseport.ts): two worker threads listening on the same port
// both get connections; sockets without SO_REUSEPORT and reuseport sockets exclude each other;
// port 0, IPv6, closing, and SO_ORIGINAL_DST of a non-redirected connection. Real sockets on
// loopback only. The workers import the compiled dist/src/net/reuseport.js (`npm test` builds first).

import { closeSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { originalDestination, reusePortAvailable, reusePortListen, socketLocalPort } from '../../src/net/reuseport.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPILED = path.join(ROOT, 'dist', 'src', 'net', 'reuseport.js');

/** Servers and raw fds a test opened; closed in afterEach. */
const servers = new Set<net.Server>();
const fds = new Set<number>();
const workers = new Set<Worker>();

afterEach(async () => {
  for (const fd of fds) closeSync(fd);
  fds.clear();
  await Promise.all([...servers].map((s) => new Promise<void>((r) => s.close(() => r()))));
  servers.clear();
  await Promise.all([...workers].map((w) => w.terminate()));
  workers.clear();
});

/** `net.createServer(onConn).listen({fd})`, resolved once listening. */
function serveFd(fd: number, onConn: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConn);
  servers.add(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve(server));
  });
}

function closeServer(server: net.Server): Promise<void> {
  servers.delete(server);
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

/** A plain (exclusive: no SO_REUSEPORT) net.Server listen; resolves with the server or the error. */
function plainListen(host: string, port: number): Promise<net.Server | NodeJS.ErrnoException> {
  const server = net.createServer((s) => s.end());
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen(port, host, () => {
      servers.add(server);
      resolve(server);
    });
  });
}

/** Connects, reads until the peer ends, resolves with what it sent. */
function fetchText(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let data = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from ${host}:${port}`)));
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

function thrown(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn();
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error('expected a throw');
}

// Worker (CommonJS, eval): listens on its own SO_REUSEPORT socket for workerData.port (0: any),
// answers each connection with its name, reports {port}, and on any message closes and reports
// {accepted}.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
(async () => {
  const { reusePortListen, socketLocalPort } = await import(workerData.module);
  const fd = reusePortListen('127.0.0.1', workerData.port);
  let accepted = 0;
  const server = net.createServer((s) => { accepted++; s.end(workerData.name); });
  server.listen({ fd }, () => parentPort.postMessage({ port: socketLocalPort(fd) }));
  parentPort.once('message', () => server.close(() => { parentPort.postMessage({ accepted }); parentPort.close(); }));
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
`;

interface WorkerMsg {
  port?: number;
  accepted?: number;
  error?: string;
}

function nextMessage(w: Worker): Promise<WorkerMsg> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: WorkerMsg) => (m.error !== undefined ? reject(new Error(m.error)) : resolve(m)));
    w.once('error', reject);
  });
}

function startWorker(name: string, port: number): Worker {
  const w = new Worker(WORKER, { eval: true, workerData: { name, port, module: pathToFileURL(COMPILED).href } });
  workers.add(w);
  return w;
}

describe('reuseport addon', () => {
  it('loads (the addon is built by npm ci)', () => {
    expect(reusePortAvailable()).toBe(true);
  });

  it('spreads connections across two worker threads listening on the same port', async () => {
    expect(existsSync(COMPILED), `${COMPILED} missing: run npm run build`).toBe(true);
    const a = startWorker('a', 0);
    const { port } = await nextMessage(a);
    expect(port).toBeGreaterThan(0);
    const b = startWorker('b', port!);
    expect((await nextMessage(b)).port).toBe(port);

    const answers = await Promise.all(Array.from({ length: 200 }, () => fetchText('127.0.0.1', port!)));
    const seen = { a: 0, b: 0 };
    for (const x of answers) {
      expect(['a', 'b']).toContain(x);
      seen[x as 'a' | 'b']++;
    }
    console.info(`reuseport split over 200 connections: worker a ${seen.a}, worker b ${seen.b}`);
    expect(seen.a + seen.b).toBe(200);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);

    // Each worker's own count agrees with what the clients saw.
    const doneA = nextMessage(a);
    const doneB = nextMessage(b);
    a.postMessage('close');
    b.postMessage('close');
    expect((await doneA).accepted).toBe(seen.a);
    expect((await doneB).accepted).toBe(seen.b);
  });

  it('does not share a port with a socket that lacks SO_REUSEPORT, either way round', async () => {
    // A plain (exclusive) net.Server holds the port: the reuseport socket is refused.
    const plain = await plainListen('127.0.0.1', 0);
    if (plain instanceof Error) throw plain;
    const held = (plain.address() as net.AddressInfo).port;
    const err = thrown(() => reusePortListen('127.0.0.1', held));
    expect(err.code).toBe('EADDRINUSE');
    expect(err.syscall).toBe('bind');
    expect(err.message).toBe(`bind 127.0.0.1:${held}: Address already in use`);

    // A reuseport socket holds the port: a plain net.Server is refused.
    const fd = reusePortListen('127.0.0.1', 0);
    fds.add(fd);
    const refused = await plainListen('127.0.0.1', socketLocalPort(fd));
    expect(refused).toBeInstanceOf(Error);
    expect((refused as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
  });

  it('port 0 picks a free port that accepts connections', async () => {
    const fd = reusePortListen('127.0.0.1', 0);
    const port = socketLocalPort(fd);
    expect(port).toBeGreaterThan(0);
    const server = await serveFd(fd, (s) => s.end('hello'));
    expect(server.address()).toMatchObject({ address: '127.0.0.1', port });
    expect(await fetchText('127.0.0.1', port)).toBe('hello');
  });

  it('listens on IPv6 ::1 (127.0.0.1 when this machine has no ::1)', async () => {
    const hasV6 = Object.values(os.networkInterfaces()).some((addrs) => addrs?.some((a) => a.address === '::1'));
    const host = hasV6 ? '::1' : '127.0.0.1';
    const fd = reusePortListen(host, 0);
    const port = socketLocalPort(fd);
    const first = await serveFd(fd, (s) => s.end('one'));
    expect(first.address()).toMatchObject({ address: host, family: hasV6 ? 'IPv6' : 'IPv4', port });
    // A second reuseport socket joins the same port.
    const second = await serveFd(reusePortListen(host, port), (s) => s.end('two'));
    expect((second.address() as net.AddressInfo).port).toBe(port);
    expect(['one', 'two']).toContain(await fetchText(host, port));
  });

  it('frees the port when the servers close', async () => {
    const fd1 = reusePortListen('127.0.0.1', 0);
    const port = socketLocalPort(fd1);
    const s1 = await serveFd(fd1, (s) => s.end('x'));
    const s2 = await serveFd(reusePortListen('127.0.0.1', port), (s) => s.end('x'));
    expect(await fetchText('127.0.0.1', port)).toBe('x');

    await closeServer(s1);
    // s2 still holds the port.
    const busy = await plainListen('127.0.0.1', port);
    expect((busy as NodeJS.ErrnoException).code).toBe('EADDRINUSE');

    await closeServer(s2);
    const plain = await plainListen('127.0.0.1', port);
    expect(plain).toBeInstanceOf(net.Server);
    expect(await fetchText('127.0.0.1', port)).toBe('');
  });

  it('originalDestination is null for a connection that was not redirected', async () => {
    const fd = reusePortListen('127.0.0.1', 0);
    const port = socketLocalPort(fd);
    let acceptedFd = -1;
    let original: unknown = 'unset';
    await serveFd(fd, (s) => {
      acceptedFd = (s as unknown as { _handle: { fd: number } })._handle.fd;
      original = originalDestination(acceptedFd);
      s.end('ok');
    });
    expect(await fetchText('127.0.0.1', port)).toBe('ok');
    expect(acceptedFd).toBeGreaterThan(0);
    expect(original).toBeNull();
  });

  it('rejects what is not an IP literal or a valid port, and reports errno names', () => {
    const host = thrown(() => reusePortListen('localhost', 0));
    expect(host).toBeInstanceOf(TypeError);
    expect(host.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(thrown(() => reusePortListen('127.0.0.1', 65536)).code).toBe('ERR_INVALID_ARG_VALUE');
    expect(thrown(() => reusePortListen('127.0.0.1', 1.5)).code).toBe('ERR_INVALID_ARG_VALUE');
    expect(thrown(() => socketLocalPort(2 ** 30)).code).toBe('EBADF');
  });
});

// The one fake upstream: a real node:http (or, with `tls`, https with client certificates) server
// on 127.0.0.1:0 that records every request it receives and answers as its `mode` says; the mode
// may be switched while a test runs. Health checks (user-agent outrigger-health-check, or
// `healthPath`) are counted apart and answered as `health` says. Closed by closeAll().

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash, randomInt, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import type { Readable, Writable } from 'node:stream';
import { ROOT } from './process.js';
import { track } from './live.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  httpVersion: string;
  /** Flat [name, value, ...] exactly as node parsed them (order and duplicates kept). */
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  /** Body bytes (empty when recordBody is false). */
  body: Buffer;
  bodyLength: number;
  /** sha256 hex of the body, final once `complete`. */
  bodySha256: string;
  /** The whole body arrived ('end'). */
  complete: boolean;
  /** The request was aborted before it completed ('aborted' or 'close' before 'end'). */
  aborted: boolean;
  /** Resolves when the request body ended or the request was aborted. */
  settled: Promise<void>;
  /** Which upstream (its `name`) got it. */
  upstream: string;
  /** Serial (upper-case hex) of the client certificate of the connection (tls upstreams), else null. */
  peerSerial: string | null;
}

/**
 * How the upstream answers requests (health checks aside):
 * - `ok`: `status` (default 200) with `body(rec)` (default `<name> <url>`);
 * - `503` / `500` / `409`: that status with body `<name> <status>`;
 * - `hang`: never answers (until `release()` or close);
 * - `reset`: reads the request, then destroys the socket without a byte of response;
 * - `reset-mid-body`: sends a 200 head promising 100 bytes, 10 of them, then destroys the socket;
 * - `slow-stream`: a chunked 200 whose chunks come every `streamEveryMs` and never end;
 * - `echo`: 200 with a JSON summary of what arrived (method, url, rawHeaders, bodyLength, sha256).
 */
export type Mode = 'ok' | '503' | '500' | '409' | 'hang' | 'reset' | 'reset-mid-body' | 'slow-stream' | 'echo';

/** How health checks are answered: 200 `ok`, 503 `failing`, or never. */
export type HealthMode = 'pass' | 'fail' | 'hang';

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, rec: ReceivedRequest) => void;

export interface UpstreamOptions {
  /** Names the upstream in its answers and in `rec.upstream` (default 'upstream'). */
  name?: string;
  /** Answers requests itself (modes then do not apply). */
  handler?: UpstreamHandler;
  mode?: Mode;
  /** Status of `ok` answers (default 200). */
  status?: number;
  /** Body of `ok` answers (default `<name> <url>`). */
  body?: (rec: ReceivedRequest) => string;
  /** Delay before an ok/503/500/409 answer, ms, or a function giving it per request. */
  delayMs?: number | (() => number);
  /** Answer with `Connection: close`. */
  close?: boolean;
  streamEveryMs?: number;
  /** Keep body bytes in `rec.body` (default true). */
  recordBody?: boolean;
  /** Requests to this path are health checks too (default: only the checker's user-agent). */
  healthPath?: string;
  /** Shared by several upstreams to see retries that move between them. */
  meter?: RetryMeter;
  /** Serve https, present `cert`/`key`, require a client certificate trusted by `ca`. */
  tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  readonly server: http.Server;
  /** Requests received (health checks excluded), in arrival order. */
  readonly requests: ReceivedRequest[];
  /** Health checks received. */
  readonly healthChecks: ReceivedRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  /** Client certificate serial of every accepted TLS connection, in order (tls upstreams). */
  readonly connectionSerials: string[];
  /** TLS handshakes refused (tls upstreams). */
  refused: number;
  /** Current answer; may be changed at any time. */
  mode: Mode;
  /** Modes for the next requests, consumed one per request before `mode` applies. */
  script: Mode[];
  health: HealthMode;
  /** Requests (and health checks) held unanswered right now. */
  readonly hanging: number;
  /** Answers every held request with 200 now. */
  release(): void;
  /** Requests per x-request-id, in arrival order. */
  byRequestId(): Map<string, ReceivedRequest[]>;
  readonly meter: RetryMeter;
  close(): Promise<void>;
}

/** Counts retry attempts (an x-request-id seen before, on any upstream sharing the meter) held at the upstreams. */
export class RetryMeter {
  private readonly seen = new Set<string>();
  private now = 0;
  /** Most retry attempts held at once. */
  max = 0;
  /** Retry attempts seen. */
  retries = 0;
  arrived(id: string, res: http.ServerResponse): void {
    if (this.seen.has(id)) {
      this.retries++;
      this.now++;
      this.max = Math.max(this.max, this.now);
      res.on('close', () => this.now--);
    }
    this.seen.add(id);
  }
}

const HEALTH_USER_AGENT = 'outrigger-health-check';

/** Default handler of the e2e tests: once the body is in, 200 with a JSON summary of what arrived. */
export const echoHandler: UpstreamHandler = (_req, res, rec) => {
  void rec.settled.then(() => {
    if (res.destroyed) return;
    const body = JSON.stringify({ method: rec.method, url: rec.url, rawHeaders: rec.rawHeaders, bodyLength: rec.bodyLength, sha256: rec.bodySha256 });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};

function answer(res: http.ServerResponse, status: number, body: string, close = false): void {
  if (res.destroyed || res.headersSent) return;
  const headers: Record<string, string | number> = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
  if (close) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

/** Groups requests by their x-request-id header, in arrival order. */
export function groupByRequestId(requests: readonly ReceivedRequest[]): Map<string, ReceivedRequest[]> {
  const m = new Map<string, ReceivedRequest[]>();
  for (const r of requests) {
    const id = String(r.headers['x-request-id'] ?? '');
    const list = m.get(id) ?? [];
    list.push(r);
    m.set(id, list);
  }
  return m;
}

/** Requests of every upstream, grouped by x-request-id, in arrival order. */
export function attemptsById(ups: readonly Upstream[]): Map<string, ReceivedRequest[]> {
  return groupByRequestId(ups.flatMap((u) => u.requests));
}

/**
 * Starts the fake upstream. `startUpstream()` echoes; `startUpstream(handler, { name })` answers
 * with a handler of its own; `startUpstream('a', { status: 503 })` answers `a <url>`;
 * `startUpstream({ ... })` takes every option.
 */
export async function startUpstream(first?: UpstreamHandler | string | UpstreamOptions, more: UpstreamOptions = {}): Promise<Upstream> {
  const o: UpstreamOptions =
    typeof first === 'function' ? { ...more, handler: first } : typeof first === 'string' ? { ...more, name: first } : { mode: 'echo', ...first, ...more };
  if (typeof first === 'string' && o.mode === undefined) o.mode = 'ok';
  const name = o.name ?? 'upstream';
  const recordBody = o.recordBody ?? true;
  const held = new Set<http.ServerResponse>();
  const sockets = new Set<net.Socket>();
  const meter = o.meter ?? new RetryMeter();
  const delayOf = (): number => (typeof o.delayMs === 'function' ? o.delayMs() : (o.delayMs ?? 0));
  const later = (f: () => void): void => {
    const d = delayOf();
    if (d > 0) setTimeout(f, d);
    else f();
  };
  const hold = (res: http.ServerResponse): void => {
    held.add(res);
    res.on('close', () => held.delete(res));
  };

  const reply = (req: http.IncomingMessage, res: http.ServerResponse, rec: ReceivedRequest, mode: Mode): void => {
    switch (mode) {
      case 'echo':
        return echoHandler(req, res, rec);
      case 'ok':
        return later(() => answer(res, o.status ?? 200, o.body?.(rec) ?? `${name} ${rec.url}`, o.close));
      case '503':
      case '500':
      case '409':
        return later(() => answer(res, Number(mode), `${name} ${mode}`, o.close));
      case 'hang':
        return hold(res);
      case 'reset':
        req.socket.destroy();
        return;
      case 'reset-mid-body':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
        // The reset comes a moment after the 10 bytes left, so the proxy reads them first.
        res.write('x'.repeat(10), () => setTimeout(() => req.socket.destroy(), 20));
        return;
      case 'slow-stream': {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        const t = setInterval(() => {
          if (res.destroyed) clearInterval(t);
          else res.write('more\n');
        }, o.streamEveryMs ?? 20);
        res.on('close', () => clearInterval(t));
        return;
      }
    }
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const parts: Buffer[] = [];
    const hash = createHash('sha256');
    let resolveSettled!: () => void;
    const peer = o.tls === undefined ? undefined : (req.socket as tls.TLSSocket).getPeerX509Certificate();
    const rec: ReceivedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders.slice(),
      headers: req.headers,
      body: Buffer.alloc(0),
      bodyLength: 0,
      bodySha256: '',
      complete: false,
      aborted: false,
      settled: new Promise<void>((r) => (resolveSettled = r)),
      upstream: name,
      peerSerial: peer === undefined ? null : serialOf(peer),
    };
    req.on('data', (chunk: Buffer) => {
      rec.bodyLength += chunk.length;
      hash.update(chunk);
      if (recordBody) parts.push(chunk);
    });
    req.on('end', () => {
      rec.complete = true;
      rec.bodySha256 = hash.digest('hex');
      if (recordBody) rec.body = Buffer.concat(parts);
      resolveSettled();
    });
    const onAbort = (): void => {
      if (rec.complete) return;
      rec.aborted = true;
      resolveSettled();
    };
    req.on('aborted', onAbort);
    req.on('close', onAbort);
    req.on('error', onAbort);
    res.on('error', () => undefined);

    if (req.headers['user-agent'] === HEALTH_USER_AGENT || (o.healthPath !== undefined && rec.url === o.healthPath)) {
      up.healthChecks.push(rec);
      const health = up.health;
      if (health === 'hang') return hold(res);
      void rec.settled.then(() => answer(res, health === 'pass' ? 200 : 503, health === 'pass' ? 'ok' : 'failing'));
      return;
    }
    up.requests.push(rec);
    meter.arrived(String(req.headers['x-request-id'] ?? ''), res);
    if (o.handler !== undefined) return o.handler(req, res, rec);
    const mode = up.script.shift() ?? up.mode;
    void rec.settled.then(() => reply(req, res, rec, mode));
  };

  const server: http.Server =
    o.tls === undefined
      ? http.createServer({ keepAliveTimeout: 300_000, headersTimeout: 300_000, requestTimeout: 0 }, onRequest)
      : https.createServer(
          {
            cert: o.tls.cert,
            key: o.tls.key,
            ca: o.tls.ca,
            requestCert: true,
            rejectUnauthorized: true,
            keepAliveTimeout: 300_000,
            headersTimeout: 300_000,
            requestTimeout: 0,
          },
          onRequest,
        );
  server.on('connection', (s: net.Socket) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const peer = s.getPeerX509Certificate();
    up.connectionSerials.push(peer === undefined ? '?' : serialOf(peer));
  });
  server.on('tlsClientError', () => up.refused++);
  server.on('clientError', (_err, s: net.Socket) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const handle = {
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const untrack = track(handle);
  const up: Upstream = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    server,
    requests: [],
    healthChecks: [],
    connections: 0,
    connectionSerials: [],
    refused: 0,
    mode: o.mode ?? 'ok',
    script: [],
    health: 'pass',
    get hanging() {
      return held.size;
    },
    release() {
      for (const res of [...held]) answer(res, 200, `${name} released`);
      held.clear();
    },
    byRequestId: () => groupByRequestId(up.requests),
    meter,
    close: async () => {
      untrack();
      await handle.close();
    },
  };
  return up;
}

function serialOf(c: X509Certificate): string {
  return c.serialNumber.toUpperCase();
}

/** The kernel's range for port-0 binds and outgoing connections (ip_local_port_range). */
function ephemeralPorts(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux, or no procfs: the usual range
  }
  return [32768, 60999];
}

/** Whether a listener can take `port` on 127.0.0.1 now (it is closed again at once). */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Ports this process handed out already (two calls never return the same one). */
const handedOut = new Set<number>();

/**
 * A port on 127.0.0.1 where nothing listens: a dead endpoint, or a free port to bind a listener
 * to. It is taken below the kernel's range for port-0 binds and outgoing connections, so that no
 * listener or connection of the other test lane (every test binds port 0) can land on it while a
 * test counts on it staying dead or free: a port released back into that range was taken by the
 * other lane's next port-0 bind often enough to fail a CI run now and then (a tracing collector
 * "down" that answered, a TCP listener that counted another test's connections).
 */
export async function deadPort(): Promise<number> {
  const [low] = ephemeralPorts();
  const from = Math.max(1024, low - 12_000);
  for (let attempt = 0; attempt < 100 && low - from > 100; attempt++) {
    const port = from + randomInt(low - from);
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The mesh tests' local app: answers 200 `app <method> <url>`. */
export function startApp(): Promise<Upstream> {
  return startUpstream({ name: 'app', mode: 'ok', body: (r) => `app ${r.method} ${r.url}` });
}

/**
 * An https upstream presenting `serverLeaf` (give it the identity the sidecar's cluster expects)
 * that requires a client certificate trusted by `bundlePem`; answers 200 `probe` and records each
 * connection's client certificate serial.
 */
export function startProbe(serverLeaf: { readonly certPem: string; readonly keyPem: string }, bundlePem: string): Promise<Upstream> {
  return startUpstream({ name: 'probe', mode: 'ok', body: () => 'probe', tls: { cert: serverLeaf.certPem, key: serverLeaf.keyPem, ca: bundlePem } });
}

/** Values of header `name` (lower case) in a flat rawHeaders list. */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

/** test/fixtures/py_app.py (Python's http.server) speaking `protocol` (HTTP/1.1 or HTTP/1.0), listening with `backlog`; its port. */
export async function startPythonApp(protocol: 'HTTP/1.1' | 'HTTP/1.0', backlog = 128): Promise<number> {
  return (await spawnPythonApp([protocol, String(backlog)])).port;
}

/**
 * py_app.py listening with `backlog` that accepts no connection until release() (the kernel
 * drops SYNs past the backlog meanwhile); its port.
 */
export async function startHeldPythonApp(protocol: 'HTTP/1.1' | 'HTTP/1.0', backlog: number): Promise<{ port: number; release: () => void }> {
  const { port, child } = await spawnPythonApp([protocol, String(backlog), 'held']);
  return { port, release: () => child.stdin.write('go\n') };
}

async function spawnPythonApp(args: string[]): Promise<{ port: number; child: ChildProcessByStdio<Writable, Readable, Readable> }> {
  // Its stderr is kept, not shown: http.server prints a traceback for every connection closed under an answer.
  const child = spawn('python3', [`${ROOT}/test/fixtures/py_app.py`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  track({
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`py_app.py exited with ${code}: ${stderr}`)));
  });
  return { port, child };
}

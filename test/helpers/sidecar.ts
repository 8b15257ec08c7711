// E2E test helpers: start the built CLI (`dist/src/cli/main.js run`) as a real process with a
// temp config, real node:http upstreams that record what they received, raw-socket upstreams for
// misbehaving peers, and a raw-socket client that sends exact bytes. Everything binds 127.0.0.1,
// every wait is bounded, and `closeAll()` (call it in afterAll/afterEach) cleans everything up.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** Everything started by these helpers and not yet closed. */
const live = new Set<{ close(): Promise<unknown> }>();

/** Closes every sidecar, upstream and socket these helpers started (for afterAll/afterEach). */
export async function closeAll(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.allSettled(all.map((x) => x.close()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it is true; throws after `timeoutMs` with `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------------------------------------
// Sidecar

export interface SidecarOptions {
  /** Sets node.workers (default 1 when the config does not say). */
  workers?: number;
  env?: Record<string, string>;
  /** How long to wait for the ready line (default 20 s). */
  readyTimeoutMs?: number;
}

export interface LogEntry {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface Sidecar {
  readonly pid: number;
  /** Port of a listener (the first one when no name is given). */
  port(listener?: string): number;
  /** `http://127.0.0.1:PORT${path}` on a listener. */
  url(pathAndQuery: string, listener?: string): string;
  /** `http://127.0.0.1:ADMINPORT` (from the ready line). */
  readonly admin: string;
  /** The admin bearer token, read from the ready line's `admin_token_file`. */
  readonly adminToken: string;
  /** Raw stdout lines so far. */
  logs(): string[];
  /** Parsed JSON log lines so far. */
  entries(): LogEntry[];
  stderr(): string;
  /** Resolves with the first log entry that satisfies `pred` (bounded). */
  waitForLog(pred: (e: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** SIGTERM, wait for the exit (SIGKILL after 15 s); resolves with the exit code (null when killed). */
  stop(): Promise<number | null>;
  /** Whether the process has exited. */
  exited(): boolean;
}

export type ConfigInput = string | Record<string, unknown>;

function toConfigObject(config: ConfigInput): Record<string, unknown> {
  if (typeof config !== 'string') return structuredClone(config);
  const obj = parseYaml(config) as unknown;
  if (obj === null || typeof obj !== 'object') throw new Error('config text does not parse to an object');
  return obj as Record<string, unknown>;
}

export async function startSidecar(config: ConfigInput, opts: SidecarOptions = {}): Promise<Sidecar> {
  const cfg = toConfigObject(config);
  const node = (cfg['node'] ??= {}) as Record<string, unknown>;
  if (opts.workers !== undefined) node['workers'] = opts.workers;
  node['workers'] ??= 1;
  node['drain_timeout_ms'] ??= 2000;
  // Never the default 127.0.0.1:15000: tests run next to each other and next to real sidecars.
  const admin = (cfg['admin'] ??= {}) as Record<string, unknown>;
  admin['address'] ??= '127.0.0.1:0';

  const dir = mkdtempSync(path.join(os.tmpdir(), 'outrigger-e2e-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run "npx tsc -p tsconfig.json" first`);

  const child: ChildProcess = spawn(process.execPath, [CLI, 'run', '-c', file], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const entries: LogEntry[] = [];
  let stderr = '';
  let partial = '';
  let exitCode: number | null | undefined;
  const exitWaiters: Array<(code: number | null) => void> = [];
  const logWaiters = new Set<() => void>();

  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(line);
      try {
        entries.push(JSON.parse(line) as LogEntry);
      } catch {
        entries.push({ msg: line });
      }
      for (const w of [...logWaiters]) w();
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    stderr += s;
  });
  child.on('close', (code, signal) => {
    exitCode = signal !== null ? null : code;
    for (const w of exitWaiters.splice(0)) w(exitCode);
    for (const w of [...logWaiters]) w();
  });

  const waitForLog = (pred: (e: LogEntry) => boolean, timeoutMs = 10_000): Promise<LogEntry> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = entries.find(pred);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (exitCode !== undefined) {
          done();
          reject(new Error(`sidecar exited (code ${String(exitCode)}) before the expected log line\nstderr:\n${stderr}\nstdout:\n${lines.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line\nstderr:\n${stderr}\nstdout:\n${lines.join('\n')}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        logWaiters.delete(check);
      };
      logWaiters.add(check);
      check();
    });

  const stop = (): Promise<number | null> => {
    if (exitCode !== undefined) return Promise.resolve(exitCode);
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      exitWaiters.push((code) => {
        clearTimeout(kill);
        resolve(code);
      });
      child.kill('SIGTERM');
    });
  };

  const handle = {
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(handle);

  let ready: LogEntry;
  try {
    ready = await waitForLog((e) => e.msg === 'ready', opts.readyTimeoutMs ?? 20_000);
  } catch (e) {
    live.delete(handle);
    await handle.close();
    throw e;
  }
  const listeners = (ready['listeners'] as Array<{ name: string; address: string }> | undefined) ?? [];
  const adminToken = readFileSync(String(ready['admin_token_file']), 'utf8').trim();
  const ports = new Map<string, number>();
  for (const l of listeners) ports.set(l.name, Number(l.address.slice(l.address.lastIndexOf(':') + 1)));

  const port = (name?: string): number => {
    const p = name === undefined ? listeners[0] && ports.get(listeners[0].name) : ports.get(name);
    if (p === undefined) throw new Error(`no listener ${name ?? '(first)'} in the ready line: ${JSON.stringify(listeners)}`);
    return p;
  };
  return {
    pid: child.pid!,
    port,
    url: (p, listener) => `http://127.0.0.1:${port(listener)}${p}`,
    admin: `http://${String(ready['admin'])}`,
    adminToken,
    logs: () => lines.slice(),
    entries: () => entries.slice(),
    stderr: () => stderr,
    waitForLog,
    stop: async () => {
      const code = await stop();
      live.delete(handle);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
    exited: () => exitCode !== undefined,
  };
}

/** Log lines of worker restarts so far. */
export function restartLines(sc: Sidecar): LogEntry[] {
  return sc.entries().filter((e) => e.msg === 'worker exited; restarting');
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export interface ConfigOptions {
  workers?: number;
  lb?: 'least_request' | 'round_robin' | 'random';
  timeoutMs?: number;
  maxRequestHeadersBytes?: number;
  /** listeners[].engine (default: outrigger's default, node). */
  engine?: 'uws' | 'node';
  /** Extra routes placed before the catch-all route to cluster `app`. */
  routes?: Array<Record<string, unknown>>;
  /** Extra clusters. */
  clusters?: Array<Record<string, unknown>>;
  weights?: number[];
  pool?: Record<string, unknown>;
}

/** One listener `main` on 127.0.0.1:0, a catch-all route to cluster `app` with these endpoints. */
export function proxyConfig(endpoints: string[], o: ConfigOptions = {}): Record<string, unknown> {
  const catchAll: Record<string, unknown> = { name: 'all', match: { path_prefix: '/' }, cluster: 'app' };
  if (o.timeoutMs !== undefined) catchAll['timeout_ms'] = o.timeoutMs;
  const listener: Record<string, unknown> = {
    name: 'main',
    address: '127.0.0.1:0',
    routes: [...(o.routes ?? []), catchAll],
  };
  if (o.maxRequestHeadersBytes !== undefined) listener['max_request_headers_bytes'] = o.maxRequestHeadersBytes;
  if (o.engine !== undefined) listener['engine'] = o.engine;
  const app: Record<string, unknown> = {
    name: 'app',
    lb: o.lb ?? 'least_request',
    endpoints: endpoints.map((address, i) => ({ address, weight: o.weights?.[i] ?? 1 })),
  };
  if (o.pool !== undefined) app['pool'] = o.pool;
  return {
    node: { workers: o.workers ?? 1, drain_timeout_ms: 2000 },
    listeners: [listener],
    clusters: [app, ...(o.clusters ?? [])],
  };
}

// ---------------------------------------------------------------------------------------------
// node:http upstream that records what it received

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
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  readonly requests: ReceivedRequest[];
  readonly server: http.Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, rec: ReceivedRequest) => void;

/** Default handler: once the body is in, answer 200 with a JSON summary of what arrived. */
export const echoHandler: UpstreamHandler = (_req, res, rec) => {
  void rec.settled.then(() => {
    if (res.destroyed) return;
    const body = JSON.stringify({ method: rec.method, url: rec.url, rawHeaders: rec.rawHeaders, bodyLength: rec.bodyLength, sha256: rec.bodySha256 });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};

export async function startUpstream(
  handler: UpstreamHandler = echoHandler,
  opts: { name?: string; recordBody?: boolean } = {},
): Promise<Upstream> {
  const name = opts.name ?? 'upstream';
  const recordBody = opts.recordBody ?? true;
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer({ keepAliveTimeout: 30_000, requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => {
    const parts: Buffer[] = [];
    const hash = createHash('sha256');
    let resolveSettled!: () => void;
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
    };
    requests.push(rec);
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
    handler(req, res, rec);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
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
  live.add(handle);
  return {
    name,
    port,
    address: `127.0.0.1:${port}`,
    requests,
    server,
    close: async () => {
      live.delete(handle);
      await handle.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw-socket upstream (for upstreams that misbehave)

export interface RawConnection {
  readonly socket: net.Socket;
  /** Everything received on this connection so far. */
  received(): Buffer;
  /** Resolves with the bytes received once a full request head (`\r\n\r\n`) has arrived (bounded). */
  head(timeoutMs?: number): Promise<Buffer>;
}

export interface RawUpstream {
  readonly port: number;
  readonly address: string;
  readonly connections: RawConnection[];
  close(): Promise<void>;
}

export async function startRawUpstream(onConnection: (c: RawConnection) => void): Promise<RawUpstream> {
  const connections: RawConnection[] = [];
  const server = net.createServer((socket) => {
    const chunks: Buffer[] = [];
    const waiters = new Set<() => void>();
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      for (const w of [...waiters]) w();
    });
    socket.on('error', () => undefined);
    const conn: RawConnection = {
      socket,
      received: () => Buffer.concat(chunks),
      head: (timeoutMs = 5000) =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            const all = Buffer.concat(chunks);
            if (all.indexOf('\r\n\r\n') >= 0) {
              clearTimeout(timer);
              waiters.delete(check);
              resolve(all);
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error('raw upstream: no request head within the time limit'));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
    };
    connections.push(conn);
    onConnection(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const handle = {
    close: () =>
      new Promise<void>((r) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => r());
      }),
  };
  live.add(handle);
  return {
    port,
    address: `127.0.0.1:${port}`,
    connections,
    close: async () => {
      live.delete(handle);
      await handle.close();
    },
  };
}

/** A port on 127.0.0.1 where nothing listens (bound then closed). */
export async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

// ---------------------------------------------------------------------------------------------
// Raw-socket client

export interface RawResponse {
  status: number;
  reason: string;
  /** Header lines in order: [name as sent, value], duplicates kept. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** Bytes of the head (status line + headers + CRLFCRLF). */
  headBytes: Buffer;
}

export interface RawResult {
  /** All bytes read from the socket. */
  raw: Buffer;
  /** The first response, when a complete one was read. */
  response: RawResponse | null;
  /** The server closed the connection (FIN or RST). */
  closed: boolean;
  /** The connection ended with an error (e.g. ECONNRESET) rather than a clean FIN. */
  error: string | null;
  /** Nothing decisive happened before the time limit. */
  timedOut: boolean;
}

/** Value of the first header `name` (case-insensitive). */
export function header(r: RawResponse, name: string): string | undefined {
  const n = name.toLowerCase();
  return r.headers.find(([k]) => k.toLowerCase() === n)?.[1];
}

/**
 * Parses one response from `buf` (HTTP/1.x). Returns null while incomplete. `noBody` for the answer
 * to a HEAD request. With neither Content-Length nor chunked, the body runs to `closed`.
 */
export function parseRawResponse(buf: Buffer, noBody = false, closed = false): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const headBytes = buf.subarray(0, end + 4);
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (m === null) throw new Error(`not an HTTP response: ${JSON.stringify(buf.toString('latin1', 0, Math.min(200, buf.length)))}`);
  const status = Number(m[1]);
  const headers: Array<[string, string]> = lines.slice(1).map((l) => {
    const c = l.indexOf(':');
    return [l.slice(0, c), l.slice(c + 1).trim()];
  });
  const get = (n: string): string | undefined => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  const rest = buf.subarray(end + 4);
  const base = { status, reason: m[2] ?? '', headers, headBytes };
  if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ...base, body: Buffer.alloc(0) };
  }
  const te = get('transfer-encoding');
  if (te !== undefined && /chunked/i.test(te)) {
    const body: Buffer[] = [];
    let i = 0;
    for (;;) {
      const le = rest.indexOf('\r\n', i);
      if (le < 0) return null;
      const size = parseInt(rest.toString('latin1', i, le).split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size in response');
      i = le + 2;
      if (size === 0) {
        const tend = rest.indexOf('\r\n\r\n', i - 2);
        if (tend < 0) return null;
        return { ...base, body: Buffer.concat(body) };
      }
      if (rest.length < i + size + 2) return null;
      body.push(rest.subarray(i, i + size));
      i += size + 2;
    }
  }
  const cl = get('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    if (rest.length < n) return null;
    return { ...base, body: rest.subarray(0, n) };
  }
  return closed ? { ...base, body: rest } : null;
}

export interface RawRequestOptions {
  timeoutMs?: number;
  /** The request is HEAD: the response has no body. */
  noBody?: boolean;
  /** Keep reading until the server closes (or the time limit) even after a full response. */
  untilClose?: boolean;
  /** Half-close our side after writing. */
  endAfterWrite?: boolean;
}

/** Sends `bytes` on a fresh connection and reads one response (or the close). Always resolves. */
export function rawRequest(port: number, bytes: Buffer | string | Array<Buffer | string>, opts: RawRequestOptions = {}): Promise<RawResult> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let settled = false;
    const handle = { close: async () => void socket.destroy() };
    live.add(handle);
    const finish = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      live.delete(handle);
      const raw = Buffer.concat(chunks);
      let response: RawResponse | null = null;
      try {
        response = parseRawResponse(raw, opts.noBody ?? false, closed);
      } catch {
        response = null;
      }
      resolve({ raw, response, closed, error, timedOut });
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.on('connect', () => {
      const parts = Array.isArray(bytes) ? bytes : [bytes];
      for (const p of parts) socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      if (opts.endAfterWrite === true) socket.end();
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.untilClose === true) return;
      try {
        if (parseRawResponse(Buffer.concat(chunks), opts.noBody ?? false, false) !== null) finish(false, false);
      } catch {
        finish(false, false);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish(true, false));
  });
}

/** A plain GET with node:http (fresh connection, agent off); resolves with status, raw headers and body. */
export function httpGet(
  url: string,
  opts: { method?: string; headers?: Record<string, string> | string[]; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<{ status: number; statusMessage: string; rawHeaders: string[]; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers as http.OutgoingHttpHeaders, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A persistent raw connection: send exact bytes, read responses one at a time (keep-alive). */
export class RawClient {
  private buf = Buffer.alloc(0);
  private closedFlag = false;
  private errorCode: string | null = null;
  private readonly waiters = new Set<() => void>();
  private readonly handle = { close: async () => void this.socket.destroy() };

  private constructor(readonly socket: net.Socket) {
    live.add(this.handle);
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.errorCode = e.code ?? e.message;
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }
  get error(): string | null {
    return this.errorCode;
  }
  /** Bytes received and not yet consumed by readResponse. */
  get pending(): Buffer {
    return this.buf;
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Reads the next complete response (bounded); consumes exactly its bytes. */
  async readResponse(opts: { noBody?: boolean; timeoutMs?: number } = {}): Promise<RawResponse & { raw: Buffer }> {
    const until = Date.now() + (opts.timeoutMs ?? 5000);
    for (;;) {
      const r = parseRawResponse(this.buf, opts.noBody ?? false, this.closedFlag);
      if (r !== null) {
        const len = responseLength(this.buf, r, opts.noBody ?? false);
        const raw = this.buf.subarray(0, len);
        this.buf = this.buf.subarray(len);
        return { ...r, raw };
      }
      if (this.closedFlag) throw new Error(`connection closed before a complete response: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      if (Date.now() > until) throw new Error(`no complete response in time: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((res) => {
        const t = setTimeout(done, 50);
        function done(): void {
          clearTimeout(t);
          res();
        }
        this.waiters.add(done);
      });
    }
  }

  /** Resolves true when the server closes the connection within `timeoutMs`. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (!this.closedFlag && Date.now() < until) await sleep(10);
    return this.closedFlag;
  }

  close(): void {
    this.socket.destroy();
    live.delete(this.handle);
  }

  private wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }
}

/** Number of bytes one parsed response occupies at the start of `buf`. */
function responseLength(buf: Buffer, r: RawResponse, noBody: boolean): number {
  const headLen = r.headBytes.length;
  if (noBody || r.status === 204 || r.status === 304 || r.status < 200) return headLen;
  const te = header(r, 'transfer-encoding');
  if (te !== undefined && /chunked/i.test(te)) {
    // Walk the chunks again to find the end (including the terminating CRLF after trailers).
    let i = headLen;
    for (;;) {
      const le = buf.indexOf('\r\n', i);
      const size = parseInt(buf.toString('latin1', i, le).split(';')[0]!, 16);
      i = le + 2;
      if (size === 0) return buf.indexOf('\r\n\r\n', i - 2) + 4;
      i += size + 2;
    }
  }
  const cl = header(r, 'content-length');
  if (cl !== undefined) return headLen + Number(cl);
  return buf.length;
}

// Helpers for the admin-API tests: start the built CLI (`dist/src/cli/main.js run`) on a config
// file the test owns (so it can rewrite it and send signals), node:http keep-alive upstreams that
// answer with their name and count their TCP connections, and small clients for the admin API and
// the proxy. Everything binds 127.0.0.1, every wait is bounded, `closeAll()` cleans up.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, renameSync, existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

const live = new Set<{ close(): Promise<unknown> }>();

/** Closes every sidecar, upstream and temp dir these helpers started (afterAll/afterEach). */
export async function closeAll(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.allSettled(all.map((x) => x.close()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value that is not undefined; throws after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** A temp directory removed by closeAll(). */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'outrigger-admin-'));
  live.add({ close: async () => rmSync(dir, { recursive: true, force: true }) });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Sidecar process

export type Config = Record<string, unknown>;

export interface LogEntry {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface Sidecar {
  readonly pid: number;
  readonly child: ChildProcess;
  /** The config file the sidecar runs from (rewrite it to test the file watch). */
  readonly file: string;
  readonly dir: string;
  /** `http://127.0.0.1:ADMINPORT` */
  readonly admin: string;
  /** The admin bearer token (read from the ready line's `admin_token_file`); adminCall sends it. */
  readonly token: string;
  /** The file it was read from (generated into `<dir>/.outrigger/admin.token` unless configured). */
  readonly tokenFile: string;
  /** Port of a listener (default `main`). */
  port(listener?: string): number;
  url(pathAndQuery: string, listener?: string): string;
  entries(): LogEntry[];
  stderr(): string;
  waitForLog(pred: (e: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** Resolves with the exit code (null when killed by a signal); rejects after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<number | null>;
  exited(): boolean;
  /** SIGTERM and wait (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** Write the config file as YAML (default JSON). */
  yaml?: boolean;
  /** Directory for the config file (default: a fresh temp dir). */
  dir?: string;
  readyTimeoutMs?: number;
  env?: Record<string, string>;
}

/** Result of a process that exits before it is ready (e.g. refused at start). */
export interface EarlyExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function configText(cfg: Config, yaml: boolean): string {
  return yaml ? toYaml(cfg) : `${JSON.stringify(cfg, null, 2)}\n`;
}

/** Replaces the config file atomically (write a temp file, rename over), as editors do. */
export function rewriteConfig(sc: Pick<Sidecar, 'file'>, cfg: Config | string, yaml = false): void {
  const text = typeof cfg === 'string' ? cfg : configText(cfg, yaml);
  const tmp = `${sc.file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, sc.file);
}

function spawnCli(file: string, env: Record<string, string> | undefined): ChildProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run "npx tsc -p tsconfig.json" first`);
  return spawn(process.execPath, [CLI, 'run', '-c', file], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI on `cfg` and waits for it to exit (for configs refused at start). */
export async function runUntilExit(cfg: Config, timeoutMs = 15_000): Promise<EarlyExit> {
  const dir = tempDir();
  const file = path.join(dir, 'config.json');
  writeFileSync(file, configText(cfg, false));
  const child = spawnCli(file, undefined);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the CLI did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function startSidecar(cfg: Config, opts: StartOptions = {}): Promise<Sidecar> {
  const dir = opts.dir ?? tempDir();
  const file = path.join(dir, opts.yaml === true ? 'config.yaml' : 'config.json');
  writeFileSync(file, configText(cfg, opts.yaml === true));
  const child = spawnCli(file, opts.env);

  const entries: LogEntry[] = [];
  let stderr = '';
  let partial = '';
  let exitCode: number | null | undefined;
  const exitWaiters: Array<(code: number | null) => void> = [];
  const logWaiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        entries.push(JSON.parse(line) as LogEntry);
      } catch {
        entries.push({ msg: line });
      }
    }
    for (const w of [...logWaiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.on('close', (code, signal) => {
    exitCode = signal !== null ? null : code;
    for (const w of exitWaiters.splice(0)) w(exitCode);
    for (const w of [...logWaiters]) w();
  });

  const dump = (): string => `\nstderr:\n${stderr}\nstdout:\n${entries.map((e) => JSON.stringify(e)).join('\n')}`;
  const waitForLog = (pred: (e: LogEntry) => boolean, timeoutMs = 10_000): Promise<LogEntry> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = entries.find(pred);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (exitCode !== undefined) {
          done();
          reject(new Error(`sidecar exited (code ${String(exitCode)}) before the expected log line${dump()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line${dump()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        logWaiters.delete(check);
      };
      logWaiters.add(check);
      check();
    });
  const exit = (timeoutMs = 15_000): Promise<number | null> => {
    if (exitCode !== undefined) return Promise.resolve(exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar did not exit within ${timeoutMs} ms${dump()}`)), timeoutMs);
      exitWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  };
  const stop = async (): Promise<number | null> => {
    if (exitCode !== undefined) return exitCode;
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.kill('SIGTERM');
    const code = await exit(20_000).catch(() => null);
    clearTimeout(kill);
    return code;
  };
  const handle = { close: stop };
  live.add(handle);

  const ready = await waitForLog((e) => e.msg === 'ready', opts.readyTimeoutMs ?? 20_000);
  const listeners = (ready['listeners'] as Array<{ name: string; address: string }> | undefined) ?? [];
  const ports = new Map(listeners.map((l) => [l.name, Number(l.address.slice(l.address.lastIndexOf(':') + 1))]));
  const adminAddr = String(ready['admin']);
  const tokenFile = String(ready['admin_token_file']);
  const token = readFileSync(tokenFile, 'utf8').trim();
  const port = (name = 'main'): number => {
    const p = ports.get(name);
    if (p === undefined) throw new Error(`no listener ${name} in the ready line: ${JSON.stringify(listeners)}`);
    return p;
  };
  return {
    pid: child.pid!,
    child,
    file,
    dir,
    admin: `http://${adminAddr}`,
    token,
    tokenFile,
    port,
    url: (p, listener) => `http://127.0.0.1:${port(listener)}${p}`,
    entries: () => entries.slice(),
    stderr: () => stderr,
    waitForLog,
    exit,
    exited: () => exitCode !== undefined,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP clients

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One HTTP request on a fresh connection (no agent); bounded. */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface JsonAnswer extends Answer {
  /** Parsed JSON body (null when the answer is not JSON); loosely typed for test-side inspection. */
  json: any;
}

/**
 * An admin call with the sidecar's bearer token (when `sc` has one: pass `{ admin: sc.admin }` to
 * call without). `body` objects are sent as JSON (`application/json`), strings as they are
 * (`application/yaml`); `headers` may override both (an `authorization` or `content-type` given
 * here replaces the default).
 */
export async function adminCall(
  sc: Pick<Sidecar, 'admin'> & { readonly token?: string },
  method: string,
  pathname: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer> {
  const text = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const given = new Set(Object.keys(headers).map((k) => k.toLowerCase()));
  const all: Record<string, string> = {};
  if (sc.token !== undefined && !given.has('authorization')) all['authorization'] = `Bearer ${sc.token}`;
  if (text !== undefined && !given.has('content-type')) all['content-type'] = typeof body === 'object' && !Buffer.isBuffer(body) ? 'application/json' : 'application/yaml';
  Object.assign(all, headers);
  const a = await request(`${sc.admin}${pathname}`, { method, headers: all, ...(text === undefined ? {} : { body: text }) });
  let json: unknown = null;
  if ((a.headers['content-type'] ?? '').includes('json')) json = JSON.parse(a.text);
  return { ...a, json };
}

/** GET through the proxy; the upstreams below answer `<name> <path>`. */
export async function via(sc: Pick<Sidecar, 'url'>, pathAndQuery: string, listener?: string): Promise<Answer> {
  return request(sc.url(pathAndQuery, listener));
}

/** Which upstream answered `path` (its name), checked `n` times; throws unless every answer was 200 from the same upstream. */
export async function routedTo(sc: Pick<Sidecar, 'url'>, pathAndQuery: string, n = 4): Promise<string> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const a = await via(sc, pathAndQuery);
    if (a.status !== 200) throw new Error(`GET ${pathAndQuery} → ${a.status} ${a.text}`);
    names.add(a.text.split(' ')[0]!);
  }
  if (names.size !== 1) throw new Error(`GET ${pathAndQuery} answered by several upstreams: ${[...names].join(', ')}`);
  return [...names][0]!;
}

/** Polls until `path` is answered by `name` every time (e.g. after a reload). */
export async function untilRoutedTo(sc: Pick<Sidecar, 'url'>, pathAndQuery: string, name: string, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => ((await routedTo(sc, pathAndQuery).catch(() => '')) === name ? true : undefined), `${pathAndQuery} → ${name}`, timeoutMs);
}

/** Connects to 127.0.0.1:port: 'connected' or the error code (e.g. ECONNREFUSED). */
export function tryConnect(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Upstreams

export interface Upstream {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  /** TCP connections accepted so far. */
  connections: number;
  requests: number;
  readonly server: http.Server;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  /** Status to answer (default 200). */
  status?: number;
  /** Delay before answering, ms (default 0), or a function giving it per request. */
  delayMs?: number | (() => number);
  /** Answer with `Connection: close` (node then closes the connection after the response). */
  close?: boolean;
  /** Called when a request arrives (before the answer). */
  onRequest?: (req: http.IncomingMessage) => void;
}

/**
 * A keep-alive node:http upstream answering `<name> <path>`. Its keep-alive timeout is long, so
 * an idle pooled connection is never closed by this side during a test: a new TCP connection
 * means the proxy opened one.
 */
export async function startUpstream(name: string, opts: UpstreamOptions = {}): Promise<Upstream> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer({ keepAliveTimeout: 300_000, headersTimeout: 300_000, requestTimeout: 0 }, (req, res) => {
    up.requests++;
    opts.onRequest?.(req);
    req.resume();
    req.on('end', () => {
      const answer = (): void => {
        if (res.destroyed) return;
        const body = `${name} ${req.url ?? ''}`;
        const headers: Record<string, string | number> = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };
        if (opts.close === true) headers['connection'] = 'close';
        res.writeHead(opts.status ?? 200, headers);
        res.end(body);
      };
      const delay = typeof opts.delayMs === 'function' ? opts.delayMs() : (opts.delayMs ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.on('connection', (s: net.Socket) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, s: net.Socket) => s.destroy());
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
  const up: Upstream = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    connections: 0,
    requests: 0,
    server,
    close: async () => {
      live.delete(handle);
      await handle.close();
    },
  };
  return up;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses Prometheus text exposition format 0.0.4 strictly: every line is a HELP/TYPE comment, a
 * blank line, or `name{labels} value`; throws on anything else. Returns the samples.
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const typed = new Map<string, string>();
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m === null) throw new Error(`line ${i + 1}: bad comment: ${line}`);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`line ${i + 1}: bad type ${m[3]}`);
        typed.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (m === null) throw new Error(`line ${i + 1}: not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3] !== undefined && m[3] !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        re.lastIndex = pos;
        const l = re.exec(m[3]);
        if (l === null) throw new Error(`line ${i + 1}: bad labels: ${m[3]}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        pos = re.lastIndex;
      }
    }
    const raw = m[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`line ${i + 1}: bad value ${raw}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(m[1]!) && !typed.has(family)) throw new Error(`line ${i + 1}: sample ${m[1]} has no # TYPE line before it`);
    samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

/** Value of the one sample `name` whose labels include `labels`; undefined when absent. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

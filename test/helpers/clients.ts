// Clients for tests: one bounded node:http request (fresh connection unless an agent is given),
// many of them on a keep-alive agent, the admin API with the sidecar's bearer token, a keep-alive
// load generator (back to back, or paced for a light load), and a TCP connect probe. Agents and
// loads are closed by closeAll().

import http from 'node:http';
import net from 'node:net';
import { expect } from 'vitest';
import { h2connect, h2request } from '../h2/h2_client.js';
import { eventually, sleep, track } from './live.js';

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string> | string[];
  body?: Buffer | string;
  /** Keep-alive agent to send on (default: a fresh connection). */
  agent?: http.Agent;
  timeoutMs?: number;
  /** The client's source address (any of 127.0.0.0/8 on loopback: a client other than 127.0.0.1). */
  localAddress?: string;
}

export interface HttpAnswer {
  status: number;
  statusMessage: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as UTF-8. */
  text: string;
  /** The x-outrigger-error header, when there is one. */
  error: string | undefined;
}

/** Where a request goes: a URL (node normalises its path), or a port on 127.0.0.1 and a path sent byte for byte. */
export type Target = string | { readonly port: number; readonly path: string };

/** One HTTP request; resolves with the whole answer, rejects on a socket error or after `timeoutMs`. */
export function httpGet(target: Target, opts: HttpOptions = {}): Promise<HttpAnswer> {
  const method = opts.method ?? 'GET';
  const url = typeof target === 'string' ? target : `http://127.0.0.1:${target.port}${target.path}`;
  const where: http.RequestOptions = typeof target === 'string' ? {} : { host: '127.0.0.1', port: target.port, path: target.path };
  return new Promise((resolve, reject) => {
    const options: http.RequestOptions = { ...where, method, headers: opts.headers, agent: opts.agent ?? false, localAddress: opts.localAddress };
    const onResponse = (res: http.IncomingMessage): void => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        const e = res.headers['x-outrigger-error'];
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          rawHeaders: res.rawHeaders,
          headers: res.headers,
          body,
          text: body.toString('utf8'),
          error: Array.isArray(e) ? e[0] : e,
        });
      });
      res.on('error', reject);
    };
    const req = typeof target === 'string' ? http.request(target, options, onResponse) : http.request(options, onResponse);
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** httpGet under the names the admin (`request`) and resilience (`send`) tests use. */
export { httpGet as request, httpGet as send };
export type Answer = HttpAnswer;
export type Reply = HttpAnswer;

/** A request to 127.0.0.1:port (e.g. a sidecar's outbound listener); `body` is the text. */
export async function get(port: number, p: string, o: HttpOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const a = await httpGet({ port, path: p }, o);
  return { status: a.status, headers: a.headers, body: a.text };
}

/** A keep-alive agent, destroyed by closeAll() (or destroyAgents()). */
export function keepAlive(maxSockets = 16): http.Agent {
  const a = new http.Agent({ keepAlive: true, maxSockets });
  const untrack = track({
    close: () => {
      a.destroy();
      return Promise.resolve();
    },
  });
  agents.set(a, untrack);
  return a;
}

const agents = new Map<http.Agent, () => void>();

export function destroyAgents(): void {
  for (const [a, untrack] of agents) {
    a.destroy();
    untrack();
  }
  agents.clear();
}

/** `n` requests, at most `concurrency` at a time, on a keep-alive agent; answers in request order. */
export async function sendMany(
  url: (i: number) => string,
  n: number,
  concurrency: number,
  o: { method?: string; headers?: (i: number) => Record<string, string> } = {},
): Promise<HttpAnswer[]> {
  const agent = keepAlive(concurrency);
  const out = new Array<HttpAnswer>(n);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await httpGet(url(i), {
        agent,
        ...(o.method === undefined ? {} : { method: o.method }),
        ...(o.headers === undefined ? {} : { headers: o.headers(i) }),
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  agent.destroy();
  agents.get(agent)?.();
  agents.delete(agent);
  return out;
}

/** Counts of `status/error` pairs, e.g. {"200": 10, "503 overflow": 2}. */
export function tally(replies: readonly Pick<HttpAnswer, 'status' | 'error'>[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of replies) {
    const k = r.error === undefined ? String(r.status) : `${r.status} ${r.error}`;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Admin API and routing

export interface JsonAnswer extends HttpAnswer {
  /** Parsed JSON body (null when the answer is not JSON); loosely typed for test-side inspection. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberate: tests read answers loosely and expect() checks them (see eslint.config.js)
  json: any;
}

/**
 * An admin call with the sidecar's bearer token (when `sc` has one: pass `{ admin: sc.admin }` to
 * call without). `body` objects are sent as JSON (`application/json`), strings as they are
 * (`application/yaml`); `headers` may override both.
 */
export async function adminCall(
  sc: { readonly admin: string; readonly token?: string },
  method: string,
  pathname: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer> {
  const text = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const given = new Set(Object.keys(headers).map((k) => k.toLowerCase()));
  const all: Record<string, string> = {};
  if (sc.token !== undefined && !given.has('authorization')) all['authorization'] = `Bearer ${sc.token}`;
  if (text !== undefined && !given.has('content-type'))
    all['content-type'] = typeof body === 'object' && !Buffer.isBuffer(body) ? 'application/json' : 'application/yaml';
  Object.assign(all, headers);
  const a = await httpGet(`${sc.admin}${pathname}`, { method, headers: all, ...(text === undefined ? {} : { body: text }) });
  const json: unknown = (a.headers['content-type'] ?? '').includes('json') ? JSON.parse(a.text) : null;
  return { ...a, json };
}

/** GET through the proxy. */
export function via(sc: { url(p: string, listener?: string): string }, pathAndQuery: string, listener?: string): Promise<HttpAnswer> {
  return httpGet(sc.url(pathAndQuery, listener));
}

/** Which upstream answered `path` (the first word of the body), checked `n` times; throws unless every answer was 200 from the same one. */
export async function routedTo(sc: { url(p: string): string }, pathAndQuery: string, n = 4): Promise<string> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const a = await httpGet(sc.url(pathAndQuery));
    if (a.status !== 200) throw new Error(`GET ${pathAndQuery} → ${a.status} ${a.text}`);
    names.add(a.text.split(' ')[0]!);
  }
  if (names.size !== 1) throw new Error(`GET ${pathAndQuery} answered by several upstreams: ${[...names].join(', ')}`);
  return [...names][0]!;
}

/** Waits until `path` is answered by `name` every time (e.g. after a reload). */
export async function untilRoutedTo(sc: { url(p: string): string }, pathAndQuery: string, name: string, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => ((await routedTo(sc, pathAndQuery).catch(() => '')) === name ? true : undefined), `${pathAndQuery} → ${name}`, timeoutMs);
}

/** Connects to 127.0.0.1:port: 'connected' or the error code (e.g. ECONNREFUSED). */
export function tryConnect(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const finish = (r: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.once('connect', () => finish('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

// ---------------------------------------------------------------------------------------------
// Load

export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  /** The first failures: `<status> <x-outrigger-error> <body>` or the socket error. */
  readonly failures: string[];
}

export interface Load {
  readonly stats: LoadStats;
  /** Resolves when every loop stopped (after stop() or once `total` requests were sent). */
  readonly done: Promise<LoadStats>;
  stop(): Promise<LoadStats>;
}

export interface LoadOptions {
  /** Keep-alive connections (= concurrent request loops), default 10. */
  readonly connections?: number;
  /** Stop after this many requests in all (default: until stop()). */
  readonly total?: number;
  /** Path of request number i (default `/v1/load/<i>`). */
  readonly path?: (i: number) => string;
  /** What a good answer's body starts with (default `app `). */
  readonly okBody?: string;
  /** A pause after each request of a loop, in ms: a light, paced load (default: back to back). */
  readonly pauseMs?: number;
}

/** Sequential GETs on `connections` keep-alive connections to 127.0.0.1:port; a request fails unless it is a 200 with the app's body. */
export function startLoad(port: number, o: LoadOptions = {}): Load {
  const connections = o.connections ?? 10;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, failures: [] };
  let stopped = false;
  const pathOf = o.path ?? ((i: number) => `/v1/load/${i}`);
  const okBody = o.okBody ?? 'app ';
  const fail = (why: string): void => {
    stats.failed++;
    if (stats.failures.length < 20) stats.failures.push(why);
  };
  const loop = async (): Promise<void> => {
    while (!stopped && (o.total === undefined || stats.sent < o.total)) {
      const i = stats.sent++;
      try {
        const a = await httpGet({ port, path: pathOf(i) }, { agent });
        if (a.status === 200 && a.text.startsWith(okBody)) stats.ok++;
        else fail(`${a.status} ${a.error ?? ''} ${a.text.slice(0, 120)}`);
      } catch (e) {
        fail(`request error ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      if (o.pauseMs !== undefined) await sleep(o.pauseMs);
    }
  };
  const done = Promise.all(Array.from({ length: connections }, loop)).then(() => {
    agent.destroy();
    return stats;
  });
  const stop = async (): Promise<LoadStats> => {
    stopped = true;
    untrack();
    return done;
  };
  const untrack = track({ close: stop });
  return { stats, done, stop };
}

/** Waits (bounded) until the load has made `n` more requests than it had when called. */
export async function moreRequests(load: Load, n: number, timeoutMs = 20_000): Promise<void> {
  const target = load.stats.sent + n;
  await eventually(() => (load.stats.sent >= target ? true : undefined), `${n} more requests under load`, timeoutMs);
}

/** Stops the load and checks that not one of its requests failed; the stats for further checks. */
export async function stopWithoutFailures(load: Load): Promise<LoadStats> {
  const stats = await load.stop();
  expect(stats.failures).toEqual([]);
  expect(stats.failed).toBe(0);
  return stats;
}

export interface BurstAnswer {
  status: number;
  body: string;
}

/**
 * Requests `[method, path, body]` on one HTTP/2 connection (h2/h2_client.ts), all opened in one
 * turn (their HEADERS leave in one write); a stream that fails throws.
 */
export async function h2Burst(port: number, reqs: ReadonlyArray<readonly [string, string, string?]>): Promise<BurstAnswer[]> {
  const session = await h2connect(`http://127.0.0.1:${port}`);
  try {
    const answers = await Promise.all(reqs.map(([method, path, body]) => h2request(session, { ':method': method, ':path': path }, body ?? null)));
    return answers.map((a, i) => {
      if (a.error !== null) throw new Error(`h2Burst: ${reqs[i]![0]} ${reqs[i]![1]}: ${a.error}`);
      return { status: a.status, body: a.body.toString('utf8') };
    });
  } finally {
    session.close();
  }
}

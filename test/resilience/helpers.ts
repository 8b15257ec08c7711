// Helpers for the resilience tests (issue 7): upstreams that fail on purpose and can be switched
// while a test runs (ok, 503, 500, hang, reset before the head, reset mid-body), each counting
// the attempts it saw grouped by x-request-id; a keep-alive client for many requests; /clusters
// lookups. The sidecar process itself comes from test/admin/helpers.ts (it exposes the admin
// address); upstream sockets from test/helpers/sidecar.ts. `closeEverything()` cleans both up.

import http from 'node:http';
import { adminCall, closeAll as closeAdminHelpers, eventually, type Sidecar } from '../admin/helpers.js';
import { closeAll as closeE2eHelpers, deadPort, startUpstream, type ReceivedRequest } from '../helpers/sidecar.js';

export { eventually, deadPort };

export async function closeEverything(): Promise<void> {
  await Promise.allSettled([closeAdminHelpers(), closeE2eHelpers()]);
}

// ---------------------------------------------------------------------------------------------
// Switchable upstream

/**
 * How the upstream answers proxied requests:
 * - `ok`: 200 with body `<name> <path>`;
 * - `503` / `500` / `409`: that status with body `<name> <status>`;
 * - `hang`: never answers (until `release()` or close);
 * - `reset`: reads the request, then destroys the socket without a byte of response;
 * - `reset-mid-body`: sends a 200 head promising 100 bytes, 10 of them, then destroys the socket;
 * - `slow-stream`: a chunked 200 whose chunks come every `streamEveryMs` and never end.
 */
export type Mode = 'ok' | '503' | '500' | '409' | 'hang' | 'reset' | 'reset-mid-body' | 'slow-stream';

export interface FaultyUpstream {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Current behaviour for proxied requests; may be changed at any time. */
  mode: Mode;
  /** Modes for the next attempts, consumed one per attempt before `mode` applies. */
  script: Mode[];
  /** Health-check answers (`/healthz`): 200 when true, 503 when false. */
  healthy: boolean;
  /** Proxied requests seen (health checks excluded), in arrival order. */
  readonly attempts: ReceivedRequest[];
  /** Health checks seen. */
  healthChecks: number;
  /** Requests being held by `hang` right now. */
  readonly hanging: number;
  /** Answers every hung request with 200 now. */
  release(): void;
  /** Attempts per x-request-id. */
  byRequestId(): Map<string, ReceivedRequest[]>;
  readonly meter: RetryMeter;
  close(): Promise<void>;
}

/** Counts retry attempts (an x-request-id seen before, on any upstream sharing the meter) in flight at the upstreams. */
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

export interface FaultyOptions {
  mode?: Mode;
  /** Delay before answering ok/503/500/409, ms. */
  delayMs?: number;
  /** Shared by several upstreams to see retries that move between them. */
  meter?: RetryMeter;
  healthPath?: string;
  streamEveryMs?: number;
}

export async function startFaulty(name: string, opts: FaultyOptions = {}): Promise<FaultyUpstream> {
  const healthPath = opts.healthPath ?? '/healthz';
  const hung = new Set<http.ServerResponse>();
  const attempts: ReceivedRequest[] = [];
  const meter = opts.meter ?? new RetryMeter();
  const answer = (res: http.ServerResponse, status: number, body: string): void => {
    if (res.destroyed || res.headersSent) return;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const up = await startUpstream(
    (req, res, rec) => {
      if (req.headers['user-agent'] === 'outrigger-health-check' || rec.url === healthPath) {
        faulty.healthChecks++;
        void rec.settled.then(() => answer(res, faulty.healthy ? 200 : 503, faulty.healthy ? 'ok' : 'failing'));
        return;
      }
      attempts.push(rec);
      const id = String(req.headers['x-request-id'] ?? '');
      meter.arrived(id, res);
      const mode = faulty.script.shift() ?? faulty.mode;
      const later = (f: () => void): void => {
        if (opts.delayMs === undefined) f();
        else setTimeout(f, opts.delayMs);
      };
      void rec.settled.then(() => {
        switch (mode) {
          case 'ok':
            return later(() => answer(res, 200, `${name} ${rec.url}`));
          case '503':
          case '500':
          case '409':
            return later(() => answer(res, Number(mode), `${name} ${mode}`));
          case 'hang':
            hung.add(res);
            res.on('close', () => hung.delete(res));
            return;
          case 'reset':
            req.socket.destroy();
            return;
          case 'reset-mid-body':
            res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
            res.write('x'.repeat(10), () => setTimeout(() => req.socket.destroy(), 20));
            return;
          case 'slow-stream': {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('first\n');
            const t = setInterval(() => {
              if (res.destroyed) clearInterval(t);
              else res.write('more\n');
            }, opts.streamEveryMs ?? 20);
            res.on('close', () => clearInterval(t));
            return;
          }
        }
      });
    },
    { name },
  );
  const faulty: FaultyUpstream = {
    name,
    address: up.address,
    port: up.port,
    mode: opts.mode ?? 'ok',
    script: [],
    healthy: true,
    attempts,
    healthChecks: 0,
    get hanging() {
      return hung.size;
    },
    release() {
      for (const res of [...hung]) answer(res, 200, `${name} released`);
      hung.clear();
    },
    meter,
    byRequestId() {
      const m = new Map<string, ReceivedRequest[]>();
      for (const a of attempts) {
        const id = String(a.headers['x-request-id'] ?? '');
        const list = m.get(id) ?? [];
        list.push(a);
        m.set(id, list);
      }
      return m;
    },
    close: () => up.close(),
  };
  return faulty;
}

/** Attempts of every upstream, grouped by x-request-id, in arrival order. */
export function attemptsById(ups: readonly FaultyUpstream[]): Map<string, ReceivedRequest[]> {
  const all = ups.flatMap((u) => u.attempts);
  const m = new Map<string, ReceivedRequest[]>();
  for (const a of all) {
    const id = String(a.headers['x-request-id'] ?? '');
    const list = m.get(id) ?? [];
    list.push(a);
    m.set(id, list);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Config

export interface ClusterOptions {
  lb?: 'least_request' | 'round_robin' | 'random';
  retry_budget?: Record<string, unknown>;
  circuit_breaker?: Record<string, unknown>;
  health_check?: Record<string, unknown>;
  outlier_detection?: Record<string, unknown>;
  pool?: Record<string, unknown>;
}

export function cluster(name: string, endpoints: readonly string[], o: ClusterOptions = {}): Record<string, unknown> {
  return { name, lb: o.lb ?? 'round_robin', endpoints: endpoints.map((address) => ({ address })), ...o };
}

/** One listener `main` with these routes; node settings merged in (1 worker, seed 42 by default). */
export function config(
  routes: Array<Record<string, unknown>>,
  clusters: Array<Record<string, unknown>>,
  extra: { node?: Record<string, unknown>; listener?: Record<string, unknown>; listeners?: Array<Record<string, unknown>> } = {},
): Record<string, unknown> {
  return {
    node: { workers: 1, drain_timeout_ms: 1000, random_seed: 42, ...extra.node },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes, ...extra.listener }, ...(extra.listeners ?? [])],
    clusters,
  };
}

// ---------------------------------------------------------------------------------------------
// Client

export interface Reply {
  status: number;
  error: string | undefined;
  text: string;
  headers: http.IncomingHttpHeaders;
}

const agents = new Set<http.Agent>();

/** A keep-alive agent (closed by `destroyAgents`). */
export function keepAlive(maxSockets = 16): http.Agent {
  const a = new http.Agent({ keepAlive: true, maxSockets });
  agents.add(a);
  return a;
}

export function destroyAgents(): void {
  for (const a of agents) a.destroy();
  agents.clear();
}

/** One request (fresh connection unless an agent is given); bounded. */
export function send(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: http.Agent; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers: o.headers, agent: o.agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const h = res.headers['x-outrigger-error'];
        resolve({ status: res.statusCode ?? 0, error: Array.isArray(h) ? h[0] : h, text: Buffer.concat(parts).toString('utf8'), headers: res.headers });
      });
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error(`${o.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** `n` requests, at most `concurrency` at a time, on a keep-alive agent; answers in request order. */
export async function sendMany(
  url: (i: number) => string,
  n: number,
  concurrency: number,
  o: { method?: string; headers?: (i: number) => Record<string, string> } = {},
): Promise<Reply[]> {
  const agent = keepAlive(concurrency);
  const out: Reply[] = new Array<Reply>(n);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await send(url(i), { agent, ...(o.method === undefined ? {} : { method: o.method }), ...(o.headers === undefined ? {} : { headers: o.headers(i) }) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  agent.destroy();
  agents.delete(agent);
  return out;
}

/** Counts of `status/error` pairs, e.g. {"200": 10, "503 overflow": 2}. */
export function tally(replies: readonly Reply[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of replies) {
    const k = r.error === undefined ? String(r.status) : `${r.status} ${r.error}`;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// /clusters

export interface EndpointView {
  address: string;
  healthy: boolean;
  ejected: boolean;
  active: number;
  health_check: { healthy: boolean; consecutive_failures: number; last_checked: string | null; last_error: string | null } | null;
  outlier: { ejected: boolean; ejections_total: number; ejected_until: string | null } | null;
  [k: string]: unknown;
}

export interface ClusterView {
  name: string;
  active: number;
  retries_total: number;
  retry_budget_exhausted_total: number;
  overflow_total: number;
  panicking: boolean;
  endpoints: EndpointView[];
  [k: string]: unknown;
}

export async function clusterView(sc: Pick<Sidecar, 'admin' | 'token'>, name: string): Promise<ClusterView> {
  const a = await adminCall(sc, 'GET', '/clusters');
  if (a.status !== 200) throw new Error(`GET /clusters → ${a.status} ${a.text}`);
  const c = (a.json as { clusters: ClusterView[] }).clusters.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no cluster ${name} in /clusters: ${a.text}`);
  return c;
}

export function endpointView(c: ClusterView, address: string): EndpointView {
  const e = c.endpoints.find((x) => x.address === address);
  if (e === undefined) throw new Error(`no endpoint ${address} in cluster ${c.name}`);
  return e;
}

/** Polls /clusters until `pred` holds for cluster `name`; returns that view. */
export function untilCluster(sc: Pick<Sidecar, 'admin' | 'token'>, name: string, pred: (c: ClusterView) => boolean, what: string, timeoutMs = 10_000): Promise<ClusterView> {
  return eventually(async () => {
    const c = await clusterView(sc, name);
    return pred(c) ? c : undefined;
  }, what, timeoutMs, 25);
}

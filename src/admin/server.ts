// The admin API (DESIGN.md §5) on node:http, main thread only: readiness, config (get, put,
// validate, history, rollback), clusters, stats, Prometheus metrics, certs, drain/shutdown,
// log level, and the dashboard (its page and assets at / and /dashboard/*, which hold no data;
// the series it charts). Safe with no configuration (DESIGN.md §8): every request must name a
// loopback Host (or this server's own address, or a name in admin.hosts; 421 otherwise) and must
// not come from another site (403); everything but /live, /ready, /metrics and the dashboard's
// page and assets needs the bearer token (401; there
// always is one, generated when none is configured; constant-time compare), /metrics too when
// admin.metrics_token_file is set (that token or the admin one); bodies need a config content type
// (415). Configs received here are parsed with limits (body_limits.ts) and held to the API
// policy (api_policy.ts) by the config store.

import type { CounterTotals } from '../stats/counters.js';
import { tcpJson, tcpMetrics } from '../stats/tcp.js';
import { upgradeMetrics, upgradesJson } from '../stats/upgrades.js';
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { checkBodyType, checkHost, checkSameOrigin } from './request_checks.js';
import type { ConfigProblem } from '../config/types.js';
import type { StatsAggregator } from '../stats/aggregate.js';
import type { ClusterView, ListenerView } from '../workers/messages.js';
import type { ApplyOutcome, ConfigInput, ConfigStore } from './config_store.js';
import { DASHBOARD_ASSETS } from './dashboard/assets.js';
import type { SeriesJson } from './sampler.js';

const MAX_BODY_BYTES = 1024 * 1024;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** What the admin server reads from and asks of the rest of the process. */
export interface AdminDeps {
  readonly store: ConfigStore;
  /**
   * Where PUT /config and rollbacks are applied: on a sidecar that follows mesh config, the mesh
   * watcher's local path (the applied mesh version's parts stay in place, as on a file reload);
   * else the store itself.
   */
  readonly configApply?: Pick<ConfigStore, 'apply'>;
  readonly stats: StatsAggregator;
  /** The bearer token every call but /live and /ready needs (/metrics: unless metricsToken is null). */
  readonly token: string;
  /** admin.metrics_token_file's token: GET /metrics needs it or `token`; null = /metrics is open. */
  readonly metricsToken?: string | null;
  /** The address the server is bound to (IP literal, IPv6 without brackets): accepted as Host. */
  readonly boundHost: string;
  /** admin.hosts: more names accepted as Host (lower case, exact, any port). */
  readonly hosts?: readonly string[];
  ready(): boolean;
  /** What a reader of /ready should know although the sidecar serves (e.g. its certificate nears expiry). */
  readyWarnings(): string[];
  /** /ready's `discovery`: each discovered cluster's source, fresh or serving its last-known endpoints (which keeps /ready at 200). */
  readonly discovery?: () => readonly unknown[];
  inspect(): Promise<{ workers: number; clusters: ClusterView[]; listeners: ListenerView[] }>;
  certs(): unknown[];
  /** The dashboard's last 15 minutes per listener, route and cluster (sampler.ts), the samples after `afterMs` only. */
  series(afterMs: number): SeriesJson;
  /** Starts a drain; `exit` = then exit the process (always true today: drain ends in exit). */
  drain(reason: string): void;
  setLogLevel(level: string): void;
  getLogLevel(): string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly deps: AdminDeps) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        const err = e instanceof HttpError ? e : new HttpError(500, e instanceof Error ? e.message : String(e));
        send(res, err.status, { error: err.message, ...err.extra }, err.headers);
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: true }, () => {
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const d = this.deps;
    const badHost = checkHost(req.headers.host, req.socket.localAddress, d.boundHost, d.hosts);
    if (badHost !== null) {
      throw new HttpError(421, `${badHost}: the admin API answers only to localhost, 127.0.0.1, [::1], its own address or a name in admin.hosts`);
    }
    const crossSite = checkSameOrigin(headerValue(req.headers.origin), headerValue(req.headers['sec-fetch-site']), req.headers.host);
    if (crossSite !== null) throw new HttpError(403, crossSite);
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = `${req.method} ${url.pathname}`;
    const access = Object.hasOwn(ROUTES, route) ? ROUTES[route] : undefined;
    if (access === undefined) throw new HttpError(404, `no admin endpoint ${route}`);
    if (access === 'metrics') {
      const metricsToken = d.metricsToken ?? null;
      if (metricsToken !== null) this.authorize(req, [metricsToken, d.token]);
    } else if (access !== 'open') this.authorize(req, [d.token]);
    if (access === 'token+body') {
      const badType = checkBodyType(req.headers['content-type']);
      if (badType !== null) throw new HttpError(415, badType);
    }
    const asset = DASHBOARD_ASSETS.get(url.pathname);
    if (req.method === 'GET' && asset !== undefined) {
      return reply(res, 200, asset.headers, asset.body);
    }
    switch (route) {
      case 'GET /live':
        return send(res, 200, { live: true });
      case 'GET /ready': {
        const ready = d.ready();
        const discovery = d.discovery?.() ?? [];
        return send(res, ready ? 200 : 503, { ready, version: d.store.version, warnings: d.readyWarnings(), ...(discovery.length > 0 ? { discovery } : {}) });
      }
      case 'GET /config':
        return send(res, 200, { version: d.store.version, config: d.store.source });
      case 'PUT /config': {
        const input = await readConfigBody(req);
        return sendOutcome(res, await (d.configApply ?? d.store).apply(input, by(req, 'PUT /config'), 'api'));
      }
      case 'POST /config/validate': {
        const input = await readConfigBody(req);
        const r = await d.store.validate(input);
        return r.ok ? send(res, 200, { valid: true, warnings: r.warnings }) : sendProblems(res, r.problems);
      }
      case 'GET /config/history':
        return send(res, 200, {
          current: d.store.version,
          versions: d.store.history().map((e) => ({ version: e.version, at: e.at, by: e.by, summary: e.summary })),
        });
      case 'GET /config/version': {
        // One version of the history with its config (the dashboard diffs two of them).
        const version = Number(url.searchParams.get('version'));
        const entry = d.store.history().find((e) => e.version === version);
        if (entry === undefined) throw new HttpError(404, `version ${url.searchParams.get('version') ?? '(none)'} is not in the history`);
        return send(res, 200, { version: entry.version, at: entry.at, by: entry.by, summary: entry.summary, config: entry.source });
      }
      case 'POST /config/rollback': {
        const body = await readJson(req);
        const version = (body as { version?: unknown } | null)?.version;
        if (typeof version !== 'number' || !Number.isInteger(version)) throw new HttpError(400, 'body must be {"version": <integer>}');
        const outcome = await d.store.rollback(version, by(req, 'POST /config/rollback'), d.configApply);
        if (outcome === null) throw new HttpError(404, `version ${version} is not in the history`);
        return sendOutcome(res, outcome);
      }
      case 'GET /clusters': {
        const { listeners: _l, ...view } = await d.inspect();
        return send(res, 200, view);
      }
      case 'GET /stats': {
        const { listeners } = await d.inspect();
        return send(res, 200, {
          ...d.stats.toJSON(),
          security: securityJson(d.stats.counters, listeners),
          connections: connectionsJson(d.stats.counters),
          upgrades: upgradesJson(d.stats.counters),
          tcp: tcpJson(d.stats.counters),
          detection: detectionJson(d.stats.counters),
          original_destination: destinationsJson(d.stats.counters),
        });
      }
      case 'GET /metrics': {
        const text = await d.stats.prometheus();
        const body = `${text}${upgradeMetrics(d.stats.counters)}${tcpMetrics(d.stats.counters)}${certificateMetrics(d.certs())}`;
        return reply(res, 200, { 'content-type': d.stats.prometheusContentType }, body);
      }
      case 'GET /certs':
        return send(res, 200, { certs: d.certs() });
      case 'GET /dashboard/series': {
        const after = Number(url.searchParams.get('after') ?? 0);
        const text = JSON.stringify(d.series(Number.isFinite(after) ? after : 0));
        // Compact, unlike the other answers: 15 minutes of a few dozen names indented would be megabytes.
        return reply(res, 200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }, text);
      }
      case 'POST /drain':
      case 'POST /shutdown': {
        send(res, 202, { draining: true });
        d.drain(route);
        return;
      }
      case 'GET /log-level':
        return send(res, 200, { level: d.getLogLevel() });
      case 'PUT /log-level': {
        const body = await readJson(req);
        const level = (body as { level?: unknown } | null)?.level;
        if (typeof level !== 'string' || !LOG_LEVELS.includes(level)) {
          throw new HttpError(400, `body must be {"level": one of ${LOG_LEVELS.join(', ')}}`);
        }
        d.setLogLevel(level);
        return send(res, 200, { level });
      }
      default:
        throw new HttpError(404, `no admin endpoint ${route}`);
    }
  }

  /** Throws 401 unless the request carries one of `tokens` as its bearer token. */
  private authorize(req: http.IncomingMessage, tokens: readonly string[]): void {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7).trim() : '');
    let ok = false;
    for (const t of tokens) {
      const want = Buffer.from(t);
      // Constant time: compare equal-length buffers; the length check itself reveals only the length.
      if (given.length === want.length && timingSafeEqual(given, want)) ok = true;
    }
    if (!ok) throw new HttpError(401, 'missing or wrong bearer token', {}, { 'www-authenticate': 'Bearer realm="outrigger-admin"' });
  }
}

/**
 * Who may call what: `open` (liveness, readiness, the dashboard's page and assets: they hold no
 * data, the page asks for the token and sends it with every call), `metrics` (Prometheus: open,
 * or the metrics token or the admin token when admin.metrics_token_file is set), `token` (everything that shows
 * config, certificates or state, and body-less mutations), `token+body` (calls with a body: also
 * a config content type).
 */
const ROUTES: Readonly<Record<string, 'open' | 'metrics' | 'token' | 'token+body'>> = {
  'GET /live': 'open',
  'GET /ready': 'open',
  'GET /metrics': 'metrics',
  ...Object.fromEntries([...DASHBOARD_ASSETS.keys()].map((p) => [`GET ${p}`, 'open' as const])),
  'GET /config': 'token',
  'PUT /config': 'token+body',
  'POST /config/validate': 'token+body',
  'GET /config/history': 'token',
  'GET /config/version': 'token',
  'POST /config/rollback': 'token+body',
  'GET /clusters': 'token',
  'GET /stats': 'token',
  'GET /certs': 'token',
  'GET /dashboard/series': 'token',
  'POST /drain': 'token',
  'POST /shutdown': 'token',
  'GET /log-level': 'token',
  'PUT /log-level': 'token+body',
};

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Authorization decisions per rule, refused handshakes and dropped underscore headers, per
 * listener (GET /stats), from the monotonic totals (stats/counters.ts): they never go down.
 */
function securityJson(totals: CounterTotals, listeners: readonly ListenerView[]): unknown[] {
  return listeners.map((l) => {
    const listener = l.name;
    const allowed = totals
      .list('outrigger_authz_decisions_total')
      .filter((s) => s.labels['listener'] === listener && s.labels['decision'] === 'allow')
      .sort((a, b) => Number(a.labels['rule']) - Number(b.labels['rule']))
      .map((s) => s.value);
    return {
      listener,
      tls_handshake_failures: totals.value('outrigger_tls_handshake_failures_total', { listener }),
      underscore_headers_dropped: totals.value('outrigger_headers_with_underscores_dropped_total', { listener }),
      authorization:
        l.authz === null
          ? null
          : { allowed_by_rule: allowed, denied: totals.value('outrigger_authz_decisions_total', { listener, rule: '', decision: 'deny' }) },
    };
  });
}

/** Listeners with tcp_fallback: connections by detected protocol and detection timeouts (GET /stats), since start. */
function detectionJson(totals: CounterTotals): unknown[] {
  const rows = new Map<string, { listener: string; by_protocol: Record<string, number>; timeouts: number }>();
  const row = (listener: string): { listener: string; by_protocol: Record<string, number>; timeouts: number } => {
    let r = rows.get(listener);
    if (r === undefined) {
      r = { listener, by_protocol: {}, timeouts: 0 };
      rows.set(listener, r);
    }
    return r;
  };
  for (const s of totals.list('outrigger_detected_connections_total')) row(s.labels['listener'] ?? '').by_protocol[s.labels['protocol'] ?? ''] = s.value;
  for (const s of totals.list('outrigger_detect_timeouts_total')) row(s.labels['listener'] ?? '').timeouts = s.value;
  return [...rows.values()];
}

/** original_destination listeners: connections by where their destination sent them (GET /stats), since start. */
function destinationsJson(totals: CounterTotals): unknown[] {
  const rows = countsPerListener(totals, 'outrigger_original_destination_connections_total', 'kind');
  return [...rows].map(([listener, byKind]) => ({ listener, by_kind: byKind }));
}

/** Connections accepted per listener and worker (node-engine listeners; GET /stats), since start. */
function connectionsJson(totals: CounterTotals): unknown[] {
  const rows = countsPerListener(totals, 'outrigger_listener_connections_accepted_total', 'worker');
  return [...rows].map(([listener, accepted_by_worker]) => ({ listener, accepted_by_worker }));
}

/** A counter's totals per listener, each listener's split by the value of its label `by`. */
function countsPerListener(totals: CounterTotals, counter: string, by: string): Map<string, Record<string, number>> {
  const rows = new Map<string, Record<string, number>>();
  for (const s of totals.list(counter)) {
    const l = s.labels['listener'] ?? '';
    const row = rows.get(l) ?? {};
    row[s.labels[by] ?? ''] = s.value;
    rows.set(l, row);
  }
  return rows;
}

/**
 * Seconds until this sidecar's certificate expires (alert on it: a signer outage lets it run
 * down), and when it was last issued / renewed / reloaded successfully (unix seconds). The
 * failure counters travel with the other counters (stats/counters.ts).
 */
function certificateMetrics(certs: unknown[]): string {
  const rows = certs.filter(
    (c): c is { identity: string; source: string; expires_in_s: number; last_success?: string | null } =>
      typeof (c as { expires_in_s?: unknown }).expires_in_s === 'number',
  );
  if (rows.length === 0) return '';
  const esc = (v: string): string => v.replace(/["\\\n]/g, '_');
  let out =
    "# HELP outrigger_certificate_expiry_seconds Seconds until this sidecar's certificate expires (negative: expired).\n# TYPE outrigger_certificate_expiry_seconds gauge\n";
  for (const c of rows) out += `outrigger_certificate_expiry_seconds{identity="${esc(String(c.identity))}"} ${c.expires_in_s}\n`;
  const renewed = rows.filter((c) => typeof c.last_success === 'string');
  if (renewed.length > 0) {
    out +=
      "# HELP outrigger_certificate_last_renewal_timestamp_seconds Unix time of the last successful issue or renewal (source signer, ca) or reload (files) of this sidecar's certificate.\n# TYPE outrigger_certificate_last_renewal_timestamp_seconds gauge\n";
    for (const c of renewed)
      out += `outrigger_certificate_last_renewal_timestamp_seconds{source="${esc(String(c.source))}"} ${Math.floor(Date.parse(c.last_success as string) / 1000)}\n`;
  }
  return out;
}

function by(req: http.IncomingMessage, what: string): string {
  return `${what} from ${req.socket.remoteAddress ?? 'unknown'}`;
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2);
  reply(res, status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }, text);
}

/** What a request body still unread when its answer is ready may send before the connection is cut (read and dropped meanwhile). */
const MAX_DISCARDED_BYTES = 16 * MAX_BODY_BYTES;

/**
 * Every answer of the admin API: written once the request's body has been read to its end (and
 * dropped, when no endpoint read it: a 401, 415 or 413 comes before or instead of reading it).
 * node:http closes the connection as soon as an answer is written when the client sent
 * `Connection: close` (node:http's own client does without an agent), and a client still writing
 * its body then met a reset and lost the answer (EPIPE after ~2.9 MB of an 8 MiB body; test/admin/api).
 * This is nginx's lingering close, done before the answer. A body declared beyond
 * MAX_DISCARDED_BYTES is answered at once, with `Connection: close`; one that grows beyond it
 * while it is dropped is cut, unanswered.
 */
function reply(res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: string | Buffer): void {
  const write = (): void => {
    res.writeHead(status, headers);
    res.end(body);
  };
  const req = res.req;
  if (req.complete || req.destroyed) return write();
  if (Number(req.headers['content-length'] ?? 0) > MAX_DISCARDED_BYTES) {
    res.setHeader('connection', 'close');
    return write();
  }
  let n = 0;
  const onData = (chunk: Buffer): void => {
    n += chunk.length;
    if (n <= MAX_DISCARDED_BYTES) return;
    done();
    req.destroy();
  };
  const onEnd = (): void => {
    done();
    write();
  };
  const done = (): void => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', done);
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', done);
  req.resume();
}

function sendProblems(res: http.ServerResponse, problems: readonly ConfigProblem[]): void {
  send(res, 400, { error: 'invalid config', problems });
}

function sendOutcome(res: http.ServerResponse, o: ApplyOutcome): void {
  if (o.ok) {
    send(res, 200, { version: o.version, summary: o.summary, warnings: o.warnings, restart_required: o.restartRequired });
  } else if (o.kind === 'invalid') {
    sendProblems(res, o.problems);
  } else if (o.kind === 'port_in_use') {
    send(res, 409, { error: 'a port of the config is held by another process; the previous config stays in force', detail: o.error });
  } else {
    send(res, 500, { error: 'apply failed; the previous config stays in force', detail: o.error });
  }
}

/** The request body as text, at most MAX_BODY_BYTES (beyond: 413, once the rest is read and dropped: reply()). */
function readBody(req: http.IncomingMessage): Promise<string> {
  const tooLarge = new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return Promise.reject(tooLarge);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const onData = (chunk: Buffer): void => {
      n += chunk.length;
      if (n <= MAX_BODY_BYTES) return void parts.push(chunk);
      req.off('data', onData);
      req.pause();
      reject(tooLarge);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** A config body: YAML or JSON text (the config parser reads both and reports positions). */
async function readConfigBody(req: http.IncomingMessage): Promise<ConfigInput> {
  const text = await readBody(req);
  if (text.trim() === '') throw new HttpError(400, 'empty body: send the config as YAML or JSON');
  return { text };
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const msg = (e as Error).message;
    // Node's JSON.parse names a position for most errors, but not for a truncated body.
    const where = /position \d+/.test(msg) ? '' : msg.includes('end of JSON input') ? ` (at position ${text.length})` : '';
    throw new HttpError(400, `malformed JSON: ${msg}${where}`);
  }
}

// Compiles a validated, defaulted config (schema.ts output) into the frozen Snapshot of
// types.ts that workers run, and the AdminSpec the main thread uses. Pure: no I/O, no globals;
// the result is plain data (structured-clone safe), deeply frozen.
import { deepFreeze } from './freeze.js';
import { formatHostPort, parseHostPort } from './address.js';
import { anchorRegex, grpcPath } from './fields.js';
import { GRPC_RETRY_ON } from './future.js';
import { listenerPlacement } from './placement.js';
import type { RawAdmin, RawCluster, RawConfig, RawListener, RawRoute, RawTracing } from './schema.js';
import type {
  TlsSourceSpec,
  FaultSpec,
  RateLimitSpec,
  RetrySpec,
  ClusterSpec,
  DiscoverySpec,
  EndpointSpec,
  HeaderMatchSpec,
  ListenerSpec,
  RouteActionSpec,
  RouteMatchSpec,
  RouteSpec,
  Snapshot,
  TracingSpec,
  PoolSpec,
} from './types.js';

export interface CompileOptions {
  /** Version number stamped on the snapshot. */
  version: number;
  /** What `node.workers: auto` resolves to (os.availableParallelism()). */
  availableParallelism: number;
  /** Allow `test_crash` routes (OUTRIGGER_ENABLE_TEST_HOOKS=1, read by the CLI). */
  enableTestHooks: boolean;
  /** The worker count of a running sidecar (a reload cannot change it): per-worker shares are computed with it. */
  fixedWorkers?: number;
}

/** The admin server's settings; not part of the snapshot (changes apply at the next start). */
export interface AdminSpec {
  /** As written, e.g. `127.0.0.1:15000`. */
  address: string;
  /** IP literal, IPv6 without brackets. */
  host: string;
  port: number;
  /** Bearer token file (read trimmed); null = mutating calls need no token. */
  tokenFile: string | null;
  /** Extra Host names the admin API answers to (lower case). */
  hosts: readonly string[];
  /** Bearer token file that GET /metrics needs (null: /metrics is open). */
  metricsTokenFile: string | null;
  /** How many previous config versions GET /config/history keeps. */
  historyLimit: number;
}

/** Raw config → frozen snapshot. The input must have passed the schema and the cross checks. */
export function compileSnapshot(cfg: RawConfig, opts: CompileOptions): Snapshot {
  const workers = opts.fixedWorkers ?? resolveWorkers(cfg.node.workers, opts.availableParallelism);
  const services = serviceAddresses(cfg.clusters);
  const snapshot: Snapshot = {
    version: opts.version,
    node: {
      workers,
      identity: cfg.node.identity ?? null,
      drainTimeoutMs: cfg.node.drain_timeout_ms,
      randomSeed: cfg.node.random_seed ?? null,
      workerStallMs: cfg.node.worker_stall_ms,
    },
    tls: compileTlsSource(cfg.tls),
    listeners: cfg.listeners.map((l) => compileListener(l, opts, workers, cfg.node.error_detail, services)),
    clusters: cfg.clusters.map((c) => compileCluster(c, workers)),
    tracing: cfg.tracing === undefined ? null : compileTracing(cfg.tracing),
  };
  return deepFreeze(snapshot);
}

/** `tracing`: a collector URL without a path gets the OTLP/HTTP traces path. */
function compileTracing(t: RawTracing): TracingSpec {
  const url = new URL(t.otlp_endpoint);
  if (url.pathname === '/') url.pathname = '/v1/traces';
  return {
    otlpEndpoint: url.href,
    sampleRate: t.sample_rate,
    parentBased: t.parent_based,
    w3c: t.propagation.includes('w3c'),
    b3: t.propagation.includes('b3'),
    serviceName: t.service_name,
    maxQueuedSpans: t.max_queued_spans,
    exportTimeoutMs: t.export_timeout_ms,
  };
}

/** `node.workers` as a number (`auto` = the machine's parallelism). */
export function resolveWorkers(workers: 'auto' | number, availableParallelism: number): number {
  return workers === 'auto' ? Math.max(1, Math.floor(availableParallelism)) : workers;
}

export function compileAdmin(admin: RawAdmin): AdminSpec {
  const hp = mustParse(admin.address, true);
  return deepFreeze({
    address: admin.address,
    host: hp.host,
    port: hp.port,
    tokenFile: admin.token_file ?? null,
    hosts: admin.hosts.map((h) => h.toLowerCase()),
    metricsTokenFile: admin.metrics_token_file ?? null,
    historyLimit: admin.history_limit,
  });
}

/**
 * The engine of a listener that names none, plaintext or TLS (README: "Listener engines"):
 * outrigger's strict HTTP/1.1 server — as strict and transparent as Node's llhttp, about the CPU
 * per request of uWS, and the only one whose TLS listeners scale with workers (measured).
 */
export const DEFAULT_ENGINE = 'strict';

/** `listeners[].tcp.idle_timeout_ms` when a tcp listener has no `tcp` section (1 h, as for WebSocket). */
const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

/**
 * `listeners[].tcp_fallback.detect_timeout_ms` by default: 1 s, long enough for a client that
 * speaks first, short for a server-speaks-first protocol (Linkerd's 10 s stall is a known complaint).
 */
const DEFAULT_DETECT_TIMEOUT_MS = 1000;

/** Every cluster's service addresses, normalised (`localhost` → 127.0.0.1, IPv6 bracketed), to the cluster's name (checks.ts refused two owners). */
function serviceAddresses(clusters: readonly RawCluster[]): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const c of clusters) for (const a of c.addresses) out[formatHostPort(mustParse(a, false))] = c.name;
  return out;
}

function compileListener(
  l: RawListener,
  opts: CompileOptions,
  workers: number,
  errorDetail: 'minimal' | 'full',
  services: Readonly<Record<string, string>>,
): ListenerSpec {
  const hp = mustParse(l.address, true);
  const tls = l.tls === undefined || l.tls.mode === 'disabled' ? null : l.tls.mode;
  // uWS cannot serve TLS listeners here (checks.ts refuses engine: uws with tls).
  const engine = l.engine ?? DEFAULT_ENGINE;
  // Each worker that serves the listener enforces its share of the limits.
  const servedBy = listenerPlacement({ name: l.name, engine, tls }, workers).length;
  return {
    name: l.name,
    host: hp.host,
    port: hp.port,
    maxRequestHeadersBytes: l.max_request_headers_bytes,
    xForwardedFor: l.x_forwarded_for,
    engine,
    // uws has no HTTP/2 (checks.ts refuses asking for it); every other engine serves both by default.
    protocol: l.protocol ?? (engine === 'uws' ? 'http1' : 'auto'),
    tcp: l.protocol === 'tcp' ? { cluster: l.cluster!, idleTimeoutMs: l.tcp?.idle_timeout_ms ?? DEFAULT_TCP_IDLE_TIMEOUT_MS } : null,
    tcpFallback:
      l.tcp_fallback === undefined
        ? null
        : {
            cluster: l.tcp_fallback.cluster,
            idleTimeoutMs: l.tcp_fallback.idle_timeout_ms,
            detectTimeoutMs: l.tcp_fallback.detect_timeout_ms ?? DEFAULT_DETECT_TIMEOUT_MS,
            opaquePorts: [...new Set(l.tcp_fallback.opaque_ports)],
          },
    h2MaxConcurrentStreams: l.http2.max_concurrent_streams,
    headersWithUnderscores: l.headers_with_underscores,
    errorDetail: errorDetail === 'full',
    timeouts: {
      headersMs: l.timeouts.headers_ms,
      bodyIdleMs: l.timeouts.body_idle_ms,
      handshakeMs: l.timeouts.handshake_ms,
      keepaliveIdleMs: l.timeouts.keepalive_idle_ms,
    },
    maxConnections: l.max_connections ?? null,
    routes: (l.routes ?? []).map((r, i) => compileRoute(r, `${l.name}#${i}`, opts, servedBy)),
    rateLimit: compileRateLimit(l.rate_limit, servedBy),
    accessLog: l.access_log === undefined ? null : { path: l.access_log.path, format: l.access_log.format },
    tls,
    authorization:
      l.authorization === undefined || l.authorization.length === 0
        ? null
        : l.authorization.map((r) => ({
            from: r.from ?? null,
            paths: r.paths ?? (r.grpc === undefined ? null : r.grpc.map((t) => (t.method === undefined ? `${grpcPath(t)}*` : grpcPath(t)))),
            methods: r.methods === undefined ? null : r.methods.map((m) => m.toUpperCase()),
          })),
    originalDestination: l.original_destination === true ? { outboundPolicy: l.outbound_policy ?? 'allow_any', services } : null,
  };
}

function compileTlsSource(t: RawConfig['tls']): TlsSourceSpec | null {
  if (t === undefined) return null;
  const trust = {
    federation: t.federation.map((f) => ({ trustDomain: f.trust_domain, bundle: f.bundle })),
    allowInsecureKeyPermissions: t.allow_insecure_key_permissions,
  };
  if (t.ca !== undefined) return { mode: 'ca', dir: t.ca.dir, ttlHours: t.ca.ttl_hours, keyType: t.ca.key_type, ...trust };
  if (t.signer !== undefined) {
    const sg = t.signer;
    return {
      mode: 'signer',
      address: sg.address,
      caBundle: sg.ca_bundle,
      tokenFile: sg.token_file,
      signerIdentity: sg.identity ?? null,
      ttlHours: sg.ttl_hours,
      keyType: sg.key_type,
      ...trust,
    };
  }
  return { mode: 'files', trustBundle: t.trust_bundle!, cert: t.cert!, key: t.key!, ...trust };
}

/** A sidecar-wide token bucket split evenly among the workers (each enforces its share). */
function compileRateLimit(r: RawRoute['rate_limit'], workers: number): RateLimitSpec | null {
  if (r === undefined) return null;
  const burst = r.burst ?? Math.max(1, Math.ceil(r.requests_per_second));
  return { tokensPerSecond: r.requests_per_second / workers, burst: Math.max(1, Math.ceil(burst / workers)) };
}

function compileRetries(r: RawRoute['retries']): RetrySpec | null {
  if (r === undefined || r.attempts === 0) return null;
  const on = new Set(r.on.map(String));
  const statuses = [...on].filter((x) => /^\d{3}$/.test(x)).map(Number);
  return {
    attempts: r.attempts,
    onConnectFailure: on.has('connect-failure') || on.has('gateway-error') || on.has('5xx'),
    onReset: on.has('reset') || on.has('5xx'),
    on5xx: on.has('5xx'),
    onGatewayError: on.has('gateway-error'),
    onRetriable4xx: on.has('retriable-4xx'),
    statuses,
    grpcStatuses: Object.entries(GRPC_RETRY_ON)
      .filter(([name]) => on.has(name))
      .map(([, code]) => code),
    perTryTimeoutMs: r.per_try_timeout_ms,
    backoffBaseMs: r.backoff_base_ms,
    backoffMaxMs: Math.max(r.backoff_base_ms, r.backoff_max_ms),
    allowNonIdempotent: r.allow_non_idempotent,
    maxBodyBytes: r.max_body_bytes,
  };
}

function compileFault(f: RawRoute['fault']): FaultSpec | null {
  if (f === undefined) return null;
  return {
    delayPercent: f.delay?.percent ?? 0,
    delayMs: f.delay?.duration_ms ?? 0,
    abortPercent: f.abort?.percent ?? 0,
    abortStatus: f.abort?.status ?? 503,
  };
}

function compileRoute(r: RawRoute, defaultName: string, opts: CompileOptions, workers: number): RouteSpec {
  return {
    name: r.name ?? defaultName,
    match: compileMatch(r.match),
    action: compileAction(r),
    timeoutMs: r.timeout_ms,
    testCrash: r.test_crash && opts.enableTestHooks,
    testStall: r.test_stall && opts.enableTestHooks,
    testThrow: r.test_throw && opts.enableTestHooks,
    maxStreamDurationMs: r.max_stream_duration_ms,
    retries: compileRetries(r.retries),
    fault: compileFault(r.fault),
    rateLimit: compileRateLimit(r.rate_limit, workers),
    websocket: r.upgrades.includes('websocket') ? { idleTimeoutMs: r.websocket.idle_timeout_ms } : null,
  };
}

function compileMatch(m: RawRoute['match']): RouteMatchSpec {
  const host = m.host === undefined ? null : m.host.toLowerCase();
  const methods = m.methods === undefined ? null : [...new Set(m.methods.map((x) => x.toUpperCase()))];
  const headers: HeaderMatchSpec[] = Object.entries(m.headers).map(([name, v]): HeaderMatchSpec => {
    const spec: HeaderMatchSpec = { name: name.toLowerCase(), exact: null, regex: null, present: null };
    if (typeof v === 'string') return { ...spec, exact: v };
    if ('exact' in v) return { ...spec, exact: v.exact };
    if ('regex' in v) return { ...spec, regex: anchorRegex(v.regex) };
    return { ...spec, present: v.present };
  });
  const g = m.grpc;
  return {
    host: host === '*' ? null : host,
    // `grpc` comes without a path (checks.ts): it names one method's exact path, or the prefix of all of a service's.
    path: g?.method !== undefined ? grpcPath(g) : (m.path ?? null),
    pathPrefix: g !== undefined && g.method === undefined ? grpcPath(g) : (m.path_prefix ?? null),
    pathRegex: m.path_regex === undefined ? null : anchorRegex(m.path_regex),
    grpc: g !== undefined,
    methods,
    headers,
  };
}

function compileAction(r: RawRoute): RouteActionSpec {
  if (r.split !== undefined) {
    const split = r.split.map((s) => ({ cluster: s.cluster, weight: s.weight }));
    return { kind: 'split', split, totalWeight: split.reduce((sum, s) => sum + s.weight, 0) };
  }
  if (r.cluster === undefined) throw new Error('compileAction: route has neither cluster nor split (checks skipped?)');
  return { kind: 'cluster', cluster: r.cluster };
}

function compileCluster(c: RawCluster, workers: number): ClusterSpec {
  const maxPending = c.circuit_breaker.max_pending;
  return {
    name: c.name,
    lb: c.lb,
    endpoints: c.endpoints.map((e): EndpointSpec => {
      const hp = mustParse(e.address, false);
      return { address: e.address, host: hp.host, port: hp.port, weight: e.weight };
    }),
    pool: {
      connectionsPerWorker: c.pool.connections_per_worker,
      idleTimeoutMs: c.pool.idle_timeout_ms,
      connectTimeoutMs: c.pool.connect_timeout_ms,
      keepaliveIntervalMs: c.pool.keepalive_interval_ms,
      pipelineDepth: c.pool.pipeline_depth,
      pipelinePlaintext: pipelinePlaintext(c),
      maxPending: maxPending === 0 ? 0 : Math.ceil(maxPending / workers),
    },
    protocol: c.protocol,
    maxRequests: Math.ceil(c.circuit_breaker.max_requests / workers),
    retryBudget: {
      percent: c.retry_budget?.percent ?? 20,
      minConcurrent: Math.ceil((c.retry_budget?.min_concurrent ?? 3) / workers),
      minPerSecond: (c.retry_budget?.min_retries_per_second ?? 10) / workers,
    },
    healthCheck:
      c.health_check === undefined
        ? null
        : {
            // The schema leaves `path` out exactly when `grpc` or `tcp` is given: a gRPC check calls Health/Check, a TCP one requests nothing.
            path: c.health_check.path ?? (c.health_check.tcp !== undefined ? '' : '/grpc.health.v1.Health/Check'),
            grpc: c.health_check.grpc === undefined ? null : { service: c.health_check.grpc.service },
            tcp: c.health_check.tcp !== undefined,
            intervalMs: c.health_check.interval_ms,
            timeoutMs: c.health_check.timeout_ms,
            unhealthyThreshold: c.health_check.unhealthy_threshold,
            healthyThreshold: c.health_check.healthy_threshold,
          },
    outlier:
      c.outlier_detection === undefined
        ? null
        : {
            consecutive5xx: c.outlier_detection.consecutive_5xx,
            consecutiveGatewayFailure: c.outlier_detection.consecutive_gateway_failure,
            intervalMs: c.outlier_detection.interval_ms,
            baseEjectionMs: c.outlier_detection.base_ejection_ms,
            maxEjectionPercent: c.outlier_detection.max_ejection_percent,
          },
    tls: c.tls === undefined || c.tls.mode === 'disabled' ? null : { identities: c.tls.identities ?? (c.tls.identity !== undefined ? [c.tls.identity] : []) },
    discovery: compileDiscovery(c.discovery),
  };
}

/** pool.pipeline_plaintext as the pool reads it; the pool applies it to plaintext connections only (pool.ts). */
function pipelinePlaintext(c: RawCluster): PoolSpec['pipelinePlaintext'] {
  const p = c.pool.pipeline_plaintext;
  return p === true ? 'on' : p === false ? 'off' : 'loopback';
}

function compileDiscovery(d: RawCluster['discovery']): DiscoverySpec | null {
  if (d?.dns !== undefined) {
    const { name, type, port, refresh_ms, resolvers } = d.dns;
    return { kind: 'dns', name, type, port: port ?? null, refreshMs: refresh_ms, resolvers: resolvers ?? [] };
  }
  if (d?.etcd !== undefined) return { kind: 'etcd', service: d.etcd.service };
  return null;
}

function mustParse(address: string, allowPortZero: boolean): { host: string; port: number } {
  const r = parseHostPort(address, allowPortZero);
  if (!r.ok) throw new Error(`compile: invalid address passed the schema: ${r.message}`);
  return r.value;
}

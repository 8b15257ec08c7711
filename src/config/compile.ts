// Compiles a validated, defaulted config (schema.ts output) into the frozen Snapshot of
// types.ts that workers run, and the AdminSpec the main thread uses. Pure: no I/O, no globals;
// the result is plain data (structured-clone safe), deeply frozen.
import { parseHostPort } from './address.js';
import { anchorRegex } from './fields.js';
import type { RawAdmin, RawCluster, RawConfig, RawListener, RawRoute } from './schema.js';
import type {
  ClusterSpec,
  EndpointSpec,
  HeaderMatchSpec,
  ListenerSpec,
  RouteActionSpec,
  RouteMatchSpec,
  RouteSpec,
  Snapshot,
} from './types.js';

export interface CompileOptions {
  /** Version number stamped on the snapshot. */
  version: number;
  /** What `node.workers: auto` resolves to (os.availableParallelism()). */
  availableParallelism: number;
  /** Allow `test_crash` routes (OUTRIGGER_ENABLE_TEST_HOOKS=1, read by the CLI). */
  enableTestHooks: boolean;
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
  /** How many previous config versions GET /config/history keeps. */
  historyLimit: number;
}

/** Raw config → frozen snapshot. The input must have passed the schema and the cross checks. */
export function compileSnapshot(cfg: RawConfig, opts: CompileOptions): Snapshot {
  const workers = cfg.node.workers === 'auto' ? Math.max(1, Math.floor(opts.availableParallelism)) : cfg.node.workers;
  const snapshot: Snapshot = {
    version: opts.version,
    node: { workers, identity: cfg.node.identity ?? null, drainTimeoutMs: cfg.node.drain_timeout_ms },
    listeners: cfg.listeners.map((l) => compileListener(l, opts)),
    clusters: cfg.clusters.map((c) => compileCluster(c, workers)),
  };
  return deepFreeze(snapshot);
}

export function compileAdmin(admin: RawAdmin): AdminSpec {
  const hp = mustParse(admin.address, true);
  return deepFreeze({
    address: admin.address,
    host: hp.host,
    port: hp.port,
    tokenFile: admin.token_file ?? null,
    historyLimit: admin.history_limit,
  });
}

function compileListener(l: RawListener, opts: CompileOptions): ListenerSpec {
  const hp = mustParse(l.address, true);
  return {
    name: l.name,
    host: hp.host,
    port: hp.port,
    maxRequestHeadersBytes: l.max_request_headers_bytes,
    routes: l.routes.map((r, i) => compileRoute(r, `${l.name}#${i}`, opts)),
  };
}

function compileRoute(r: RawRoute, defaultName: string, opts: CompileOptions): RouteSpec {
  return {
    name: r.name ?? defaultName,
    match: compileMatch(r.match),
    action: compileAction(r),
    timeoutMs: r.timeout_ms,
    testCrash: r.test_crash && opts.enableTestHooks,
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
  return {
    host: host === '*' ? null : host,
    path: m.path ?? null,
    pathPrefix: m.path_prefix ?? null,
    pathRegex: m.path_regex === undefined ? null : anchorRegex(m.path_regex),
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
      maxPending: maxPending === 0 ? 0 : Math.ceil(maxPending / workers),
    },
  };
}

function mustParse(address: string, allowPortZero: boolean): { host: string; port: number } {
  const r = parseHostPort(address, allowPortZero);
  if (!r.ok) throw new Error(`compile: invalid address passed the schema: ${r.message}`);
  return r.value;
}

/** Freeze an object graph of plain data (objects and arrays) in place. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// The compiled, frozen configuration snapshot that the main thread posts to every worker.
// Plain data only (structured-clone safe: no functions, no class instances): workers build
// their matchers and pools from it once per version. Every name here is already defaulted,
// normalised (header names lower-cased, methods upper-cased) and cross-checked.

export type LbPolicy = 'least_request' | 'round_robin' | 'random';

export interface Snapshot {
  readonly version: number;
  readonly node: NodeSpec;
  readonly listeners: readonly ListenerSpec[];
  readonly clusters: readonly ClusterSpec[];
}

export interface NodeSpec {
  /** Resolved worker count (`auto` already turned into os.availableParallelism()). */
  readonly workers: number;
  readonly identity: string | null;
  /** How long a drain (SIGTERM, POST /drain) waits for in-flight requests, ms. */
  readonly drainTimeoutMs: number;
}

export interface ListenerSpec {
  readonly name: string;
  /** IP literal to bind (`127.0.0.1`, `0.0.0.0`, `::1`). */
  readonly host: string;
  /** Port; 0 only before the supervisor resolves it to a concrete free port. */
  readonly port: number;
  /** Whole request head (request line + headers) larger than this → 431. */
  readonly maxRequestHeadersBytes: number;
  readonly routes: readonly RouteSpec[];
}

export interface HeaderMatchSpec {
  /** Lower-cased header name. */
  readonly name: string;
  /** Exactly one of exact / regex / present is set. */
  readonly exact: string | null;
  readonly regex: string | null;
  readonly present: boolean | null;
}

export interface RouteMatchSpec {
  /** Lower-cased host without port; `*.example.com` matches any sub-domain. null = any. */
  readonly host: string | null;
  /** At most one of path / pathPrefix / pathRegex is set; none = any path. */
  readonly path: string | null;
  readonly pathPrefix: string | null;
  readonly pathRegex: string | null;
  /** Upper-cased methods; null = any. */
  readonly methods: readonly string[] | null;
  readonly headers: readonly HeaderMatchSpec[];
}

export interface WeightedClusterSpec {
  readonly cluster: string;
  readonly weight: number;
}

export type RouteActionSpec =
  | { readonly kind: 'cluster'; readonly cluster: string }
  | { readonly kind: 'split'; readonly split: readonly WeightedClusterSpec[]; readonly totalWeight: number };

export interface RouteSpec {
  /** Name given in config, or `<listener>#<index>`. */
  readonly name: string;
  readonly match: RouteMatchSpec;
  readonly action: RouteActionSpec;
  /** Whole-request timeout (first byte of request → last byte of response head), ms; 0 = none. */
  readonly timeoutMs: number;
  /** Test hook: a request on this route crashes the worker. Only compiled when test hooks are enabled. */
  readonly testCrash: boolean;
}

export interface EndpointSpec {
  /** `host:port` as written (IPv6 as `[::1]:80`), the endpoint's identity across reloads. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

export interface PoolSpec {
  /** Upper bound of open connections per endpoint per worker. */
  readonly connectionsPerWorker: number;
  /** An idle pooled connection is closed after this long, ms. */
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Requests waiting for a free connection, per cluster per worker (circuit_breaker.max_pending ÷ workers, rounded up); 0 = fail fast. */
  readonly maxPending: number;
}

export interface ClusterSpec {
  readonly name: string;
  readonly lb: LbPolicy;
  readonly endpoints: readonly EndpointSpec[];
  readonly pool: PoolSpec;
}

/** One problem in a config: a path like `listeners[0].routes[2].cluster`, a message, a line when the file has one. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly line: number | null;
}

/** A warning (a known section whose feature is not built yet, for example). */
export type ConfigWarning = ConfigProblem;

// The compiled, frozen configuration snapshot that the main thread posts to every worker.
// Plain data only (structured-clone safe: no functions, no class instances): workers build
// their matchers and pools from it once per version. Every name here is already defaulted,
// normalised (header names lower-cased, methods upper-cased) and cross-checked.

export type LbPolicy = 'least_request' | 'round_robin' | 'random';

export interface Snapshot {
  readonly version: number;
  readonly node: NodeSpec;
  /** This sidecar's identity material source (top-level `tls`); null = none configured. Read by the main thread only. */
  readonly tls: TlsSourceSpec | null;
  readonly listeners: readonly ListenerSpec[];
  readonly clusters: readonly ClusterSpec[];
  /** Distributed tracing (top-level `tracing`); null = off. */
  readonly tracing: TracingSpec | null;
}

/** Distributed tracing (src/tracing/): how spans are sampled, propagated and exported. */
export interface TracingSpec {
  /** OTLP/HTTP traces URL (`/v1/traces` appended when the URL has no path). */
  readonly otlpEndpoint: string;
  /** Probability (0..1) that a request starting a trace here is recorded. */
  readonly sampleRate: number;
  /** A request that carries a trace context follows its caller's sampled flag. */
  readonly parentBased: boolean;
  /** Header formats written upstream (both are always read): W3C traceparent, B3 single `b3`. */
  readonly w3c: boolean;
  readonly b3: boolean;
  /** OTLP resource attribute service.name. */
  readonly serviceName: string;
  /** Spans the main thread holds for export; beyond, the oldest are dropped (counted). */
  readonly maxQueuedSpans: number;
  /** One export POST's deadline. */
  readonly exportTimeoutMs: number;
}

export interface NodeSpec {
  /** Resolved worker count (`auto` already turned into os.availableParallelism()). */
  readonly workers: number;
  readonly identity: string | null;
  /** How long a drain (SIGTERM, POST /drain) waits for in-flight requests, ms. */
  readonly drainTimeoutMs: number;
  /** Seed for load balancing, splits and fault injection (reproducible tests); null = Math.random. */
  readonly randomSeed: number | null;
  /** A worker whose event loop has not answered for this long is restarted (watchdog). */
  readonly workerStallMs: number;
}

/** Where our certificate comes from: files (re-read when they change), the embedded CA, or a signer. */
export type TlsSourceSpec = TlsSourceKind & TlsTrustSpec;

export type TlsSourceKind =
  | { readonly mode: 'files'; readonly trustBundle: string; readonly cert: string; readonly key: string }
  | { readonly mode: 'ca'; readonly dir: string; readonly ttlHours: number; readonly keyType: 'ec-p256' | 'rsa-2048' }
  | {
      /** `outrigger ca serve` signs CSRs for our own key; the root key stays with it. */
      readonly mode: 'signer';
      /** `host:port` of the signer. */
      readonly address: string;
      /** PEM roots that sign the signer's certificate. */
      readonly caBundle: string;
      /** The bootstrap token (first certificate, or when ours has expired). */
      readonly tokenFile: string;
      /** The SPIFFE ID the signer must present; null = spiffe://<our trust domain>/outrigger/signer. */
      readonly signerIdentity: string | null;
      readonly ttlHours: number;
      readonly keyType: 'ec-p256' | 'rsa-2048';
    };

/** What this sidecar trusts beyond its own trust domain, and how strict it is with secret files. */
export interface TlsTrustSpec {
  /**
   * Roots of other trust domains (`tls.federation`), each trusted for its own trust domain only;
   * the sidecar's own bundle (files, CA or signer) vouches only for node.identity's trust domain.
   */
  readonly federation: readonly FederatedBundleSpec[];
  /** Accept private key and token files that group or others may access (default false: refused at start). */
  readonly allowInsecureKeyPermissions: boolean;
}

export interface FederatedBundleSpec {
  readonly trustDomain: string;
  /** PEM file of that trust domain's roots (relative to the config file's directory). */
  readonly bundle: string;
}

/** A token bucket, already divided among workers (each worker enforces its share). */
export interface RateLimitSpec {
  /** Tokens per second for this worker. */
  readonly tokensPerSecond: number;
  /** Bucket size for this worker. */
  readonly burst: number;
}

export interface AccessLogSpec {
  /** `stdout` or a file path. */
  readonly path: string;
  readonly format: 'json' | 'text';
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
  readonly rateLimit: RateLimitSpec | null;
  readonly accessLog: AccessLogSpec | null;
  /**
   * `append`: add the client's address to x-forwarded-for (costs a getpeername() syscall per
   * request in this uWS build); `off`: leave the header as the client sent it (Envoy's sidecar
   * default, use_remote_address: false).
   */
  readonly xForwardedFor: 'append' | 'off';
  /**
   * The HTTP/1 server engine: `uws` (uWebSockets.js, plaintext only: the cheapest, but its parser
   * refuses HTTP/1.0, extension methods, pipelining and >~50 header lines) or `node` (Node's
   * llhttp through node:http/https: strict, transparent, the engine of TLS listeners unless they
   * say `strict`) or `strict` (outrigger's own strict HTTP/1.1 server on net/tls sockets,
   * src/dataplane/h1/: plaintext or TLS).
   */
  readonly engine: 'uws' | 'node' | 'strict';
  /**
   * Client-side protocol: `http1`; `http2` (h2c with prior knowledge on plaintext, ALPN `h2` on
   * TLS); `auto` (the connection preface or ALPN decides). uws serves http1 only. `tcp`: no
   * HTTP at all, each connection's bytes go to `tcp.cluster` (routes are empty, engine unused).
   */
  readonly protocol: 'http1' | 'http2' | 'auto' | 'tcp';
  /** protocol tcp: where connections go and when an idle one closes; null on HTTP listeners. */
  readonly tcp: TcpListenerSpec | null;
  /**
   * protocol auto with `tcp_fallback`: where connections that are not HTTP go (detect.ts); null
   * = no detection beyond the HTTP/2 preface or ALPN.
   */
  readonly tcpFallback: TcpFallbackSpec | null;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly h2MaxConcurrentStreams: number;
  /** Request header names with `_`: dropped (default, counted), refused with 400, or forwarded. */
  readonly headersWithUnderscores: 'drop' | 'reject' | 'allow';
  /** Client-side timeouts (node engine; uWS's are fixed, see docs/config.md). */
  readonly timeouts: ListenerTimeoutsSpec;
  /** Open client connections per worker; null = no limit. */
  readonly maxConnections: number | null;
  /** node.error_detail: full — local replies carry the detailed message (endpoint, parser message, peer). */
  readonly errorDetail: boolean;
  /** TLS termination: `mtls` (client certificate required and verified), `tls` (server-only), null = plaintext (uWS). */
  readonly tls: 'mtls' | 'tls' | null;
  /** Authorization rules (deny unless one allows); null = every authenticated peer is allowed. */
  readonly authorization: readonly AuthzRuleSpec[] | null;
  /** `original_destination: true`: intercepted connections are routed by where they were addressed; null = off. */
  readonly originalDestination: OriginalDestinationSpec | null;
}

/**
 * Routing by original destination (SO_ORIGINAL_DST). On a plaintext (outbound) listener: a
 * connection addressed to a service address goes to the cluster owning it, any other one by
 * `outboundPolicy`. On a tls (inbound) listener: to the local app at 127.0.0.1:<original port>.
 */
export interface OriginalDestinationSpec {
  /** Outbound: `allow_any` passes unknown destinations through unchanged; `registry_only` refuses them. */
  readonly outboundPolicy: 'allow_any' | 'registry_only';
  /** Service address (`ip:port`, IPv6 as `[::1]:80`) → the name of the cluster that owns it (`clusters[].addresses`). */
  readonly services: Readonly<Record<string, string>>;
}

export interface TcpListenerSpec {
  readonly cluster: string;
  /** No byte in either direction for this long closes both sides; 0 = never. */
  readonly idleTimeoutMs: number;
}

export interface TcpFallbackSpec extends TcpListenerSpec {
  /** Plaintext listeners: no byte within this long makes a connection opaque TCP (server-speaks-first protocols). */
  readonly detectTimeoutMs: number;
  /** Plaintext listeners: destination ports whose connections skip detection (opaque at once). */
  readonly opaquePorts: readonly number[];
}

export interface ListenerTimeoutsSpec {
  /** From a request's first byte to the end of its head (slow headers → 408, closed). */
  readonly headersMs: number;
  /** No byte in either direction while a request is in progress → the connection is closed. */
  readonly bodyIdleMs: number;
  /** TCP accept → TLS handshake done (TLS listeners). */
  readonly handshakeMs: number;
  /** An idle keep-alive connection between requests is closed after this. */
  readonly keepaliveIdleMs: number;
}

/** One allow rule; a null field allows anything. */
export interface AuthzRuleSpec {
  /** SPIFFE IDs, exact or ending in `/*` (prefix). */
  readonly from: readonly string[] | null;
  /** Exact paths, or prefixes ending in `*` (a rule's `grpc` entries compile to these: `/<service>/<method>`, `/<service>/*`). */
  readonly paths: readonly string[] | null;
  /** Upper-cased methods. */
  readonly methods: readonly string[] | null;
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
  /**
   * Only gRPC requests (content-type `application/grpc` or `application/grpc+<format>`): set by
   * `match.grpc`, which also set `path` (`/<service>/<method>`) or `pathPrefix` (`/<service>/`).
   */
  readonly grpc: boolean;
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
  /** Test hook: a request on this route blocks its worker's event loop (watchdog tests). */
  readonly testStall: boolean;
  /** Test hook: handling a request on this route throws a TypeError (the 500 internal_error rescue). */
  readonly testThrow: boolean;
  /** Whole exchange (start → last response byte) limit, ms; 0 = none. */
  readonly maxStreamDurationMs: number;
  readonly retries: RetrySpec | null;
  readonly fault: FaultSpec | null;
  readonly rateLimit: RateLimitSpec | null;
  /** WebSocket upgrades on this route (`upgrades: [websocket]`, the default), or null when refused (`upgrades: []`). */
  readonly websocket: WebSocketSpec | null;
}

export interface WebSocketSpec {
  /** An upgraded connection idle (no byte either way) this long is closed, ms; 0 = never. */
  readonly idleTimeoutMs: number;
}

export interface RetrySpec {
  /** Retries after the first try (Envoy's num_retries). */
  readonly attempts: number;
  readonly onConnectFailure: boolean;
  readonly onReset: boolean;
  readonly on5xx: boolean;
  /** 502, 503, 504 (and connect failures). */
  readonly onGatewayError: boolean;
  /** 409. */
  readonly onRetriable4xx: boolean;
  /** Specific statuses to retry on. */
  readonly statuses: readonly number[];
  /**
   * grpc-status codes to retry a gRPC call on (`unavailable` = 14, ...), when a trailers-only
   * response carries them: the call is retried whatever its method (POST), like gRPC's own retries.
   */
  readonly grpcStatuses: readonly number[];
  /** Each try's own timeout (until the response head), ms; 0 = only the route timeout. */
  readonly perTryTimeoutMs: number;
  /** Exponential backoff with full jitter: base × 2^n, capped at max. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Retry non-idempotent methods (POST, PATCH, ...) too. */
  readonly allowNonIdempotent: boolean;
  /** Request bodies up to this size are buffered so they can be replayed; larger ones are not retried. */
  readonly maxBodyBytes: number;
}

export interface FaultSpec {
  readonly delayPercent: number;
  readonly delayMs: number;
  readonly abortPercent: number;
  readonly abortStatus: number;
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
  /** HTTP/2: a PING every this many ms on an idle session; unanswered for as long, the session is closed (0 = none). */
  readonly keepaliveIntervalMs: number;
  /**
   * mTLS HTTP/1.1: requests in flight on one connection to an outrigger sidecar that selects
   * pipelining (ALPN, net/alpn.ts); 1 = one at a time, pipelining not offered.
   */
  readonly pipelineDepth: number;
  /**
   * Plaintext HTTP/1.1 (an app): GET and HEAD requests without a body are pipelined, up to
   * pipelineDepth in flight per connection; any other request goes alone on an idle connection.
   * `loopback` (the default): only to endpoints on 127.0.0.0/8 or ::1, the app beside the sidecar.
   * Applies to plaintext HTTP/1.1 connections only: over tls the hop negotiates its own (pool.ts).
   */
  readonly pipelinePlaintext: 'on' | 'loopback' | 'off';
  /** Requests waiting for a free connection, per cluster per worker (circuit_breaker.max_pending ÷ workers, rounded up); 0 = fail fast. */
  readonly maxPending: number;
}

export interface ClusterSpec {
  readonly name: string;
  readonly lb: LbPolicy;
  readonly endpoints: readonly EndpointSpec[];
  readonly pool: PoolSpec;
  /** Protocol to the endpoints: HTTP/1.1, or HTTP/2 (h2c with prior knowledge; ALPN `h2` with `tls`). */
  readonly protocol: 'http1' | 'http2';
  /** Active requests per worker before 503 overflow (circuit_breaker.max_requests ÷ workers, rounded up). */
  readonly maxRequests: number;
  readonly retryBudget: RetryBudgetSpec;
  readonly healthCheck: HealthCheckSpec | null;
  readonly outlier: OutlierSpec | null;
  /** mTLS to the endpoints: the SPIFFE IDs (or `/*` patterns) the server must present; null = plaintext. */
  readonly tls: { readonly identities: readonly string[] } | null;
  /** Where the endpoints come from at run time (then `endpoints` is empty here: the main thread's discovery manager fills them in); null = the static list. */
  readonly discovery: DiscoverySpec | null;
}

/** Cluster `discovery`: a DNS name, or the sidecars registered in etcd for a service. */
export type DiscoverySpec = DnsDiscoverySpec | { readonly kind: 'etcd'; readonly service: string };

export interface DnsDiscoverySpec {
  readonly kind: 'dns';
  readonly name: string;
  readonly type: 'A' | 'AAAA' | 'SRV';
  /** A and AAAA: the endpoints' port; null for SRV (each record has its own). */
  readonly port: number | null;
  /** The longest time between lookups; a shorter record TTL wins. */
  readonly refreshMs: number;
  /** `host:port` of the DNS servers to ask; empty = the system's. */
  readonly resolvers: readonly string[];
}

/** Per worker: a retry may start while retries in flight < max(minConcurrent, percent% of active requests)
 *  and retries in the last 10 s < percent% of requests in the last 10 s + minPerSecond × 10. */
export interface RetryBudgetSpec {
  readonly percent: number;
  readonly minConcurrent: number;
  readonly minPerSecond: number;
}

/** Active health checks, run once per sidecar on the main thread. */
export interface HealthCheckSpec {
  /** What the check requests: the GET's path, or the gRPC call path `/grpc.health.v1.Health/Check`. */
  readonly path: string;
  /** `http2` clusters: check with the gRPC health-checking protocol for this service ("" = the whole server); null = a GET of `path`. */
  readonly grpc: { readonly service: string } | null;
  /** A TCP connect (mTLS handshake on a `tls` cluster) is the whole check (`path` is then ''). */
  readonly tcp: boolean;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

/** Passive outlier detection, aggregated across workers on the main thread. */
export interface OutlierSpec {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
}

/** One problem in a config: a path like `listeners[0].routes[2].cluster`, a message, a line when the file has one. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly line: number | null;
}

/** A warning (a known section whose feature is not built yet, for example). */
export type ConfigWarning = ConfigProblem;

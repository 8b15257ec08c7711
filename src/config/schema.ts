// The zod schema of the whole config format (DESIGN.md §4, reference in docs/config.md): shapes,
// ranges and defaults, strict objects (an unknown key is a problem). Cross-field rules (unknown
// clusters, duplicates, one-of) live in checks.ts; not-built sections are shaped in future.ts.
import { z } from 'zod';
import {
  adminHostField,
  bindAddressField,
  endpointAddressField,
  grpcTargetSchema,
  headerNameField,
  headerValueField,
  matchHostField,
  methodField,
  ms,
  nameField,
  pathField,
  regexField,
  spiffeIdField,
} from './fields.js';
import {
  accessLogSchema,
  authorizationSchema,
  clusterTlsSchema,
  discoverySchema,
  faultSchema,
  healthCheckSchema,
  listenerTlsSchema,
  outlierDetectionSchema,
  rateLimitSchema,
  retriesSchema,
  retryBudgetSchema,
  tlsIdentitySchema,
} from './future.js';
import { meshDiscoverySchema, serviceRegistrationSchema } from './etcd.js';

export const nodeSchema = z.strictObject({
  identity: spiffeIdField.optional(),
  workers: z.union([z.literal('auto'), z.int().min(1).max(1024)], { error: 'must be "auto" or an integer 1-1024' }).default('auto'),
  drain_timeout_ms: ms().default(10_000),
  error_detail: z.enum(['minimal', 'full']).default('minimal'),
  worker_stall_ms: ms(100).default(5_000),
  random_seed: z.int().min(0).max(4_294_967_295).optional(),
  /** What this sidecar registers in etcd (top-level discovery.etcd), under a lease it keeps alive. */
  service: serviceRegistrationSchema.optional(),
});

export const adminSchema = z.strictObject({
  address: bindAddressField.default('127.0.0.1:15000'),
  token_file: z.string().min(1).optional(),
  /** Host names (besides loopback names and the admin's own address) the admin API answers to: exact, case-insensitive, any port. */
  hosts: z.array(adminHostField).default([]),
  /** When set, GET /metrics needs `Authorization: Bearer <this token>` (the admin token works too). */
  metrics_token_file: z.string().min(1).optional(),
  /** Where the generated admin token lives (default `<config dir>/.outrigger`). */
  state_dir: z.string().min(1).optional(),
  /** Directories that paths in a config sent through the admin API must stay in (default: the config file's directory and state_dir). */
  allowed_dirs: z.array(z.string().min(1)).min(1).optional(),
  /** Let PUT /config add or change listeners on non-loopback addresses. */
  allow_remote_listeners: z.boolean().default(false),
  history_limit: z.int().min(1).max(1000).default(20),
});

export const headerMatchSchema = z.union(
  [headerValueField, z.strictObject({ exact: headerValueField }), z.strictObject({ regex: regexField }), z.strictObject({ present: z.boolean() })],
  { error: 'must be a string, {exact: string}, {regex: string} or {present: boolean}' },
);

export const matchSchema = z.strictObject({
  host: matchHostField.optional(),
  path: pathField.optional(),
  path_prefix: pathField.optional(),
  path_regex: regexField.optional(),
  /** gRPC calls to a service (or one method): the path `/<service>/<method>` plus a gRPC content-type. */
  grpc: grpcTargetSchema.optional(),
  methods: z.array(methodField).min(1).optional(),
  headers: z.record(headerNameField, headerMatchSchema).default({}),
});

export const splitEntrySchema = z.strictObject({
  cluster: nameField,
  weight: z.int().min(0).max(1_000_000),
});

export const routeSchema = z.strictObject({
  name: nameField.optional(),
  match: matchSchema.prefault({}),
  cluster: nameField.optional(),
  split: z.array(splitEntrySchema).min(1).optional(),
  timeout_ms: ms().default(15_000),
  max_stream_duration_ms: ms().default(0),
  test_crash: z.boolean().default(false),
  test_stall: z.boolean().default(false),
  test_throw: z.boolean().default(false),
  retries: retriesSchema.optional(),
  fault: faultSchema.optional(),
  rate_limit: rateLimitSchema.optional(),
  /** HTTP/1.1 Upgrade protocols tunnelled on this route (`[]`: an upgrade request is refused with 403). */
  upgrades: z.array(z.enum(['websocket'])).default(['websocket']),
  websocket: z
    .strictObject({
      /** An upgraded connection with no byte in either direction for this long is closed; 0 = never. */
      idle_timeout_ms: ms().default(3_600_000),
    })
    .prefault({}),
});

export const listenerSchema = z.strictObject({
  name: nameField,
  address: bindAddressField,
  max_request_headers_bytes: z.int().min(1024).max(1_048_576).default(65_536),
  x_forwarded_for: z.enum(['append', 'off']).default('append'),
  engine: z.enum(['uws', 'node', 'strict']).optional(),
  /**
   * Client-side protocol: `auto` (default; `http1` on engine uws) serves HTTP/1.1 and HTTP/2 (preface / ALPN), `http1` or `http2` only one;
   * `tcp` forwards each connection's bytes to `cluster` (no routes, no engine).
   */
  protocol: z.enum(['http1', 'http2', 'auto', 'tcp']).optional(),
  /** protocol tcp: the cluster every connection goes to. */
  cluster: nameField.optional(),
  tcp: z
    .strictObject({
      /** A connection with no byte in either direction for this long is closed (both sides); 0 = never. */
      idle_timeout_ms: ms().default(3_600_000),
    })
    .optional(),
  /**
   * protocol auto: full protocol detection. What is neither HTTP (nor, on a tls listener, an
   * `outrigger-tcp/<port>` ALPN connection's HTTP) goes to `cluster` as opaque TCP (detect.ts).
   */
  tcp_fallback: z
    .strictObject({
      cluster: nameField,
      /** Plaintext listeners: how long to wait for the first bytes before a silent connection is opaque TCP. */
      detect_timeout_ms: ms(1).optional(),
      /** As tcp.idle_timeout_ms, for the connections that fall back to TCP. */
      idle_timeout_ms: ms().default(3_600_000),
      /**
       * Plaintext listeners: connections to these ports (the original destination's under
       * interception, else the listener's own) skip detection: opaque at once, no byte awaited
       * (server-speaks-first protocols: MySQL 3306, SMTP 25...).
       */
      opaque_ports: z.array(z.int().min(1).max(65535)).default([]),
    })
    .optional(),
  http2: z
    .strictObject({
      max_concurrent_streams: z.int().min(1).max(2_147_483_647).default(100),
    })
    .prefault({}),
  headers_with_underscores: z.enum(['drop', 'reject', 'allow']).default('drop'),
  timeouts: z
    .strictObject({
      headers_ms: ms(1).default(10_000),
      body_idle_ms: ms(1).default(60_000),
      handshake_ms: ms(1).default(10_000),
      keepalive_idle_ms: ms(1).default(60_000),
    })
    .default({ headers_ms: 10_000, body_idle_ms: 60_000, handshake_ms: 10_000, keepalive_idle_ms: 60_000 }),
  max_connections: z.int().min(1).max(1_000_000).optional(),
  /**
   * Interception (iptables REDIRECT): route each connection by its original destination
   * (SO_ORIGINAL_DST). Outbound: to the cluster that owns that address (`clusters[].addresses`),
   * else by `outbound_policy`; inbound (tls: mtls): to the local app at 127.0.0.1:<original port>.
   */
  original_destination: z.boolean().optional(),
  /** original_destination, outbound: what an address no cluster owns gets (Istio's ALLOW_ANY / REGISTRY_ONLY). */
  outbound_policy: z.enum(['allow_any', 'registry_only']).optional(),
  /** Required unless protocol is tcp (checks.ts). */
  routes: z.array(routeSchema).min(1).optional(),
  tls: listenerTlsSchema.optional(),
  authorization: authorizationSchema.optional(),
  rate_limit: rateLimitSchema.optional(),
  access_log: accessLogSchema.optional(),
});

export const endpointSchema = z.strictObject({
  address: endpointAddressField,
  weight: z.int().min(1).max(1000).default(1),
});

export const poolSchema = z.strictObject({
  connections_per_worker: z.int().min(1).max(10_000).default(64),
  idle_timeout_ms: ms(1).default(60_000),
  connect_timeout_ms: ms(1).default(5000),
  keepalive_interval_ms: ms(0).default(30_000),
  pipeline_depth: z.int().min(1).max(128).default(16),
  pipeline_plaintext: z.union([z.boolean(), z.literal('loopback')]).default('loopback'),
});

export const circuitBreakerSchema = z.strictObject({
  max_requests: z.int().min(1).default(1024),
  max_pending: z.int().min(0).default(1024),
});

export const clusterSchema = z
  .strictObject({
    name: nameField,
    lb: z.enum(['least_request', 'round_robin', 'random']).default('least_request'),
    endpoints: z.array(endpointSchema).default([]),
    /** Service addresses (`ip:port`, a virtual IP as in Kubernetes Services) this cluster owns: intercepted connections to them come here. */
    addresses: z.array(endpointAddressField).default([]),
    discovery: discoverySchema.optional(),
    connect_timeout_ms: ms(1).optional(),
    protocol: z.enum(['http1', 'http2']).default('http1'),
    pool: poolSchema.prefault({}),
    circuit_breaker: circuitBreakerSchema.prefault({}),
    tls: clusterTlsSchema.optional(),
    retry_budget: retryBudgetSchema.optional(),
    health_check: healthCheckSchema.optional(),
    outlier_detection: outlierDetectionSchema.optional(),
  })
  // `connect_timeout_ms` is shorthand for `pool.connect_timeout_ms` (checks.ts refuses two different
  // values): fold it into the pool so the defaulted output validates again as it is.
  .transform(({ connect_timeout_ms, ...c }) => (connect_timeout_ms === undefined ? c : { ...c, pool: { ...c.pool, connect_timeout_ms } }));

/** An http(s) URL (an OTLP/HTTP collector). */
const httpUrlField = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
  { error: 'must be an http:// or https:// URL' },
);

export const tracingSchema = z.strictObject({
  otlp_endpoint: httpUrlField,
  sample_rate: z.number().min(0).max(1).default(1),
  parent_based: z.boolean().default(true),
  propagation: z
    .array(z.enum(['w3c', 'b3']))
    .min(1)
    .default(['w3c']),
  service_name: z.string().min(1).max(256).default('outrigger'),
  max_queued_spans: z.int().min(1).max(1_000_000).default(2048),
  export_timeout_ms: ms(1).default(10_000),
});

export const configSchema = z.strictObject({
  node: nodeSchema.prefault({}),
  admin: adminSchema.prefault({}),
  tls: tlsIdentitySchema.optional(),
  listeners: z.array(listenerSchema).default([]),
  clusters: z.array(clusterSchema).default([]),
  tracing: tracingSchema.optional(),
  /** The etcd cluster for registrations (node.service, clusters' discovery.etcd) and the mesh-wide config. */
  discovery: meshDiscoverySchema.optional(),
});

/** A validated config with every default applied (what `LoadResult.source` holds). */
export type RawConfig = z.output<typeof configSchema>;
export type RawListener = z.output<typeof listenerSchema>;
export type RawRoute = z.output<typeof routeSchema>;
export type RawCluster = z.output<typeof clusterSchema>;
export type RawAdmin = z.output<typeof adminSchema>;
export type RawTracing = z.output<typeof tracingSchema>;

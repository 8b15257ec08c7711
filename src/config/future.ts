// Schemas of the mesh sections beyond routing, all built: identity and TLS (this sidecar's
// certificate from files, the embedded CA or a signer; listener and cluster TLS), authorization,
// resilience (retries, fault, rate_limit, retry_budget, health_check, outlier_detection) and the
// access log, cluster `discovery` (DNS or etcd); retries' `refused-stream` is accepted and never
// occurs with HTTP/1.1 upstreams.
import { z } from 'zod';
import { endpointAddressField, grpcTargetSchema, identityPatternField, methodField, ms, pathField, spiffeIdField } from './fields.js';

const percent = z.number().min(0).max(100);

/** How this sidecar's own leaf certificates are made, whether the embedded CA or a signer issues them. */
const leafCertificateFields = {
  ttl_hours: z
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
  key_type: z.enum(['ec-p256', 'rsa-2048']).default('ec-p256'),
};

/** Top-level `tls`: this sidecar's identity material, files or an embedded CA. */
export const tlsIdentitySchema = z
  .strictObject({
    trust_bundle: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    ca: z
      .strictObject({
        dir: z.string().min(1),
        ...leafCertificateFields,
      })
      .optional(),
    /** `outrigger ca serve` signs CSRs for a key made here: this sidecar never holds the root key. */
    signer: z
      .strictObject({
        address: endpointAddressField,
        ca_bundle: z.string().min(1),
        token_file: z.string().min(1),
        identity: spiffeIdField.optional(),
        ...leafCertificateFields,
      })
      .optional(),
    /** Other trust domains' roots, each trusted for its own trust domain only. */
    federation: z
      .array(
        z.strictObject({
          trust_domain: z.string().regex(/^[a-z0-9._-]{1,255}$/, { error: 'must be a trust domain name: 1-255 of a-z, 0-9, ".", "-", "_"' }),
          bundle: z.string().min(1),
        }),
      )
      .default([]),
    /** Accept key and token files that group or others may access (refused at start otherwise). */
    allow_insecure_key_permissions: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    const seen = new Map<string, number>();
    v.federation.forEach((f, i) => {
      const prev = seen.get(f.trust_domain);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['federation', i, 'trust_domain'],
          message: `trust domain "${f.trust_domain}" is already federated (federation[${prev}]); put all its roots in one bundle`,
        });
      else seen.set(f.trust_domain, i);
    });
    if ((v.cert === undefined) !== (v.key === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give cert and key together' });
    }
    const given = [
      v.cert !== undefined || v.trust_bundle !== undefined ? 'cert/key' : null,
      v.ca !== undefined ? 'ca' : null,
      v.signer !== undefined ? 'signer' : null,
    ].filter((x) => x !== null);
    if (given.length > 1) {
      ctx.addIssue({ code: 'custom', message: `give one of cert/key, ca or signer, not ${given.join(' and ')}` });
    } else if (v.ca === undefined && v.signer === undefined && (v.cert === undefined || v.trust_bundle === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give trust_bundle, cert and key, or ca: {dir}, or signer: {address, ca_bundle, token_file}' });
    }
  });

/** Listener `tls`: how this listener terminates TLS. */
export const listenerTlsSchema = z.strictObject({
  mode: z.enum(['mtls', 'tls', 'disabled']).default('mtls'),
});

/** Cluster `tls`: how this cluster's upstreams are reached, and whom they must be. */
export const clusterTlsSchema = z
  .strictObject({
    mode: z.enum(['mtls', 'disabled']).default('mtls'),
    /** The SPIFFE ID the upstream must present. */
    identity: spiffeIdField.optional(),
    // Or several accepted IDs / identity patterns (whole-segment "*" wildcards; identity_pattern.ts).
    identities: z.array(identityPatternField).min(1).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.mode === 'mtls' && v.identity === undefined && v.identities === undefined) {
      ctx.addIssue({ code: 'custom', message: 'mtls needs identity (or identities): the SPIFFE ID the upstream must present' });
    }
    if (v.identity !== undefined && v.identities !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'give identity or identities, not both' });
    }
  });

/** Listener `authorization`: deny unless a rule allows; an omitted field allows any. */
export const authorizationSchema = z.array(
  z
    .strictObject({
      from: z.array(identityPatternField).min(1).optional(),
      paths: z
        .array(z.string().regex(/^\/\S*$/, { error: 'must start with "/" (a trailing "*" is allowed)' }))
        .min(1)
        .optional(),
      /** gRPC services and methods: shorthand for the paths `/<service>/<method>` (or `/<service>/*`). */
      grpc: z.array(grpcTargetSchema).min(1).optional(),
      methods: z.array(methodField).min(1).optional(),
    })
    .superRefine((v, ctx) => {
      // Both would have to match the one request path: a rule that says either is clearer.
      if (v.paths !== undefined && v.grpc !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['grpc'], message: 'give paths or grpc in one rule, not both (grpc names the paths /<service>/<method>)' });
      }
    }),
);

/** Envoy's gRPC retry conditions (`x-envoy-retry-grpc-on`) and the grpc-status each one names. */
export const GRPC_RETRY_ON = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
} as const;

const RETRY_ON = [
  'connect-failure',
  'reset',
  '5xx',
  'gateway-error',
  'retriable-4xx',
  'refused-stream',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;
const RETRY_ON_ERROR = `must be one of ${RETRY_ON.join(', ')} or an HTTP status code`;

/** Route `retries`: `attempts` counts retries after the first try (Envoy's num_retries). */
export const retriesSchema = z.strictObject({
  attempts: z.int().min(0).max(10).default(1),
  on: z
    .array(
      z.union([z.enum(RETRY_ON), z.string().regex(/^[1-5][0-9][0-9]$/, { error: RETRY_ON_ERROR }), z.int().min(100).max(599)], {
        error: RETRY_ON_ERROR,
      }),
    )
    .min(1)
    .default(['connect-failure', 'reset']),
  per_try_timeout_ms: ms().default(0),
  backoff_base_ms: ms().default(25),
  backoff_max_ms: ms().default(250),
  allow_non_idempotent: z.boolean().default(false),
  max_body_bytes: z
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
});

/** Route `fault`: injected delays and aborts, for chaos testing. */
export const faultSchema = z.strictObject({
  delay: z.strictObject({ duration_ms: ms(), percent: percent.default(100) }).optional(),
  abort: z.strictObject({ status: z.int().min(200).max(599), percent: percent.default(100) }).optional(),
});

/** Listener or route `rate_limit`: a local token bucket per sidecar. */
export const rateLimitSchema = z.strictObject({
  requests_per_second: z.number().positive(),
  burst: z.int().min(1).optional(),
});

/** Listener `access_log`. */
export const accessLogSchema = z.strictObject({
  path: z.string().min(1).default('stdout'),
  format: z.enum(['json', 'text']).default('json'),
});

/** Cluster `retry_budget`: shared by every route that uses the cluster. */
export const retryBudgetSchema = z.strictObject({
  percent: percent.default(20),
  min_retries_per_second: z.int().min(0).default(10),
  min_concurrent: z.int().min(0).default(3),
});

/** Cluster `health_check`: active HTTP health checks, or gRPC ones (grpc.health.v1.Health/Check) on
 *  `http2` clusters. `path` (default /healthz) is the GET's; a gRPC check has none (checks.ts
 *  refuses both), so the default is filled in only without `grpc` and the output validates again. */
export const healthCheckSchema = z
  .strictObject({
    path: pathField.optional(),
    grpc: z.strictObject({ service: z.string().default('') }).optional(),
    /** A TCP connect (and, for a `tls` cluster, the mTLS handshake) is the whole check. */
    tcp: z.strictObject({}).optional(),
    interval_ms: ms(1).default(5000),
    timeout_ms: ms(1).default(1000),
    unhealthy_threshold: z.int().min(1).default(3),
    healthy_threshold: z.int().min(1).default(2),
  })
  .transform(({ path, ...h }): typeof h & { path?: string } => (h.grpc !== undefined || h.tcp !== undefined ? h : { ...h, path: path ?? '/healthz' }));

/** Cluster `outlier_detection`: passive ejection of failing endpoints. */
export const outlierDetectionSchema = z.strictObject({
  consecutive_5xx: z.int().min(1).default(5),
  consecutive_gateway_failure: z.int().min(1).default(5),
  interval_ms: ms(1).default(10000),
  base_ejection_ms: ms(1).default(30000),
  max_ejection_percent: percent.default(10),
});

/** Cluster `discovery.dns`: the endpoints are what a DNS name resolves to, refreshed as its TTL says. */
const dnsDiscoverySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/, { error: 'must be a DNS name' }),
  /** A and AAAA: the endpoints' port; SRV records carry their own (checks.ts refuses it there). */
  port: z.int().min(1).max(65535).optional(),
  type: z.enum(['A', 'AAAA', 'SRV']).default('A'),
  /** The longest time between two lookups; a record's TTL shortens it. */
  refresh_ms: ms(1000).default(5000),
  /** The DNS servers to ask, IP literal and port (`127.0.0.1:53`); default: the system's (/etc/resolv.conf). */
  resolvers: z.array(endpointAddressField).min(1).optional(),
});

/** Cluster `discovery.etcd`: the endpoints are the sidecars registered for a service under the top-level `discovery.etcd`. */
const etcdDiscoverySchema = z.strictObject({ service: z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'must be a service name' }) });

/** Cluster `discovery`: endpoints found at run time instead of a static list; exactly one of `dns` or `etcd` (checks.ts). */
export const discoverySchema = z.strictObject({
  dns: dnsDiscoverySchema.optional(),
  etcd: etcdDiscoverySchema.optional(),
});

// Top-level `discovery.etcd` (the etcd cluster holding registrations and the mesh-wide config) and
// `node.service` (what this sidecar registers there): their schemas, compiled specs and compile.
// Both are read by the main thread only (src/discovery/), never posted to workers.
import { isIP } from 'node:net';
import { z } from 'zod';
import { nameField } from './fields.js';

/** `host:port` where host is a DNS name or an IP literal (IPv6 in brackets): an etcd member. */
const memberAddressField = z.string().superRefine((v, ctx) => {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/.exec(v);
  const port = m === null ? 0 : Number(m[2]);
  if (m === null || port < 1 || port > 65535)
    ctx.addIssue({ code: 'custom', message: 'must be host:port (a host name or IP literal, IPv6 in brackets; port 1-65535)' });
});

/** Every key lives under it: `/` then path segments, no trailing `/`. */
const prefixField = z
  .string()
  .regex(/^(?:\/[A-Za-z0-9_.-]+)+$/, { error: 'must be an absolute key path like /outrigger (segments of letters, digits, "_", "." or "-"; no trailing "/")' });

export const etcdConnectionSchema = z.strictObject({
  endpoints: z.array(memberAddressField).min(1),
  prefix: prefixField.default('/outrigger'),
  /** https to etcd: the CA that signs the members' certificates, and a client certificate when etcd asks for one. */
  tls: z
    .strictObject({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), { error: 'give cert and key together' })
    .optional(),
});

/** Top-level `discovery`. */
export const meshDiscoverySchema = z.strictObject({ etcd: etcdConnectionSchema });

/** `node.service`: registered in etcd under `<prefix>/services/<name>/<sidecar-id>` (needs top-level discovery.etcd, checks.ts). */
export const serviceRegistrationSchema = z.strictObject({
  name: nameField,
  address: z.string().refine((v) => isIP(v) !== 0, { error: 'must be an IP literal other sidecars connect to (IPv6 without brackets)' }),
  port: z.int().min(1).max(65535),
  weight: z.int().min(1).max(1000).default(1),
  metadata: z.record(z.string().min(1), z.string()).default({}),
  ttl_s: z.int().min(2).max(3600).default(10),
});

export type RawMeshDiscovery = z.output<typeof meshDiscoverySchema>;
export type RawServiceRegistration = z.output<typeof serviceRegistrationSchema>;

/** Top-level `discovery.etcd`, compiled. */
export interface EtcdSpec {
  /** `host:port` of each member (a host name or an IP literal). */
  readonly endpoints: readonly string[];
  /** Every key lives under it (`<prefix>/services/…`, `/sidecars/…`, `/mesh/…`); no trailing `/`. */
  readonly prefix: string;
  /** https with these PEM files (client certificate optional); null = plaintext http. */
  readonly tls: EtcdTlsSpec | null;
}

export interface EtcdTlsSpec {
  /** CA bundle that signs the etcd members' certificates. */
  readonly ca: string;
  /** Client certificate and key (etcd's --client-cert-auth); null = server-authenticated TLS only. */
  readonly cert: string | null;
  readonly key: string | null;
}

/** `node.service`, compiled: what this sidecar registers (under a lease it keeps alive). */
export interface ServiceRegistrationSpec {
  readonly name: string;
  /** IP literal other sidecars connect to (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Lease TTL: a crashed sidecar's registration disappears at most this long after its last keepalive. */
  readonly ttlS: number;
}

/** `discovery.etcd` → spec; null when the config has no top-level discovery. */
export function compileEtcd(d: RawMeshDiscovery | undefined): EtcdSpec | null {
  if (d === undefined) return null;
  const { endpoints, prefix, tls } = d.etcd;
  return Object.freeze({
    endpoints: Object.freeze([...endpoints]),
    prefix,
    tls: tls === undefined ? null : Object.freeze({ ca: tls.ca, cert: tls.cert ?? null, key: tls.key ?? null }),
  });
}

/** `node.service` → spec; null when this sidecar registers nothing. */
export function compileServiceRegistration(s: RawServiceRegistration | undefined): ServiceRegistrationSpec | null {
  if (s === undefined) return null;
  return Object.freeze({ name: s.name, address: s.address, port: s.port, weight: s.weight, metadata: Object.freeze({ ...s.metadata }), ttlS: s.ttl_s });
}

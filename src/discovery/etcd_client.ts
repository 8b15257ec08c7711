// The etcd v3 client (the etcd3 package) made from `discovery.etcd`, and the key layout every
// etcd user in outrigger shares: registrations, sidecar status and the mesh-wide config, all under
// the configured prefix. Main thread only: reads the TLS files once, when the client is made.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdSpec } from '../config/etcd.js';

/** A unary call (get, put, grant, txn) fails after this long instead of waiting for a dead cluster. */
const CALL_TIMEOUT_MS = 5_000;
/** Connecting to one member gives up after this long (the client then tries another). */
const DIAL_TIMEOUT_MS = 3_000;

/**
 * A client for `spec`'s cluster: https (client certificate when given) or http, bounded unary calls.
 * etcd3 is imported here, on first use: with grpc-js and protobufjs it is ~15 MiB of RSS that a
 * sidecar without `discovery.etcd` never needs.
 */
export async function etcdClient(spec: EtcdSpec): Promise<Etcd3> {
  const { Etcd3 } = await import('etcd3');
  const scheme = spec.tls === null ? 'http' : 'https';
  const options: IOptions = {
    hosts: spec.endpoints.map((e) => `${scheme}://${e}`),
    dialTimeout: DIAL_TIMEOUT_MS,
    // Streams (watches, keepalives) stay open; every other call has a deadline so a caller sees an
    // unreachable cluster as an error it can back off from, never as a hang.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  };
  if (spec.tls !== null) {
    options.credentials = {
      rootCertificate: readFileSync(spec.tls.ca),
      ...(spec.tls.cert !== null && spec.tls.key !== null ? { certChain: readFileSync(spec.tls.cert), privateKey: readFileSync(spec.tls.key) } : {}),
    };
  }
  return new Etcd3(options);
}

/** How long a drain waits for etcd to revoke one of this sidecar's leases before it goes on (the lease then expires on its own). */
export const REVOKE_TIMEOUT_MS = 2_000;

/**
 * `work` bounded by `ms`: 'done' when it resolved in time, 'timeout' when not, else its error's
 * message. Never rejects: a drain step that talks to etcd must not hold the drain up.
 */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([work.then(() => 'done'), timeout]);
  } catch (e) {
    return (e as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * This sidecar's id in `<p>/services/<service>/<id>` and `<p>/sidecars/<id>`: `<hostname>-<pid>`,
 * unique among the processes of one host and new on each start (a restarted sidecar never takes
 * over its predecessor's lease-bound keys; those expire with the old lease).
 */
export function sidecarId(): string {
  return `${hostname()}-${process.pid}`;
}

/** The keys under a prefix (README "Running a mesh" lists them). */
export interface EtcdKeys {
  /** `<p>/services/<service>/`: every sidecar registered for a service, one key each. */
  servicePrefix(service: string): string;
  /** `<p>/services/<service>/<sidecar-id>` → `{address, port, weight, metadata}`, under the sidecar's lease. */
  registration(service: string, sidecarId: string): string;
  /** `<p>/sidecars/`: every sidecar's applied mesh config version. */
  readonly sidecarsPrefix: string;
  /** `<p>/sidecars/<sidecar-id>` → `{service, applied_version, status, error?, updated_at}`, under the sidecar's lease. */
  sidecar(sidecarId: string): string;
  /** `<p>/mesh/versions/<n>` → the mesh config of version n (JSON). */
  meshVersion(n: number): string;
  readonly meshVersionsPrefix: string;
  /** `<p>/mesh/current` → the current version number. */
  readonly meshCurrent: string;
}

export function etcdKeys(prefix: string): EtcdKeys {
  return {
    servicePrefix: (service) => `${prefix}/services/${service}/`,
    registration: (service, sidecarId) => `${prefix}/services/${service}/${sidecarId}`,
    sidecarsPrefix: `${prefix}/sidecars/`,
    sidecar: (sidecarId) => `${prefix}/sidecars/${sidecarId}`,
    meshVersion: (n) => `${prefix}/mesh/versions/${n}`,
    meshVersionsPrefix: `${prefix}/mesh/versions/`,
    meshCurrent: `${prefix}/mesh/current`,
  };
}

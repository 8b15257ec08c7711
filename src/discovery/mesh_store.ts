// The mesh-wide config's reads and writes in etcd, shared by `outrigger mesh` and the sidecar's
// watcher: `<p>/mesh/versions/<N>` (the mesh document as JSON) and `<p>/mesh/current` (N), moved
// together by one transaction; keys as etcd_client.ts's etcdKeys names them. Talks to etcd only
// through the client it is given.

import type { Etcd3 } from 'etcd3';
import type { EtcdKeys } from './etcd_client.js';

/** `<p>/services/`: every registration of every service (etcd_client.ts's etcdKeys has them per service). */
export function registrationsPrefix(prefix: string): string {
  return `${prefix}/services/`;
}

/** What a sidecar writes under `<p>/sidecars/<id>` (its own lease): the mesh version it runs, or why it could not apply the current one. */
export interface SidecarStatus {
  readonly service: string;
  readonly applied_version: number | null;
  readonly status: 'ok' | 'error';
  readonly error?: string;
  readonly updated_at: string;
}

/**
 * Writes `document` as the next version and points `current` at it in one transaction that holds
 * only if `current` did not move meanwhile (two applies at once: the later one retries on top).
 */
export async function publishMeshVersion(client: Etcd3, keys: EtcdKeys, document: unknown): Promise<number> {
  const text = JSON.stringify(document);
  for (;;) {
    const { version, modRevision } = await readCurrentPointer(client, keys);
    const next = version + 1;
    const tx = await client
      .if(keys.meshCurrent, 'Mod', '==', modRevision)
      .then(client.put(keys.meshVersion(next)).value(text), client.put(keys.meshCurrent).value(String(next)))
      .commit();
    if (tx.succeeded) return next;
  }
}

/** The current version number (0 before the first apply) and the revision `current` was last written at. */
export async function readCurrentPointer(client: Etcd3, keys: EtcdKeys): Promise<{ version: number; modRevision: string }> {
  const res = await client.get(keys.meshCurrent).exec();
  const kv = res.kvs[0];
  if (kv === undefined) return { version: 0, modRevision: '0' };
  return { version: parseVersion(kv.value.toString()), modRevision: kv.mod_revision };
}

/** The mesh document of version `n`, or null when the store has no such version. */
export async function readMeshVersion(client: Etcd3, keys: EtcdKeys, n: number): Promise<unknown> {
  const text = await client.get(keys.meshVersion(n)).string();
  return text === null ? null : (JSON.parse(text) as unknown);
}

/** `current`'s value as a version number; anything else is a store written by something else. */
export function parseVersion(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`mesh/current holds "${text.slice(0, 40)}", not a version number`);
  return n;
}

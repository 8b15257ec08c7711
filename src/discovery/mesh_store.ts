// Where the mesh-wide config lives in etcd, shared by `outrigger mesh` and the sidecar's watcher:
// `<p>/mesh/versions/<N>` (the mesh document as JSON), `<p>/mesh/current` (N), `<p>/sidecars/<id>`
// (each sidecar's applied version) and `<p>/services/<service>/<id>` (registrations, written by
// registration.ts). Talks to etcd only through the client it is given.

import type { Etcd3 } from 'etcd3';

export interface MeshKeys {
  readonly current: string;
  version(n: number): string;
  readonly sidecars: string;
  sidecar(id: string): string;
  readonly services: string;
}

export function meshKeys(prefix: string): MeshKeys {
  const p = prefix.replace(/\/+$/, '');
  return {
    current: `${p}/mesh/current`,
    version: (n) => `${p}/mesh/versions/${n}`,
    sidecars: `${p}/sidecars/`,
    sidecar: (id) => `${p}/sidecars/${id}`,
    services: `${p}/services/`,
  };
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
export async function publishMeshVersion(client: Etcd3, keys: MeshKeys, document: unknown): Promise<number> {
  const text = JSON.stringify(document);
  for (;;) {
    const { version, modRevision } = await readCurrentPointer(client, keys);
    const next = version + 1;
    const tx = await client
      .if(keys.current, 'Mod', '==', modRevision)
      .then(client.put(keys.version(next)).value(text), client.put(keys.current).value(String(next)))
      .commit();
    if (tx.succeeded) return next;
  }
}

/** The current version number (0 before the first apply) and the revision `current` was last written at. */
export async function readCurrentPointer(client: Etcd3, keys: MeshKeys): Promise<{ version: number; modRevision: string }> {
  const res = await client.get(keys.current).exec();
  const kv = res.kvs[0];
  if (kv === undefined) return { version: 0, modRevision: '0' };
  return { version: parseVersion(kv.value.toString()), modRevision: kv.mod_revision };
}

/** The mesh document of version `n`, or null when the store has no such version. */
export async function readMeshVersion(client: Etcd3, keys: MeshKeys, n: number): Promise<unknown> {
  const text = await client.get(keys.version(n)).string();
  return text === null ? null : (JSON.parse(text) as unknown);
}

/** `current`'s value as a version number; anything else is a store written by something else. */
export function parseVersion(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`mesh/current holds "${text.slice(0, 40)}", not a version number`);
  return n;
}

// The piscina task that issues a leaf: loads the CA from its directory (every time, so a root
// rotated on disk is picked up), generates the key and signs. Runs in a pool thread started by
// issuer_pool.ts; issueFromDir is also called in-thread (issuer_pool's inline mode).

import { CaError, issueLeaf, loadCa, type CaErrorCode, type IssuedCert, type LeafRequest } from './ca.js';

export interface SignTask {
  readonly caDir: string;
  readonly req: LeafRequest;
  /** Accept a ca.key that group or others may access (tls.allow_insecure_key_permissions). */
  readonly allowInsecureKeyPermissions?: boolean;
}

/** A leaf plus the trust bundle of the CA that signed it (root + extra roots). */
export interface IssuedLeaf extends IssuedCert {
  readonly trustBundlePem: string;
}

/** Errors lose their class and fields crossing threads, so user mistakes travel as data. */
export type SignResult = { readonly ok: true; readonly leaf: IssuedLeaf } | { readonly ok: false; readonly code: CaErrorCode; readonly message: string };

export async function issueFromDir(task: SignTask): Promise<IssuedLeaf> {
  const ca = await loadCa(task.caDir, { allowInsecureKeyPermissions: task.allowInsecureKeyPermissions === true });
  return { ...issueLeaf(ca, task.req), trustBundlePem: ca.trustBundlePem };
}

export default async function signTask(task: SignTask): Promise<SignResult> {
  try {
    return { ok: true, leaf: await issueFromDir(task) };
  } catch (e) {
    if (e instanceof CaError) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

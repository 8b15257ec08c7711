// The piscina tasks for certificate CPU work, run in a pool thread started by issuer_pool.ts
// (each function is also called in-thread by the pool's inline mode):
//   issue  — load the CA from its directory (every time, so a root rotated on disk is picked
//            up), generate a key and sign a leaf (tls.ca mode, the signer's own server leaf);
//   sign   — check a CSR and sign its public key (the signer service: the key never comes here);
//   keygen — a new key and a CSR for it (tls.signer mode: the sidecar's key never leaves it, and
//            the sidecar never sees a root key).

import { CaError, issueLeaf, loadCa, signLeaf, type CaErrorCode, type IssuedCert, type LeafRequest } from './ca.js';
import { CsrError, buildCsr, parseCsr } from './csr.js';
import { generateKeySync, type KeyType } from './x509.js';

export interface SignTask {
  readonly kind?: 'issue';
  readonly caDir: string;
  readonly req: LeafRequest;
  /** Accept a ca.key that group or others may access (tls.allow_insecure_key_permissions). */
  readonly allowInsecureKeyPermissions?: boolean;
}

export interface CsrSignTask {
  readonly kind: 'sign';
  readonly caDir: string;
  readonly csrPem: string;
  /** The identity the caller authorized; the CSR must carry exactly this one. */
  readonly identity: string;
  readonly ttlHours: number;
  readonly allowInsecureKeyPermissions?: boolean;
}

export interface KeygenTask {
  readonly kind: 'keygen';
  readonly identity: string;
  readonly keyType: KeyType;
}

export type PoolTask = SignTask | CsrSignTask | KeygenTask;

/** A leaf plus the trust bundle of the CA that signed it (root + extra roots). */
export interface IssuedLeaf extends IssuedCert {
  readonly trustBundlePem: string;
}

/** A key and a CSR for it (PEM). */
export interface KeyAndCsr {
  readonly keyPem: string;
  readonly csrPem: string;
}

/** Errors lose their class and fields crossing threads, so user mistakes travel as data. */
export type SignResult =
  { readonly ok: true; readonly leaf: IssuedLeaf } | { readonly ok: false; readonly code: CaErrorCode | 'bad_csr'; readonly message: string };
export type KeygenResult = { readonly ok: true; readonly value: KeyAndCsr } | { readonly ok: false; readonly code: string; readonly message: string };

export async function issueFromDir(task: SignTask): Promise<IssuedLeaf> {
  const ca = await loadCa(task.caDir, { allowInsecureKeyPermissions: task.allowInsecureKeyPermissions === true });
  return { ...issueLeaf(ca, task.req), trustBundlePem: ca.trustBundlePem };
}

export async function signCsrFromDir(task: CsrSignTask): Promise<IssuedLeaf> {
  const csr = parseCsr(task.csrPem);
  if (csr.identity !== task.identity) throw new CsrError(`the CSR is for ${csr.identity}, the request for ${task.identity}`);
  const ca = await loadCa(task.caDir, { allowInsecureKeyPermissions: task.allowInsecureKeyPermissions === true });
  return { ...signLeaf(ca, { identity: csr.identity, ttlHours: task.ttlHours, publicKey: csr.publicKey }), trustBundlePem: ca.trustBundlePem };
}

export function keygen(task: KeygenTask): KeyAndCsr {
  const { privateKey, publicKey } = generateKeySync(task.keyType);
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), csrPem: buildCsr(privateKey, publicKey, task.identity) };
}

export default async function poolTask(task: PoolTask): Promise<SignResult | KeygenResult> {
  try {
    if (task.kind === 'keygen') return { ok: true, value: keygen(task) };
    return { ok: true, leaf: task.kind === 'sign' ? await signCsrFromDir(task) : await issueFromDir(task) };
  } catch (e) {
    if (e instanceof CaError || e instanceof CsrError) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

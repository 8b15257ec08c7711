// Certificate CPU work off the main thread: a small piscina pool (1–2 threads) runs key
// generation and signing (sign_worker.ts), so the main thread keeps answering the admin API and
// supervising workers while RSA keys (~180 ms each) are made. Three faces of one pool: an
// Issuer (tls.ca mode: our own leaf from a CA directory), a CsrSigner (the signer service) and
// a KeyMaker (tls.signer mode: our key and CSR; no CA in sight). Never start this on a data-plane
// worker. The certificate code (sign_worker.ts and node-forge under it) loads in the pool's
// thread, not in the thread that makes the pool: a sidecar's main thread never loads it (the
// inline mode, for the CLI and tests, imports it on first use).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { LeafRequest } from './ca.js';
import { CaError, CsrError } from './issuance.js';
import type { IssuedLeaf, KeyAndCsr, KeygenResult, PoolTask, SignResult } from './sign_worker.js';
import type { KeyType } from './x509.js';

export type { IssuedLeaf, KeyAndCsr } from './sign_worker.js';

export interface Issuer {
  /** Issue a leaf from the CA directory; rejects with CaError for a bad request or a missing CA. */
  issue(req: LeafRequest): Promise<IssuedLeaf>;
  close(): Promise<void>;
}

export interface PoolOptions {
  /** Pool threads, 1 or 2 (default 1: issuance is rare; a second thread only helps bursts). */
  readonly threads?: 1 | 2;
  /**
   * Run in the calling thread instead of a pool (no worker file needed). For the CLI and for
   * tests that run TypeScript sources; a sidecar uses the pool.
   */
  readonly inline?: boolean;
  /** Override the worker file (default: sign_worker.js beside this module, or under dist/). */
  readonly workerUrl?: URL;
}

export interface IssuerOptions extends PoolOptions {
  readonly caDir: string;
  /** Accept a ca.key that group or others may access (default: refuse it). */
  readonly allowInsecureKeyPermissions?: boolean;
}

/**
 * The compiled worker file. From dist/ it sits beside this module; when this module runs as
 * TypeScript source (vitest), the built copy under dist/ is used, so tests need `npx tsc` first.
 */
export function signWorkerUrl(): URL {
  const here = new URL('./sign_worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return here;
  const built = new URL('../../dist/src/tls/sign_worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(built))) {
    throw new Error(`issuer pool: ${fileURLToPath(built)} is missing; run "npx tsc -p tsconfig.json" first (or use inline: true)`);
  }
  return built;
}

function newPool(opts: PoolOptions): Piscina<PoolTask, SignResult | KeygenResult> {
  return new Piscina<PoolTask, SignResult | KeygenResult>({
    filename: (opts.workerUrl ?? signWorkerUrl()).href,
    minThreads: 0,
    maxThreads: opts.threads ?? 1,
    idleTimeout: 30_000,
  });
}

function leafOf(r: SignResult | KeygenResult): IssuedLeaf {
  if (!r.ok) throw r.code === 'bad_csr' ? new CsrError(r.message) : new CaError(r.code as CaError['code'], r.message);
  if (!('leaf' in r)) throw new Error('issuer pool: unexpected result');
  return r.leaf;
}

export function createIssuer(opts: IssuerOptions): Issuer {
  const { caDir } = opts;
  const allowInsecureKeyPermissions = opts.allowInsecureKeyPermissions === true;
  if (opts.inline === true) {
    return {
      issue: async (req) => (await import('./sign_worker.js')).issueFromDir({ caDir, req, allowInsecureKeyPermissions }),
      close: async () => {},
    };
  }
  const pool = newPool(opts);
  return {
    issue: async (req) => leafOf(await pool.run({ caDir, req, allowInsecureKeyPermissions })),
    close: () => pool.destroy(),
  };
}

export interface CsrSigner {
  /** Check the CSR (signature, exactly `identity`) and sign its key; rejects with CsrError / CaError. */
  sign(csrPem: string, identity: string, ttlHours: number): Promise<IssuedLeaf>;
  close(): Promise<void>;
}

export function createCsrSigner(opts: IssuerOptions): CsrSigner {
  const { caDir } = opts;
  const allowInsecureKeyPermissions = opts.allowInsecureKeyPermissions === true;
  if (opts.inline === true) {
    return {
      sign: async (csrPem, identity, ttlHours) =>
        (await import('./sign_worker.js')).signCsrFromDir({ kind: 'sign', caDir, csrPem, identity, ttlHours, allowInsecureKeyPermissions }),
      close: async () => {},
    };
  }
  const pool = newPool(opts);
  return {
    sign: async (csrPem, identity, ttlHours) => leafOf(await pool.run({ kind: 'sign', caDir, csrPem, identity, ttlHours, allowInsecureKeyPermissions })),
    close: () => pool.destroy(),
  };
}

export interface KeyMaker {
  /** A new private key (PKCS#8 PEM) and a CSR for `identity`. */
  make(identity: string, keyType: KeyType): Promise<KeyAndCsr>;
  close(): Promise<void>;
}

export function createKeyMaker(opts: PoolOptions = {}): KeyMaker {
  if (opts.inline === true) {
    return { make: async (identity, keyType) => (await import('./sign_worker.js')).keygen({ kind: 'keygen', identity, keyType }), close: async () => {} };
  }
  const pool = newPool(opts);
  return {
    make: async (identity, keyType) => {
      const r = await pool.run({ kind: 'keygen', identity, keyType });
      if (!r.ok) throw new Error(r.message);
      if (!('value' in r)) throw new Error('key maker: unexpected result');
      return r.value;
    },
    close: () => pool.destroy(),
  };
}

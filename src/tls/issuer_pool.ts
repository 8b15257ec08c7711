// Leaf issuance off the main thread: a small piscina pool (1–2 threads) runs key generation and
// signing (sign_worker.ts), so the main thread keeps answering the admin API and supervising
// workers while RSA keys (~180 ms each) are made. Never start this on a data-plane worker.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { CaError } from './ca.js';
import { issueFromDir, type IssuedLeaf, type SignResult, type SignTask } from './sign_worker.js';
import type { LeafRequest } from './ca.js';

export type { IssuedLeaf } from './sign_worker.js';

export interface Issuer {
  /** Issue a leaf from the CA directory; rejects with CaError for a bad request or a missing CA. */
  issue(req: LeafRequest): Promise<IssuedLeaf>;
  close(): Promise<void>;
}

export interface IssuerOptions {
  readonly caDir: string;
  /** Accept a ca.key that group or others may access (default: refuse it). */
  readonly allowInsecureKeyPermissions?: boolean;
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

export function createIssuer(opts: IssuerOptions): Issuer {
  const { caDir } = opts;
  const allowInsecureKeyPermissions = opts.allowInsecureKeyPermissions === true;
  if (opts.inline === true) {
    return {
      issue: (req) => issueFromDir({ caDir, req, allowInsecureKeyPermissions }),
      close: async () => {},
    };
  }
  const pool = new Piscina<SignTask, SignResult>({
    filename: (opts.workerUrl ?? signWorkerUrl()).href,
    minThreads: 0,
    maxThreads: opts.threads ?? 1,
    idleTimeout: 30_000,
  });
  return {
    issue: async (req) => {
      const r = await pool.run({ caDir, req, allowInsecureKeyPermissions });
      if (!r.ok) throw new CaError(r.code, r.message);
      return r.leaf;
    },
    close: () => pool.destroy(),
  };
}

// What every certificate source shares: other trust domains' roots (tls.federation), read from
// their PEM files with every new material, and strictness with secret files. Main thread only.

import { readFile } from 'node:fs/promises';
import type { TrustDomainBundle } from './material.js';

/** What every source shares: other trust domains' roots, strictness with secret files. */
export interface CommonSourceOptions {
  /**
   * Other trust domains' roots (tls.federation): PEM files, each trusted for its trust domain
   * only; read with every new material (files mode also watches them).
   */
  readonly federation?: readonly FederationSource[];
  /** Accept key (and token) files that group or others may access (default: refuse them, at start and on reload). */
  readonly allowInsecureKeyPermissions?: boolean;
}

export interface FederationSource {
  readonly trustDomain: string;
  readonly bundlePath: string;
}

/** The federated trust domains' roots, read now. */
export async function readFederation(opts: CommonSourceOptions): Promise<TrustDomainBundle[]> {
  return Promise.all(
    (opts.federation ?? []).map(async (f) => {
      try {
        return { trustDomain: f.trustDomain, rootsPem: await readFile(f.bundlePath, 'utf8') };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(`tls.federation bundle of ${f.trustDomain} ${f.bundlePath}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
    }),
  );
}

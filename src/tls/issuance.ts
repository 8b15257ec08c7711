// What the sidecar's main thread needs of certificate issuance without loading the certificate
// code itself (ca.ts, csr.ts, x509.ts and node-forge under them, ~3.7 MiB of heap): the default
// leaf lifetime, and the two errors the signing pool's answers become (issuer_pool.ts). The pool's
// thread (sign_worker.ts), the CLI and the signer service load the certificate code; ca.ts and
// csr.ts re-export these, so their users need not know they live here.

export const DEFAULT_LEAF_TTL_HOURS = 24;

export type CaErrorCode = 'ca_exists' | 'ca_missing' | 'ca_invalid' | 'bad_request' | 'insecure_permissions';

/** A mistake the user can fix (existing CA, missing files, bad identity): one line, no stack needed. */
export class CaError extends Error {
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

/** A CSR the signer cannot accept; the message is safe to return to the requester. */
export class CsrError extends Error {
  readonly code = 'bad_csr';
  constructor(message: string) {
    super(message);
    this.name = 'CsrError';
  }
}

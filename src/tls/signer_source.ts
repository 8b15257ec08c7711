// Signer mode's material (tls.signer): a new key and CSR from the key pool, signed by
// `outrigger ca serve` — authenticated with our current certificate while it is valid (renewal),
// else with the bootstrap token. The sidecar never sees a root key. Main thread only.

import { DEFAULT_LEAF_TTL_HOURS, type KeyType } from './ca.js';
import { readFederation, type CommonSourceOptions } from './federation.js';
import type { KeyMaker } from './issuer_pool.js';
import { materialFromPem, type TlsMaterial } from './material.js';
import { defaultSignerIdentity, requestSignature, SignerError, type SignerCredentials } from './signer_client.js';
import { trustDomainOf } from './spiffe.js';

export interface SignerSourceOptions extends CommonSourceOptions {
  readonly mode: 'signer';
  /** `host:port` of `outrigger ca serve`. */
  readonly address: string;
  /** PEM roots that sign the signer's certificate. */
  readonly caBundlePath: string;
  /** The bootstrap token. */
  readonly tokenFile: string;
  /** The SPIFFE ID the signer must present (default spiffe://<our trust domain>/outrigger/signer). */
  readonly signerIdentity?: string;
  /** Our SPIFFE ID (node.identity). */
  readonly identity: string;
  /** Leaf lifetime to ask for, hours (default 24; the signer may cap it). */
  readonly ttlHours?: number;
  readonly keyType?: KeyType;
  /** Renew after this fraction of the lifetime (default 0.5). */
  readonly rotateAtFraction?: number;
  /** First retry delay after a failed renewal, ms (default 1000, doubling up to 30 s). */
  readonly retryMs?: number;
  /** Key and CSR maker (default: a piscina pool, closed by close()). */
  readonly keyMaker?: KeyMaker;
  /** One signing request, ms (default 10 s). */
  readonly timeoutMs?: number;
}

export function signerIdentityOf(opts: SignerSourceOptions): string {
  return opts.signerIdentity ?? defaultSignerIdentity(trustDomainOf(opts.identity));
}

/**
 * A new key and CSR (pool), signed by the signer: authenticated with our current certificate
 * while it is valid (renewal of the same identity), else — or when the signer refuses it — with
 * the bootstrap token. Rotation is scheduled at `rotateAtFraction` of the signed lifetime.
 */
export async function signerMaterial(keyMaker: KeyMaker, opts: SignerSourceOptions, current: TlsMaterial | null): Promise<TlsMaterial> {
  const keyType = opts.keyType ?? 'ec-p256';
  const ttlHours = opts.ttlHours ?? DEFAULT_LEAF_TTL_HOURS;
  const { keyPem, csrPem } = await keyMaker.make(opts.identity, keyType);
  const ep = {
    address: opts.address,
    caBundlePath: opts.caBundlePath,
    signerIdentity: signerIdentityOf(opts),
    tokenFile: opts.tokenFile,
    ...(opts.allowInsecureKeyPermissions === true ? { allowInsecureKeyPermissions: true } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
  const now = Date.now();
  const renewable = current !== null && current.identity === opts.identity && now >= current.notBefore.getTime() && now < current.notAfter.getTime();
  const asked = Date.now();
  let signed;
  try {
    const creds: SignerCredentials = renewable ? { kind: 'certificate', certPem: current.certPem, keyPem: current.keyPem } : { kind: 'token' };
    signed = await requestSignature(ep, csrPem, ttlHours, creds);
  } catch (e) {
    // The signer no longer takes our certificate (e.g. its CA moved on): fall back to the token.
    if (!(renewable && e instanceof SignerError && e.kind === 'refused')) throw e;
    signed = await requestSignature(ep, csrPem, ttlHours, { kind: 'token' });
  }
  if (signed.identity !== opts.identity) throw new Error(`the signer issued ${signed.identity}, we asked for ${opts.identity}`);
  const m = materialFromPem({ certPem: signed.certificate, keyPem, trustBundlePem: signed.trustBundle, federation: await readFederation(opts) });
  if (m.identity !== opts.identity) throw new Error(`the signer's certificate is for ${m.identity}, we asked for ${opts.identity}`);
  // From when we asked (notBefore is backdated for clock skew) to the real notAfter.
  const delayMs = Math.max(250, (m.notAfter.getTime() - asked) * (opts.rotateAtFraction ?? 0.5));
  return Object.freeze({ ...m, nextRotation: new Date(asked + delayMs) });
}

// Signer mode's material (tls.signer): a new key and CSR from the key pool, signed by
// `outrigger ca serve` — authenticated with our current certificate while it is valid (renewal),
// else with the bootstrap token. The sidecar never sees a root key. Main thread only.
//
// The signer's answer is checked against what we configured, not taken on trust: the leaf must
// chain to a root of tls.signer.ca_bundle, carry the SPIFFE ID we asked for and the public key of
// our CSR, and be valid now; every root of the returned trust_bundle must be in ca_bundle (the
// signer may drop roots, never add one: a new root — a root rotation — goes into ca_bundle
// first, which is re-read for every request). Anyone who obtained a certificate for the signer's
// identity can still talk to us, but cannot make us trust anything ca_bundle does not.

import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_LEAF_TTL_HOURS } from './issuance.js';
import type { KeyType } from './x509.js';
import { readFederation, type CommonSourceOptions } from './federation.js';
import type { KeyMaker } from './issuer_pool.js';
import { materialFromPem, type TlsMaterial } from './material.js';
import { defaultSignerIdentity, requestSignature, SignerError, type SignedCertificate, type SignerCredentials } from './signer_client.js';
import { peerSpiffeId, trustDomainOf } from './spiffe.js';
import { splitPemCertificates } from './cert_read.js';

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
  await checkSignerAnswer(signed, opts, keyPem);
  const m = materialFromPem({ certPem: signed.certificate, keyPem, trustBundlePem: signed.trustBundle, federation: await readFederation(opts) });
  if (m.identity !== opts.identity) throw new Error(`the signer's certificate is for ${m.identity}, we asked for ${opts.identity}`);
  // From when we asked (notBefore is backdated for clock skew) to the real notAfter.
  const delayMs = Math.max(250, (m.notAfter.getTime() - asked) * (opts.rotateAtFraction ?? 0.5));
  return Object.freeze({ ...m, nextRotation: new Date(asked + delayMs) });
}

function parseCerts(what: string, pem: string): X509Certificate[] {
  return splitPemCertificates(pem).map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch (e) {
      throw new Error(`${what} [${i}]: unreadable certificate (${(e as Error).message})`);
    }
  });
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Refuse an answer that tls.signer.ca_bundle does not vouch for (see the header): a leaf that
 * does not chain to a ca_bundle root, is for another SPIFFE ID or another key than our CSR's, is
 * not valid now, or a trust_bundle with a root that is not in ca_bundle. Throws an Error naming
 * the problem (the renewal fails; the current certificate stays).
 */
export async function checkSignerAnswer(signed: SignedCertificate, opts: SignerSourceOptions, keyPem: string): Promise<void> {
  const caBundle = parseCerts(
    `tls.signer.ca_bundle ${opts.caBundlePath}`,
    await readFile(opts.caBundlePath, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`tls.signer.ca_bundle ${opts.caBundlePath}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    }),
  );
  if (caBundle.length === 0) throw new Error(`tls.signer.ca_bundle ${opts.caBundlePath}: no PEM certificate found`);
  const chain = parseCerts("the signer's certificate", signed.certificate);
  const leaf = chain[0];
  if (leaf === undefined) throw new Error("the signer's answer holds no certificate");
  const id = peerSpiffeId(leaf);
  if (id !== opts.identity) throw new Error(`the signer's certificate is for ${id ?? 'no SPIFFE ID'}, we asked for ${opts.identity}`);
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) {
    throw new Error(`the signer's certificate ${leaf.serialNumber} holds a public key that is not the one in our CSR: refused`);
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!signedBy(chain[i] as X509Certificate, chain[i + 1] as X509Certificate)) throw new Error(`the signer's certificate chain is broken at [${i}]: refused`);
  }
  const top = chain[chain.length - 1] as X509Certificate;
  if (!caBundle.some((root) => signedBy(top, root))) {
    throw new Error(
      `the signer's certificate ${leaf.serialNumber} (issuer ${top.issuer.replace(/\n/g, ', ')}) does not chain to tls.signer.ca_bundle ${opts.caBundlePath}: refused`,
    );
  }
  const now = Date.now();
  if (!(now < Date.parse(leaf.validTo))) throw new Error(`the signer's certificate ${leaf.serialNumber} expired at ${leaf.validTo}: refused`);
  const known = new Set(caBundle.map((c) => c.fingerprint256));
  for (const root of parseCerts("the signer's trust_bundle", signed.trustBundle)) {
    if (!known.has(root.fingerprint256)) {
      throw new Error(
        `the signer's trust_bundle holds a root that is not in tls.signer.ca_bundle ${opts.caBundlePath} (${root.subject.replace(/\n/g, ', ')}, SHA-256 ${root.fingerprint256}): refused; a new root is trusted once it is in ca_bundle`,
      );
    }
  }
}

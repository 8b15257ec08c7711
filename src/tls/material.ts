// TlsMaterial: this sidecar's identity at one moment — leaf, key, the roots it trusts (and for
// which trust domain each one vouches) and the facts read from them. Plain frozen data
// (structured-clone safe), so the main thread can post it to workers. It never holds a CA's
// private key. materialFromPem checks that the pieces fit together.

import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { trustDomainOf } from './spiffe.js';
import { certInfo, splitPemCertificates } from './cert_read.js';

/** The roots trusted for one trust domain (a SPIFFE bundle). */
export interface TrustDomainBundle {
  readonly trustDomain: string;
  readonly rootsPem: string;
}

export interface TlsMaterial {
  /** Our leaf (first) plus any intermediates, PEM. */
  readonly certPem: string;
  readonly keyPem: string;
  /**
   * Every trusted root, PEM (ours and federated ones): what TLS verifies chains against. Several
   * of our own during a root rotation overlap.
   */
  readonly trustBundlePem: string;
  /**
   * Which trust domain each root vouches for: our own trust domain first (our bundle), then
   * federated ones. A peer is accepted only when a root of its SPIFFE ID's trust domain signed
   * its chain (trust_domains.ts).
   */
  readonly trustDomains: readonly TrustDomainBundle[];
  /** The SPIFFE ID in our leaf. */
  readonly identity: string;
  /** Leaf serial, upper-case hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When a fresh leaf will replace this one (ca mode), or null (files mode: whoever writes the files decides). */
  readonly nextRotation: Date | null;
}

export interface PemTriple {
  readonly certPem: string;
  readonly keyPem: string;
  /** Our own trust domain's roots (they vouch for our trust domain only). */
  readonly trustBundlePem: string;
  /** Other trust domains' roots, each trusted for its own trust domain only (tls.federation). */
  readonly federation?: readonly TrustDomainBundle[];
}

/**
 * Check and describe a leaf/key/bundle triple: the leaf parses and holds exactly one SPIFFE
 * URI SAN, the key matches it, the bundle holds at least one certificate and one of them
 * issued the leaf (or its last intermediate). Throws an Error naming the problem.
 */
export function materialFromPem(pems: PemTriple, nextRotation: Date | null = null): TlsMaterial {
  const chain = splitPemCertificates(pems.certPem);
  const leafPem = chain[0];
  if (leafPem === undefined) throw new Error('cert: no PEM certificate found');
  const leaf = parsePem('cert', leafPem);
  let key;
  try {
    key = createPrivateKey(pems.keyPem);
  } catch (e) {
    throw new Error(`key: unreadable (${(e as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) throw new Error('key: does not match the certificate');
  const info = certInfo(leaf);
  if (info.identity === null) throw new Error('cert: no SPIFFE ID (exactly one spiffe:// URI SAN is required)');
  const roots = splitPemCertificates(pems.trustBundlePem).map((p) => parsePem('trust bundle', p));
  if (roots.length === 0) throw new Error('trust bundle: no PEM certificate found');
  const top = parsePem('cert', chain[chain.length - 1] as string);
  if (!roots.some((r) => top.checkIssued(r) && top.verify(r.publicKey))) {
    throw new Error('cert: not issued by any root in the trust bundle');
  }
  const ownTd = trustDomainOf(info.identity);
  const own: TrustDomainBundle = { trustDomain: ownTd, rootsPem: roots.map((r) => r.toString()).join('') };
  const trustDomains: TrustDomainBundle[] = [own];
  for (const f of pems.federation ?? []) {
    if (f.trustDomain === ownTd) throw new Error(`federation: "${ownTd}" is our own trust domain; its roots come from our own trust bundle`);
    if (trustDomains.some((t) => t.trustDomain === f.trustDomain)) throw new Error(`federation: trust domain "${f.trustDomain}" appears twice`);
    const fr = splitPemCertificates(f.rootsPem).map((p) => parsePem(`federation bundle of ${f.trustDomain}`, p));
    if (fr.length === 0) throw new Error(`federation bundle of ${f.trustDomain}: no PEM certificate found`);
    trustDomains.push({ trustDomain: f.trustDomain, rootsPem: fr.map((r) => r.toString()).join('') });
  }
  return Object.freeze({
    certPem: chain.join(''),
    keyPem: pems.keyPem,
    // Every root, ours first (as given: a root rotation may list one twice for a moment).
    trustBundlePem: trustDomains.map((t) => t.rootsPem).join(''),
    trustDomains: Object.freeze(trustDomains.map((t) => Object.freeze(t))),
    identity: info.identity,
    serial: info.serial,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    nextRotation,
  });
}

/** Parses one PEM certificate; a parse error names the part it came from (OpenSSL's text alone does not). */
function parsePem(part: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new Error(`${part}: unreadable certificate (${(e as Error).message})`);
  }
}

const materialKeys = new WeakMap<TlsMaterial, string>();

/**
 * A content key for a material: equal materials (e.g. two structured-clone copies posted to a
 * worker) share contexts and sessions; a new leaf or a new trust bundle gets fresh ones.
 */
export function materialKey(m: TlsMaterial): string {
  let k = materialKeys.get(m);
  if (k === undefined) {
    const h = createHash('sha256').update(m.certPem).update('\0').update(m.trustBundlePem);
    // Which root vouches for which trust domain is part of what a session was checked under.
    for (const t of m.trustDomains ?? []) h.update('\0').update(t.trustDomain).update('\0').update(t.rootsPem);
    k = h.digest('base64url');
    materialKeys.set(m, k);
  }
  return k;
}

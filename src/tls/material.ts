// TlsMaterial: this sidecar's identity at one moment — leaf, key, trust bundle and the facts
// read from them. Plain frozen data (structured-clone safe), so the main thread can post it to
// workers inside a snapshot. materialFromPem checks that the pieces fit together.

import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { certInfo, splitPemCertificates } from './x509.js';

export interface TlsMaterial {
  /** Our leaf (first) plus any intermediates, PEM. */
  readonly certPem: string;
  readonly keyPem: string;
  /** Every trusted root, PEM; several during a root rotation overlap. */
  readonly trustBundlePem: string;
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
  readonly trustBundlePem: string;
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
  return Object.freeze({
    certPem: chain.join(''),
    keyPem: pems.keyPem,
    trustBundlePem: roots.map((r) => r.toString()).join(''),
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
    k = createHash('sha256').update(m.certPem).update('\0').update(m.trustBundlePem).digest('base64url');
    materialKeys.set(m, k);
  }
  return k;
}

// SPIFFE bundle semantics: each trusted root vouches only for the trust domain(s) it is
// configured for. OpenSSL verifies a peer's chain against every root at once (it cannot bind a
// root to a name), so after the handshake we find which root(s) the peer's chain really ends
// at — by signature, not by name — and refuse the peer unless one of them is configured for the
// trust domain of the peer's SPIFFE ID. A root of trust domain A can then never vouch for an
// identity in B. Once per connection (and cached per certificate), on any thread.

import { X509Certificate } from 'node:crypto';
import { materialKey, type TlsMaterial } from './material.js';
import { trustDomainOf } from './spiffe.js';
import { splitPemCertificates } from './cert_read.js';

interface Anchor {
  readonly cert: X509Certificate;
  readonly trustDomains: ReadonlySet<string>;
}

/** The roots of a material, each with the trust domains it vouches for. */
interface Anchors {
  readonly key: string;
  readonly list: readonly Anchor[];
}

const anchorsCache = new Map<string, Anchors>();
/** Leaves already found vouched for (under one set of anchors): the signature checks run once per certificate. */
const vouched = new Set<string>();
const MAX_VERDICTS = 4096;

function anchorsOf(m: TlsMaterial): Anchors {
  const key = materialKey(m);
  let a = anchorsCache.get(key);
  if (a === undefined) {
    const byFingerprint = new Map<string, { cert: X509Certificate; trustDomains: Set<string> }>();
    for (const b of m.trustDomains) {
      for (const pem of splitPemCertificates(b.rootsPem)) {
        const cert = new X509Certificate(pem);
        const entry = byFingerprint.get(cert.fingerprint256) ?? { cert, trustDomains: new Set<string>() };
        entry.trustDomains.add(b.trustDomain);
        byFingerprint.set(cert.fingerprint256, entry);
      }
    }
    a = { key, list: [...byFingerprint.values()] };
    // Old materials stay referenced only while a rotation overlaps: a handful is plenty.
    if (anchorsCache.size >= 8) anchorsCache.delete(anchorsCache.keys().next().value as string);
    anchorsCache.set(key, a);
  }
  return a;
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Why `identity` (the SPIFFE ID in `leaf`) is not vouched for by a root configured for its trust
 * domain in `m`, or null when it is. `chain` gives the certificates the peer sent above its
 * leaf (intermediates), asked for only when the leaf was not signed by a root directly. A
 * certificate without a SPIFFE ID is never vouched for.
 */
export function trustDomainProblem(
  m: TlsMaterial,
  identity: string | null,
  leaf: X509Certificate,
  chain: () => readonly X509Certificate[] = () => [],
): string | null {
  if (identity === null) return 'the certificate carries no SPIFFE ID';
  const anchors = anchorsOf(m);
  const cacheKey = `${anchors.key}|${leaf.fingerprint256}|${identity}`;
  if (vouched.has(cacheKey)) return null;
  const td = trustDomainOf(identity);
  if (!walk(anchors, td, leaf, chain)) return `${identity} is not vouched for by a root of trust domain "${td}"`;
  if (vouched.size >= MAX_VERDICTS) vouched.clear();
  vouched.add(cacheKey);
  return null;
}

function validNow(c: X509Certificate): boolean {
  const now = Date.now();
  return Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
}

/** From the leaf up through CA certificates the peer sent, to a root that vouches for `td`. */
function walk(anchors: Anchors, td: string, leaf: X509Certificate, chain: () => readonly X509Certificate[]): boolean {
  let current = leaf;
  let intermediates: readonly X509Certificate[] | null = null;
  const seen = new Set<string>([leaf.fingerprint256]);
  for (let depth = 0; depth < 8; depth++) {
    for (const a of anchors.list) {
      if (a.trustDomains.has(td) && signedBy(current, a.cert)) return true;
    }
    intermediates ??= chain().filter(validNow);
    const next = intermediates.find((c) => c.ca && !seen.has(c.fingerprint256) && signedBy(current, c));
    if (next === undefined) return false;
    seen.add(next.fingerprint256);
    current = next;
  }
  return false;
}

/** Certificates above the leaf in a detailed peer certificate (`getPeerCertificate(true)`). */
export function peerChain(detailed: { raw?: Buffer; issuerCertificate?: unknown; fingerprint256?: string } | null | undefined): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c = detailed as { raw?: Buffer; issuerCertificate?: unknown; fingerprint256?: string } | undefined;
  if (c?.fingerprint256 !== undefined) seen.add(c.fingerprint256);
  for (let i = 0; i < 10; i++) {
    const up = c?.issuerCertificate as typeof c;
    if (up === undefined || up === null || up === c || up.raw === undefined) break;
    if (up.fingerprint256 !== undefined) {
      if (seen.has(up.fingerprint256)) break;
      seen.add(up.fingerprint256);
    }
    try {
      out.push(new X509Certificate(up.raw));
    } catch {
      break;
    }
    c = up;
  }
  return out;
}

// SPIFFE identities: parse and validate IDs (spiffe://<trust-domain>/<path>), the identity
// patterns (segment-wise, config/identity_pattern.ts), and read a peer's ID from its X.509 URI SAN.
// Pure functions, no I/O; safe on data-plane workers (once per connection, never per request).

import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
// The ID and identity-pattern grammar, and the one pattern matcher, live in
// config/identity_pattern.ts (config validation uses the same definition); re-exported here.
import {
  compileIdentityPattern,
  compileIdentityPatterns,
  identityPatternProblem,
  isValidTrustDomain,
  spiffeIdProblem,
  trustDomainOf,
  type IdentityMatcher,
} from '../config/identity_pattern.js';

export { compileIdentityPattern, compileIdentityPatterns, identityPatternProblem, isValidTrustDomain, spiffeIdProblem, trustDomainOf, type IdentityMatcher };

export interface SpiffeId {
  /** The whole ID as given (already canonical: parsing accepts only canonical IDs). */
  readonly uri: string;
  readonly trustDomain: string;
  /** The path including its leading "/", or "" for a trust-domain ID. */
  readonly path: string;
  /** `ns` of a `/ns/<ns>/sa/<sa>` path, else null. */
  readonly namespace: string | null;
  /** `sa` of a `/ns/<ns>/sa/<sa>` path, else null. */
  readonly serviceAccount: string | null;
}

const PREFIX = 'spiffe://';

/** Parse a SPIFFE ID; null when invalid (see spiffeIdProblem for why). */
export function tryParseSpiffeId(s: string): SpiffeId | null {
  if (spiffeIdProblem(s) !== null) return null;
  const rest = s.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(path);
  return { uri: s, trustDomain, path, namespace: m?.[1] ?? null, serviceAccount: m?.[2] ?? null };
}

/** Parse a SPIFFE ID; throws an Error naming the problem when invalid. */
export function parseSpiffeId(s: string): SpiffeId {
  const id = tryParseSpiffeId(s);
  if (id === null) throw new Error(`"${s}" is not a SPIFFE ID: ${spiffeIdProblem(s) ?? 'invalid'}`);
  return id;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`; throws when the result is not a valid ID. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return parseSpiffeId(`${PREFIX}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`).uri;
}

/** One-off pattern check (compiles each call; prefer compileIdentityPattern on a hot path). */
export function matchesIdentity(pattern: string, id: string): boolean {
  return compileIdentityPattern(pattern)(id);
}

/**
 * Split node's subject-alt-name string (`DNS:a, URI:spiffe://td/x, ...`) into [type, value]
 * pairs. Node writes a value holding ",", quotes or control bytes as a JSON string
 * (`URI:"spiffe://a,b"`), so a plain split on ", " would be wrong.
 */
export function parseSubjectAltNames(san: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon === -1) break;
    const type = san.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(j, k + 1)) as string;
      } catch {
        value = san.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = san.indexOf(', ', j);
      const end = comma === -1 ? san.length : comma;
      value = san.slice(j, end);
      j = end;
    }
    out.push([type, value]);
    const next = san.indexOf(', ', j);
    if (next === -1) break;
    i = next + 2;
  }
  return out;
}

/** The SAN string of a certificate from `socket.getPeerCertificate()` or `getPeerX509Certificate()`. */
function sanString(cert: PeerCertificate | X509Certificate | null | undefined): string | undefined {
  if (cert === null || cert === undefined) return undefined;
  if (cert instanceof X509Certificate) return cert.subjectAltName;
  return (cert as Partial<PeerCertificate>).subjectaltname;
}

/**
 * The SPIFFE ID in a certificate's URI SAN, or null when there is none, it is invalid, or the
 * certificate holds more than one URI SAN (an X.509-SVID holds exactly one).
 */
export function peerSpiffeId(cert: PeerCertificate | X509Certificate | null | undefined): string | null {
  const san = sanString(cert);
  if (san === undefined || san.length === 0) return null;
  let found: string | null = null;
  for (const [type, value] of parseSubjectAltNames(san)) {
    if (type !== 'URI') continue;
    if (found !== null) return null;
    found = value;
  }
  if (found === null || spiffeIdProblem(found) !== null) return null;
  return found;
}

/**
 * Check a peer certificate against the expected identities (exact IDs or identity patterns).
 * Returns null when it matches, else a one-line reason (no prefix: callers add their code).
 */
export function verifyPeerIdentity(
  cert: PeerCertificate | X509Certificate | null | undefined,
  expected: string | readonly string[] | IdentityMatcher,
): string | null {
  const id = peerSpiffeId(cert);
  const want = typeof expected === 'string' ? [expected] : expected;
  const label = typeof want === 'function' ? 'the allowed identities' : want.join(' or ');
  if (id === null) return `peer certificate has no SPIFFE ID (expected ${label})`;
  const ok = typeof want === 'function' ? want(id) : compileIdentityPatterns(want)(id);
  return ok ? null : `peer is ${id}, expected ${label}`;
}

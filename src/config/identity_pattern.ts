// SPIFFE IDs and identity patterns: the grammar and the one matcher that every identity check
// uses (authorization `from`, cluster `tls.identities`, signer tokens). Pure and dependency-free
// so that config validation and the TLS code (tls/spiffe.ts re-exports it) share one definition.
//
//   pattern  = "spiffe://" trust-domain *( "/" segment )
//   segment  = name | "*"        name: 1+ of A-Z a-z 0-9 . - _ (not "." or "..")
//
// The trust domain is always matched exactly (no wildcard in it). A "*" segment matches exactly
// one segment, except as the last segment, where it matches one or more ("everything under").
// A "*" inside a segment ("ns/x*", "td*") is refused: patterns match whole segments only.

const PREFIX = 'spiffe://';
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN = 255;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** True when `td` is a valid trust domain name: 1–255 of lower-case letters, digits, ".", "-", "_". */
export function isValidTrustDomain(td: string): boolean {
  return td.length > 0 && td.length <= MAX_TRUST_DOMAIN && TRUST_DOMAIN.test(td);
}

/** Why `s` is not a SPIFFE ID, or null when it is one. */
export function spiffeIdProblem(s: string): string | null {
  if (!s.startsWith(PREFIX)) return 'must start with "spiffe://" (lower case)';
  if (Buffer.byteLength(s) > MAX_ID_BYTES) return `longer than ${MAX_ID_BYTES} bytes`;
  const rest = s.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const td = slash === -1 ? rest : rest.slice(0, slash);
  if (td.length === 0) return 'trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN) return `trust domain longer than ${MAX_TRUST_DOMAIN} characters`;
  if (!TRUST_DOMAIN.test(td)) return `trust domain "${td}" may only hold a-z, 0-9, ".", "-", "_"`;
  if (slash === -1) return null;
  const segments = rest.slice(slash + 1).split('/');
  for (const seg of segments) {
    if (seg.length === 0) return 'path has an empty segment (or a trailing "/")';
    if (seg === '.' || seg === '..') return 'path has a "." or ".." segment';
    if (!SEGMENT.test(seg)) return `path segment "${seg}" may only hold A-Z, a-z, 0-9, ".", "-", "_"`;
  }
  return null;
}

/** The trust domain of a valid SPIFFE ID (or pattern). */
export function trustDomainOf(id: string): string {
  const rest = id.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}

/** Why `p` is not an identity pattern (see the grammar above), or null when it is one. */
export function identityPatternProblem(p: string): string | null {
  if (!p.startsWith(PREFIX)) return 'must start with "spiffe://" (lower case)';
  const td = trustDomainOf(p);
  if (td.includes('*')) return `the trust domain is matched exactly: no "*" in "${td}"`;
  const segments = p
    .slice(PREFIX.length + td.length)
    .split('/')
    .slice(1);
  for (const seg of segments) {
    if (seg !== '*' && seg.includes('*')) return `"*" must be a whole path segment, not part of "${seg}"`;
  }
  // With every "*" segment replaced by a plain name, the rest is the SPIFFE ID grammar.
  const problem = spiffeIdProblem(`${PREFIX}${td}${segments.map((s) => `/${s === '*' ? 'x' : s}`).join('')}`);
  if (problem !== null) return problem;
  if (Buffer.byteLength(p) > MAX_ID_BYTES) return `longer than ${MAX_ID_BYTES} bytes`;
  return null;
}

/** A compiled identity pattern: true when the SPIFFE ID is allowed. */
export type IdentityMatcher = (id: string) => boolean;

const NAME = '(?!\\.\\.?(?:/|$))[A-Za-z0-9._-]+';

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Compile an identity pattern (grammar above) into a matcher; throws an Error naming the
 * problem for anything else. An exact ID compiles to string equality; a pattern with "*" to an
 * anchored regular expression over whole segments (no allocation per call).
 */
export function compileIdentityPattern(pattern: string): IdentityMatcher {
  const problem = identityPatternProblem(pattern);
  if (problem !== null) throw new Error(`identity pattern "${pattern}": ${problem}`);
  if (!pattern.includes('*')) return (id) => id === pattern;
  const td = trustDomainOf(pattern);
  const segments = pattern
    .slice(PREFIX.length + td.length)
    .split('/')
    .slice(1);
  const last = segments.length - 1;
  const body = segments.map((s, i) => (s !== '*' ? `/${escapeRegex(s)}` : i === last ? `(?:/${NAME})+` : `/${NAME}`)).join('');
  const re = new RegExp(`^${escapeRegex(PREFIX + td)}${body}$`);
  return (id) => id.length <= MAX_ID_BYTES && re.test(id);
}

/** Compile several patterns into one matcher (any may match). Throws like compileIdentityPattern. */
export function compileIdentityPatterns(patterns: readonly string[]): IdentityMatcher {
  const compiled = patterns.map(compileIdentityPattern); // validates every pattern
  if (compiled.length === 1) return compiled[0] as IdentityMatcher;
  const exact = new Set<string>();
  const wild: IdentityMatcher[] = [];
  patterns.forEach((p, i) => (p.includes('*') ? wild.push(compiled[i] as IdentityMatcher) : exact.add(p)));
  if (wild.length === 0) return (id) => exact.has(id);
  return (id) => exact.has(id) || wild.some((m) => m(id));
}

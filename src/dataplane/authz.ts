// Inbound authorization (DESIGN.md §4): deny unless a rule allows. A rule allows when every field
// it has matches: `from` (SPIFFE IDs or identity patterns, matched segment-wise with the trust
// domain exact: a `*` segment is one segment, a last `*` one or more — `spiffe://td/ns/*/sa/web`,
// `spiffe://td/ns/prod/*`; config/identity_pattern.ts), `paths` (exact, or prefix ending in `*`),
// `methods`. A rule's `grpc` services and methods arrive as paths (config/compile.ts:
// `/<service>/<method>`, `/<service>/*`). Compiled once per config version; decisions are counted per rule.

import type { AuthzRuleSpec } from '../config/types.js';
import { compileIdentityPatterns } from '../tls/spiffe.js';

type Matcher = (value: string) => boolean;

function listMatcher(patterns: readonly string[]): Matcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  return (v) => exact.has(v) || prefixes.some((pre) => v.startsWith(pre));
}

interface CompiledRule {
  readonly from: Matcher | null;
  readonly paths: Matcher | null;
  readonly methods: ReadonlySet<string> | null;
}

export class Authorizer {
  private readonly rules: readonly CompiledRule[];
  /** Allowed requests per rule (index), and denials. */
  readonly allowed: number[];
  denied = 0;

  constructor(rules: readonly AuthzRuleSpec[]) {
    this.rules = rules.map((r) => ({
      from: r.from === null ? null : compileIdentityPatterns(r.from), // segment-wise, trust domain exact (tls/spiffe.ts)
      paths: r.paths === null ? null : listMatcher(r.paths),
      methods: r.methods === null ? null : new Set(r.methods),
    }));
    this.allowed = rules.map(() => 0);
  }

  /**
   * The index of the first rule that allows, or -1 (deny). Counts the decision. `path` is the
   * request's normal form (path_normal.ts: ambiguous paths were refused before this).
   */
  check(identity: string | null, path: string, method: string): number {
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (r.from !== null && (identity === null || !r.from(identity))) continue;
      if (r.paths !== null && !r.paths(path)) continue;
      if (r.methods !== null && !r.methods.has(method)) continue;
      this.allowed[i]!++;
      return i;
    }
    this.denied++;
    return -1;
  }
}

// Inbound authorization (DESIGN.md §4): deny unless a rule allows. A rule allows when every field
// it has matches: `from` (SPIFFE IDs, exact or `prefix/*`), `paths` (exact, or prefix ending in
// `*`), `methods`. Compiled once per config version; decisions are counted per rule.

import type { AuthzRuleSpec } from '../config/types.js';

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

/** Dot segments (also percent-encoded) and encoded or back slashes: an app may read the path differently. */
const UNNORMALIZED_PATH = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)|%2f|%5c|\\/i;

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
      from: r.from === null ? null : listMatcher(r.from),
      paths: r.paths === null ? null : listMatcher(r.paths),
      methods: r.methods === null ? null : new Set(r.methods),
    }));
    this.allowed = rules.map(() => 0);
  }

  /** The index of the first rule that allows, or -1 (deny). Counts the decision. */
  check(identity: string | null, path: string, method: string): number {
    // A path rule matches only a path in normal form: "/v1/../admin" must not pass "/v1/*" and
    // then reach an app that resolves it to "/admin". Rules without `paths` are unaffected.
    const pathMatchable = !UNNORMALIZED_PATH.test(path);
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (r.from !== null && (identity === null || !r.from(identity))) continue;
      if (r.paths !== null && (!pathMatchable || !r.paths(path))) continue;
      if (r.methods !== null && !r.methods.has(method)) continue;
      this.allowed[i]!++;
      return i;
    }
    this.denied++;
    return -1;
  }
}

// Builders for RouteSpecs and a naive, obviously-correct reference matcher for property tests.

import fc from 'fast-check';
import type { HeaderMatchSpec, RouteActionSpec, RouteMatchSpec, RouteSpec } from '../../src/config/types.js';
import { forwardingRoute, type HeaderLookup } from '../../src/dataplane/router.js';

export function match(m: Partial<RouteMatchSpec> = {}): RouteMatchSpec {
  return { host: null, path: null, pathPrefix: null, pathRegex: null, grpc: false, methods: null, headers: [], ...m };
}

export function header(name: string, m: Partial<Omit<HeaderMatchSpec, 'name'>>): HeaderMatchSpec {
  return { name, exact: null, regex: null, present: null, ...m };
}

/** A header condition of each kind (exact, regex, present/absent) on x-a or x-b, values 1 or 2. */
export const headerMatchArb: fc.Arbitrary<HeaderMatchSpec> = fc.oneof(
  fc.constantFrom('x-a', 'x-b').chain((n) => fc.constantFrom('1', '2').map((v) => header(n, { exact: v }))),
  fc.constantFrom('x-a', 'x-b').map((n) => header(n, { regex: '^(?:[12])$' })),
  fc.constantFrom('x-a', 'x-b').chain((n) => fc.boolean().map((p) => header(n, { present: p }))),
);

export function route(name: string, m: Partial<RouteMatchSpec> = {}, action?: RouteActionSpec): RouteSpec {
  return forwardingRoute(name, match(m), action ?? { kind: 'cluster', cluster: `c-${name}` }, 0);
}

export function split(...parts: [string, number][]): RouteActionSpec {
  return {
    kind: 'split',
    split: parts.map(([cluster, weight]) => ({ cluster, weight })),
    totalWeight: parts.reduce((a, [, w]) => a + w, 0),
  };
}

export function headers(h: Record<string, string>): HeaderLookup {
  return (name) => h[name];
}

export const noHeaders: HeaderLookup = () => undefined;

/** Reference semantics, written independently of the router: a linear scan in config order. */
export function naiveMatch(routes: readonly RouteSpec[], method: string, hostHeader: string, path: string, header: HeaderLookup): number {
  let host = hostHeader.toLowerCase();
  const v6 = /^\[([^\]]*)\](?::.*)?$/.exec(host);
  if (v6) host = v6[1] ?? '';
  else if (host.split(':').length === 2) host = host.split(':')[0] ?? '';
  for (let i = 0; i < routes.length; i++) {
    const m = (routes[i] as RouteSpec).match;
    if (m.host !== null) {
      let pattern = m.host.toLowerCase();
      if (pattern.startsWith('[') && pattern.endsWith(']')) pattern = pattern.slice(1, -1);
      if (pattern.startsWith('*.')) {
        const suffix = pattern.slice(1);
        if (!(host.endsWith(suffix) && host.length > suffix.length)) continue;
      } else if (pattern !== '*' && pattern !== host) continue;
    }
    if (m.path !== null && path !== m.path) continue;
    if (m.pathPrefix !== null && !path.startsWith(m.pathPrefix)) continue;
    if (m.pathRegex !== null && !new RegExp(m.pathRegex).test(path)) continue;
    if (m.methods !== null && m.methods.length > 0 && !m.methods.includes(method)) continue;
    let ok = true;
    for (const h of m.headers) {
      const v = header(h.name);
      if (h.exact !== null) ok = v === h.exact;
      else if (h.regex !== null) ok = v !== undefined && new RegExp(h.regex).test(v);
      else ok = h.present === false ? v === undefined : v !== undefined;
      if (!ok) break;
    }
    if (ok) return i;
  }
  return -1;
}

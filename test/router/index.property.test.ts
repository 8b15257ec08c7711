// The indexed router (host groups + path tree) against the linear reference (buildLinearRouter)
// and the naive scan of helpers.ts: same route for random tables and requests, and the same
// header lookups in the same order (conditions are checked in config order, only for routes
// whose host and path match). Paths come from a small alphabet so that prefixes, exact paths
// and regex literal prefixes share, split and end inside one another's tree edges.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../src/config/types.js';
import { buildLinearRouter, buildRouter, type HeaderLookup, type Router } from '../../src/dataplane/router.js';
import { header, headerMatchArb, naiveMatch, route } from './helpers.js';

const pathChars = ['/', 'a', 'b', 'ab', '/a', '/b', 'é'] as const;
const pathStringArb = fc.array(fc.constantFrom(...pathChars), { maxLength: 5 }).map((xs) => xs.join(''));
/** A path that starts with `/` (most routes), or anything (the empty path, a bare `a`). */
const pathArb = fc.oneof({ weight: 4, arbitrary: pathStringArb.map((p) => `/${p}`) }, { weight: 1, arbitrary: pathStringArb });

const regexBodyArb = fc.oneof(
  fc.constant('.*'),
  fc.constant('[ab]+'),
  fc.constant('a?'),
  fc.constant('(?:a|b)/.*'),
  fc.constant('|/b'),
  fc.constant(''),
  fc.constant('\\/a.*'),
  fc.constant('/?'),
  // Quantifiers of the literal's last character.
  fc.constant('?'),
  fc.constant('*'),
  fc.constant('+'),
  fc.constant('{0,2}'),
);
/** Config's anchored form `^(?:…)$` of a literal path followed by a regex tail. */
const pathRegexArb = fc
  .tuple(pathArb, regexBodyArb)
  .map(([lit, tail]) => `^(?:${lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${lit === '' && /^[?*+{]/.test(tail) ? '.*' : tail})$`);

const hostPatternArb = fc.constantFrom<string | null>(null, '*', 'api', 'API', 'a.example.com', '*.example.com', '*.a.example.com', '*.com', '[::1]');
const requestHostArb = fc.constantFrom('api', 'Api:80', 'a.example.com', 'b.a.example.com:8080', 'x.com', 'example.com', '[::1]:80', '::1', '', 'other');

const routeArb = fc.record({
  host: hostPatternArb,
  path: fc.oneof(
    { weight: 1, arbitrary: fc.constant({}) },
    { weight: 3, arbitrary: pathArb.map((p) => ({ path: p })) },
    { weight: 4, arbitrary: pathArb.map((p) => ({ pathPrefix: p })) },
    { weight: 2, arbitrary: pathRegexArb.map((p) => ({ pathRegex: p })) },
  ),
  methods: fc.option(fc.subarray(['GET', 'POST'], { minLength: 1 }), { nil: null }),
  headers: fc.array(headerMatchArb, { maxLength: 2 }),
});

const tableArb: fc.Arbitrary<RouteSpec[]> = fc
  .array(routeArb, { maxLength: 120 })
  .map((rs) => rs.map((r, i) => route(`r${i}`, { host: r.host, ...r.path, methods: r.methods, headers: r.headers })));

const requestArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT'),
  host: requestHostArb,
  path: fc.oneof(
    pathArb,
    pathArb.chain((p) => fc.constantFrom(`${p}/a`, `${p}b`, `${p}é`)),
  ),
  headers: fc.record({ 'x-a': fc.constantFrom('1', '2', '3'), 'x-b': fc.constantFrom('1', '2') }, { requiredKeys: [] }).map((h): Record<string, string> => h),
});

interface Request {
  method: string;
  host: string;
  path: string;
  headers: Record<string, string>;
}

/** The route index and the header names asked, in order. */
function run(router: Router, req: Request): [number, string[]] {
  const asked: string[] = [];
  const lookup: HeaderLookup = (name) => {
    asked.push(name);
    return req.headers[name];
  };
  const got = router.match(req.method, req.host, req.path, lookup);
  return [got === null ? -1 : got.index, asked];
}

/** The indexed and the linear router pick the same route and ask for the same headers in the same order; that route is also the naive scan's. */
function expectSameAsLinear(routes: RouteSpec[], requests: readonly Request[]): void {
  const indexed = buildRouter(routes);
  const linear = buildLinearRouter(routes);
  for (const req of requests) {
    const [want, wantAsked] = run(linear, req);
    const [got, gotAsked] = run(indexed, req);
    const what = `${req.method} ${JSON.stringify(req.host)} ${JSON.stringify(req.path)} ${JSON.stringify(req.headers)}`;
    expect(got, what).toBe(want);
    expect(gotAsked, what).toEqual(wantAsked);
    expect(want, what).toBe(naiveMatch(routes, req.method, req.host, req.path, (n) => req.headers[n]));
  }
}

describe('property: indexed router == linear reference', () => {
  it('same route and same header lookups, in order, for random tables and requests', () => {
    fc.assert(fc.property(tableArb, fc.array(requestArb, { minLength: 1, maxLength: 30 }), expectSameAsLinear), { numRuns: 1500, seed: 13 });
  });

  it('agrees on large tables of one kind (one wide tree per host)', () => {
    const wideArb = fc
      .tuple(fc.constantFrom('path', 'pathPrefix', 'pathRegex'), fc.integer({ min: 100, max: 600 }), fc.boolean())
      .map(([kind, n, catchAll]) => {
        const specs: RouteSpec[] = [];
        for (let i = 0; i < n; i++) {
          const p = `/svc${i}/`;
          const m = kind === 'pathRegex' ? { pathRegex: `^(?:${p}[0-9]+)$` } : { [kind]: p };
          specs.push(route(`r${i}`, { ...m, host: i % 3 === 0 ? '*.example.com' : null, methods: i % 7 === 0 ? ['POST'] : null }));
        }
        if (catchAll) specs.splice(n >> 1, 0, route('catch-all', { headers: [header('x-a', { present: true })] }));
        return specs;
      });
    const wideRequestArb = fc.record({
      method: fc.constantFrom('GET', 'POST'),
      host: fc.constantFrom('a.example.com', 'other'),
      path: fc.tuple(fc.integer({ min: 0, max: 700 }), fc.constantFrom('', '1', '/', 'x')).map(([i, tail]) => `/svc${i}/${tail}`),
      headers: fc.record({ 'x-a': fc.constant('1') }, { requiredKeys: [] }),
    });
    fc.assert(fc.property(wideArb, fc.array(wideRequestArb, { minLength: 1, maxLength: 30 }), expectSameAsLinear), { numRuns: 60, seed: 5 });
  });
});

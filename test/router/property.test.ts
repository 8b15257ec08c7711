// The indexed router must answer exactly what a naive linear scan answers.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../src/config/types.js';
import { buildRouter } from '../../src/dataplane/router.js';
import { headerMatchArb, headers, naiveMatch, route } from './helpers.js';

const labels = ['a', 'b', 'api', 'example'] as const;
const suffixes = ['example.com', 'a.example.com', 'b.a.example.com', 'com', 'api', 'mesh.local'] as const;
const exactHosts = ['example.com', 'a.example.com', 'b.a.example.com', 'api', 'api.mesh.local', '::1', '10.0.0.1'] as const;
const paths = ['/', '/v1', '/v1/', '/v1/users', '/v1/users/7', '/v2/x', '/healthz', '/a', '/b', '/c', '/d', '/e', '/f', '/g', '/h'] as const;
const prefixes = ['/', '/v1', '/v1/', '/v2', '/h'] as const;
const regexes = ['^(?:/v[0-9]+/.*)$', '^(?:/[a-h])$', '^(?:.*users.*)$'] as const;
const methods = ['GET', 'POST', 'PUT'] as const;

const hostPatternArb = fc.oneof(
  fc.constant(null),
  fc.constantFrom(...exactHosts).map((h) => (h.includes(':') ? `[${h}]` : h)),
  fc.constantFrom(...exactHosts),
  fc.constantFrom(...suffixes).map((s) => `*.${s}`),
);

const pathArb = fc.oneof(
  fc.constant({}),
  fc.constantFrom(...paths).map((p) => ({ path: p })),
  fc.constantFrom(...prefixes).map((p) => ({ pathPrefix: p })),
  fc.constantFrom(...regexes).map((p) => ({ pathRegex: p })),
);

const routeArb = fc.record({
  host: hostPatternArb,
  path: pathArb,
  methods: fc.option(fc.subarray([...methods], { minLength: 1 }), { nil: null }),
  headers: fc.array(headerMatchArb, { maxLength: 2 }),
});

const routesArb: fc.Arbitrary<RouteSpec[]> = fc
  .array(routeArb, { maxLength: 60 })
  .map((rs) => rs.map((r, i) => route(`r${i}`, { host: r.host, ...r.path, methods: r.methods, headers: r.headers })));

const requestHostArb = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(...exactHosts),
      fc.tuple(fc.constantFrom(...labels), fc.constantFrom(...suffixes)).map(([l, s]) => `${l}.${s}`),
      fc.constantFrom('', 'other.org', 'example.com.evil', '.example.com'),
    ),
    fc.boolean(),
    fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
  )
  .map(([h, upper, port]) => {
    let host = upper ? h.toUpperCase() : h;
    if (host.includes(':')) host = port === null ? (upper ? `[${host}]` : host) : `[${host}]:${port}`;
    else if (port !== null) host = `${host}:${port}`;
    return host;
  });

const requestArb = fc.record({
  method: fc.constantFrom(...methods),
  host: requestHostArb,
  path: fc.constantFrom(...paths, '/v1/users/x', '/zzz'),
  headers: fc
    .record({ 'x-a': fc.constantFrom('1', '2', '3') }, { requiredKeys: [] })
    .chain((a) => fc.record({ 'x-b': fc.constantFrom('1', '2') }, { requiredKeys: [] }).map((b) => ({ ...a, ...b }))),
});

/** The router picks the route (index and spec) the naive scan picks, for each request. */
function expectSameAsNaive(routes: RouteSpec[], requests: readonly { method: string; host: string; path: string; headers: Record<string, string> }[]): void {
  const router = buildRouter(routes);
  for (const req of requests) {
    const lookup = headers(req.headers);
    const got = router.match(req.method, req.host, req.path, lookup);
    const want = naiveMatch(routes, req.method, req.host, req.path, lookup);
    expect(got === null ? -1 : got.index, `${req.method} ${req.host} ${req.path} ${JSON.stringify(req.headers)}`).toBe(want);
    if (got !== null) expect(got.spec).toBe(routes[want]);
  }
}

describe('property: indexed router == naive linear scan', () => {
  it('returns the same route for random tables and requests', () => {
    fc.assert(fc.property(routesArb, fc.array(requestArb, { minLength: 1, maxLength: 40 }), expectSameAsNaive), { numRuns: 1000, seed: 42 });
  });

  it('agrees on tables with many exact paths per host (path index in use)', () => {
    const manyPaths = fc
      .array(
        fc.record({
          host: fc.constantFrom<string | null>(null, 'api', '*.example.com', 'a.example.com'),
          path: fc.oneof(
            fc.constantFrom(...paths).map((p) => ({ path: p })),
            fc.constantFrom(...prefixes).map((p) => ({ pathPrefix: p })),
          ),
          methods: fc.option(fc.subarray([...methods], { minLength: 1 }), { nil: null }),
        }),
        { minLength: 20, maxLength: 80 },
      )
      .map((rs) => rs.map((r, i) => route(`r${i}`, { host: r.host, ...r.path, methods: r.methods })));
    fc.assert(fc.property(manyPaths, fc.array(requestArb, { minLength: 1, maxLength: 40 }), expectSameAsNaive), { numRuns: 500, seed: 7 });
  });
});

import { describe, expect, it } from 'vitest';
import { buildRouter, type Router } from '../../src/dataplane/router.js';
import { seededRng } from '../../src/lb/rng.js';
import { header, headers, noHeaders, route, split } from './helpers.js';

function name(r: { spec: { name: string } } | null): string | null {
  return r === null ? null : r.spec.name;
}

/**
 * Matches each `METHOD host path` request (no headers) and compares, in one assertion so that a
 * failure shows every request, the names of the routes they hit (null: no route) with `expected`.
 */
function expectRoutes(router: Router, expected: Record<string, string | null>): void {
  const hit = Object.keys(expected).map((request) => {
    const [method = '', host = '', path = ''] = request.split(' ');
    return [request, name(router.match(method, host, path, noHeaders))];
  });
  expect(Object.fromEntries(hit)).toEqual(expected);
}

describe('router: host', () => {
  const router = buildRouter([
    route('api', { host: 'api.example.com' }),
    route('wild', { host: '*.example.com' }),
    route('v6', { host: '[::1]' }),
    route('v4', { host: '10.0.0.1' }),
  ]);

  it('matches exact hosts case-insensitively and ignores the port', () => {
    expectRoutes(router, {
      'GET api.example.com /': 'api',
      'GET API.Example.COM /': 'api',
      'GET api.example.com:8080 /': 'api',
      'GET Api.Example.Com:443 /': 'api',
      'GET 10.0.0.1:80 /': 'v4',
    });
  });

  it('matches wildcards on sub-domains only', () => {
    expectRoutes(router, {
      'GET a.example.com /': 'wild',
      'GET a.b.example.com:81 /': 'wild',
      'GET A.B.EXAMPLE.COM /': 'wild',
      'GET example.com /': null,
      'GET .example.com /': null,
      'GET aexample.com /': null,
      'GET example.com.evil /': null,
    });
  });

  it('matches IPv6 Host values with and without a port', () => {
    expectRoutes(router, {
      'GET [::1]:80 /': 'v6',
      'GET [::1] /': 'v6',
      'GET ::1 /': 'v6',
      'GET [::2]:80 /': null,
    });
  });

  it('accepts an unbracketed IPv6 pattern and the empty Host', () => {
    const r = buildRouter([route('v6', { host: 'fe80::1' }), route('any')]);
    expect(name(r.match('GET', '[FE80::1]:8080', '/', noHeaders))).toBe('v6');
    expect(name(r.match('GET', '', '/', noHeaders))).toBe('any');
  });

  it('treats a null or * host as any host', () => {
    const r = buildRouter([route('star', { host: '*', path: '/s' }), route('any', { host: null })]);
    expectRoutes(r, { 'GET whatever:1 /s': 'star', 'GET whatever /x': 'any' });
  });
});

describe('router: first match wins across host buckets', () => {
  const router = buildRouter([
    route('wild-v1', { host: '*.example.com', pathPrefix: '/v1/' }),
    route('any-health', { path: '/healthz' }),
    route('exact', { host: 'api.example.com' }),
    route('wild', { host: '*.example.com' }),
    route('deep-wild', { host: '*.b.example.com' }),
    route('any', {}),
  ]);

  it('a wildcard route listed before an exact-host route wins when it matches', () => {
    expectRoutes(router, { 'GET api.example.com /v1/x': 'wild-v1', 'GET api.example.com /v2/x': 'exact' });
  });

  it('an any-host route listed early wins for every host', () => {
    expectRoutes(router, { 'GET api.example.com /healthz': 'any-health', 'GET x.b.example.com /healthz': 'any-health', 'GET other /healthz': 'any-health' });
  });

  it('a shorter wildcard listed first beats a longer one', () => {
    expect(name(router.match('GET', 'x.b.example.com', '/', noHeaders))).toBe('wild');
  });

  it('falls through to later routes', () => {
    expectRoutes(router, { 'GET other.org /': 'any', 'GET example.com /': 'any' });
  });

  it('longer wildcard wins when listed first', () => {
    const r = buildRouter([route('deep', { host: '*.b.example.com' }), route('wild', { host: '*.example.com' })]);
    expectRoutes(r, { 'GET x.b.example.com /': 'deep', 'GET b.example.com /': 'wild', 'GET x.c.example.com /': 'wild' });
  });
});

describe('router: path', () => {
  const router = buildRouter([
    route('exact', { path: '/exact' }),
    route('prefix', { pathPrefix: '/v1/' }),
    route('regex', { pathRegex: '^(?:/users/[0-9]+)$' }),
  ]);

  it('exact', () => {
    expectRoutes(router, { 'GET h /exact': 'exact', 'GET h /exact/': null, 'GET h /EXACT': null });
  });

  it('prefix is a plain string prefix', () => {
    expectRoutes(router, { 'GET h /v1/': 'prefix', 'GET h /v1/a/b': 'prefix', 'GET h /v1': null });
  });

  it('regex is anchored', () => {
    expectRoutes(router, { 'GET h /users/42': 'regex', 'GET h /users/42/x': null, 'GET h /x/users/42': null });
  });

  it('refuses a regex that does not compile, naming the route', () => {
    expect(() => buildRouter([route('bad', { pathRegex: '^(?:[)$' })])).toThrow(/route bad: path_regex/);
    expect(() => buildRouter([route('badh', { headers: [header('x', { regex: '(' })] })])).toThrow(/route badh: header x/);
  });
});

describe('router: methods and headers', () => {
  const router = buildRouter([
    route('get', { methods: ['GET', 'HEAD'], path: '/m' }),
    route('canary', { headers: [header('x-canary', { exact: '1' })], path: '/h' }),
    route('regex', { headers: [header('x-user', { regex: '^(?:u-[0-9]+)$' })], path: '/h' }),
    route('present', { headers: [header('x-debug', { present: true })], path: '/h' }),
    route('absent', { headers: [header('x-debug', { present: false }), header('x-a', { exact: 'a' })], path: '/h' }),
    route('fallback', {}),
  ]);

  it('methods list (case-sensitive)', () => {
    expectRoutes(router, {
      'GET h /m': 'get',
      'HEAD h /m': 'get',
      'POST h /m': 'fallback',
      'get h /m': 'fallback',
    });
  });

  it('exact header', () => {
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-canary': '1' })))).toBe('canary');
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-canary': '10' })))).toBe('fallback');
  });

  it('regex header (anchored)', () => {
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-user': 'u-7' })))).toBe('regex');
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-user': 'xu-7' })))).toBe('fallback');
  });

  it('present and absent; all header matchers must hold', () => {
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-debug': '' })))).toBe('present');
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-a': 'a' })))).toBe('absent');
    expect(name(router.match('GET', 'h', '/h', headers({ 'x-a': 'b' })))).toBe('fallback');
  });

  it('asks only for header names it needs, lower-cased', () => {
    const asked: string[] = [];
    const r = buildRouter([route('x', { headers: [header('X-Mixed', { present: true })] })]);
    r.match('GET', 'h', '/', (n) => {
      asked.push(n);
      return undefined;
    });
    expect(asked).toEqual(['x-mixed']);
    const plain = buildRouter([route('p', { path: '/' })]);
    plain.match('GET', 'h', '/', () => {
      throw new Error('route without header matchers must not read headers');
    });
  });
});

describe('router: compiled routes', () => {
  it('exposes spec and index in config order', () => {
    const specs = [route('a', { path: '/a' }), route('b', { path: '/b' })];
    const r = buildRouter(specs);
    expect(r.routes.map((x) => [x.spec, x.index])).toEqual([
      [specs[0], 0],
      [specs[1], 1],
    ]);
    expect(r.match('GET', 'h', '/b', noHeaders)).toBe(r.routes[1]);
    expect(Object.isFrozen(r.routes[0])).toBe(true);
  });

  it('returns null for an empty table', () => {
    expect(buildRouter([]).match('GET', 'h', '/', noHeaders)).toBeNull();
  });

  it('pickCluster returns the cluster of a plain route', () => {
    const r = buildRouter([route('a', {}, { kind: 'cluster', cluster: 'api-v1' })]);
    expect(r.routes[0]!.pickCluster(seededRng(1))).toBe('api-v1');
  });

  it('splits by weight with a seeded rng', () => {
    const r = buildRouter([route('s', {}, split(['v1', 90], ['v2', 10]))]);
    const rng = seededRng(7);
    const counts: Record<string, number> = {};
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const c = r.routes[0]!.pickCluster(rng);
      counts[c] = (counts[c] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['v1', 'v2']);
    expect(Math.abs(counts['v1']! / n - 0.9)).toBeLessThan(0.01);
    expect(Math.abs(counts['v2']! / n - 0.1)).toBeLessThan(0.01);
  });

  it('never picks a zero-weight split entry', () => {
    const r = buildRouter([route('s', {}, split(['old', 0], ['new', 100], ['off', 0]))]);
    const rng = seededRng(8);
    for (let i = 0; i < 1000; i++) expect(r.routes[0]!.pickCluster(rng)).toBe('new');
  });

  it('is deterministic for a given seed', () => {
    const r = buildRouter([route('s', {}, split(['a', 1], ['b', 1], ['c', 2]))]);
    const seq = (seed: number): string[] => {
      const rng = seededRng(seed);
      return Array.from({ length: 20 }, () => r.routes[0]!.pickCluster(rng));
    };
    expect(seq(3)).toEqual(seq(3));
  });
});

describe('router: the index keeps the work per request small', () => {
  /** Matches GET `host` `path` with every header present, counting the header values the router reads. */
  function matchCountingLookups(router: Router, host: string, path: string): { route: string | null; lookups: number } {
    let lookups = 0;
    const matched = router.match('GET', host, path, () => {
      lookups++;
      return '1';
    });
    return { route: name(matched), lookups };
  }

  it('checks only the routes of the request host among 1000 virtual hosts', () => {
    const specs = [];
    for (let i = 0; i < 1000; i++) {
      specs.push(route(`r${i}`, { host: `svc-${i}.mesh.local`, headers: [header('x-route', { present: true })] }));
    }
    const router = buildRouter(specs);
    expect(matchCountingLookups(router, 'svc-999.mesh.local:80', '/')).toEqual({ route: 'r999', lookups: 1 });
    expect(matchCountingLookups(router, 'unknown.mesh.local', '/')).toEqual({ route: null, lookups: 0 });
  });

  it('checks only routes with the request path among many exact paths on one host', () => {
    const specs = [];
    for (let i = 0; i < 500; i++) {
      specs.push(route(`p${i}`, { host: 'api', path: `/op/${i}`, headers: [header('x-route', { present: true })] }));
    }
    specs.push(route('catch-all', { host: 'api', headers: [header('x-route', { present: true })] }));
    const router = buildRouter(specs);
    expect(matchCountingLookups(router, 'api', '/op/499')).toEqual({ route: 'p499', lookups: 1 });
    expect(matchCountingLookups(router, 'api', '/other')).toEqual({ route: 'catch-all', lookups: 1 });
  });
});

describe('router: the path index keeps config order', () => {
  const router = buildRouter([
    route('regex-first', { pathRegex: '^(?:/api/v[0-9]+/users)$' }),
    route('canary', { pathPrefix: '/api/', headers: [header('x-canary', { exact: '1' })] }),
    route('exact-late', { path: '/api/v1/users' }),
    route('prefix-short', { pathPrefix: '/a' }),
    route('prefix-long', { pathPrefix: '/api/v1/' }),
    route('catch-all', {}),
  ]);

  it('an earlier regex or shorter prefix beats a later, more specific route', () => {
    expect(name(router.match('GET', 'h', '/api/v1/users', noHeaders))).toBe('regex-first');
    expect(name(router.match('GET', 'h', '/api/v1/users', headers({ 'x-canary': '1' })))).toBe('regex-first');
    expect(name(router.match('GET', 'h', '/api/v1/other', headers({ 'x-canary': '1' })))).toBe('canary');
    expectRoutes(router, { 'GET h /api/v1/other': 'prefix-short', 'GET h /b': 'catch-all' });
  });

  it('prefixes are plain string prefixes, also inside the tree', () => {
    expectRoutes(router, { 'GET h /apix': 'prefix-short', 'GET h /a': 'prefix-short', 'GET h /': 'catch-all' });
  });

  it('asks for headers only of routes whose path matches, in config order', () => {
    const asked: string[] = [];
    const r = buildRouter([
      route('a', { path: '/x', headers: [header('x-a', { present: true })] }),
      route('b', { pathPrefix: '/y', headers: [header('x-b', { present: true })] }),
      route('c', { headers: [header('x-c', { present: true })] }),
      route('d', { pathPrefix: '/y/', headers: [header('x-d', { present: true })] }),
    ]);
    expect(
      r.match('GET', 'h', '/y/1', (n) => {
        asked.push(n);
        return undefined;
      }),
    ).toBeNull();
    expect(asked).toEqual(['x-b', 'x-c', 'x-d']);
  });
});

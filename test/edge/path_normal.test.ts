// The normal form that routing and authorization match against (src/dataplane/path_normal.ts),
// checked against an independent reference (decodeURIComponent + path.posix), plus every bypass
// shape from the security review against a `/v1/*` rule, and the linear-regex validation.

import { execFileSync } from 'node:child_process';
import { posix } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import { Authorizer } from '../../src/dataplane/authz.js';
import { normalizePath } from '../../src/dataplane/path_normal.js';
import { linearRegexUnavailable } from '../../src/config/regex.js';
import { ROOT } from '../helpers/process.js';
import { listed, minimal, OPTS } from '../config/helpers.js';

/** Reference: an app that cuts `;params` per segment, then decodes and resolves dot segments (null = it would throw). */
function referenceResolve(path: string): string | null {
  const segs = path.split('/').map((s) => (s.includes(';') ? s.slice(0, s.indexOf(';')) : s));
  try {
    return posix.normalize(decodeURIComponent(segs.join('/')));
  } catch {
    return null;
  }
}

function hasDotSegment(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  return decoded.split(/[/\\]/).some((s) => {
    const name = s.includes(';') ? s.slice(0, s.indexOf(';')) : s;
    return name === '.' || name === '..';
  });
}

const TOKENS = [
  'a',
  'v1',
  'admin',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '.%2e',
  ';x=1',
  '..;',
  '.;',
  '%2f',
  '%2F',
  '%5c',
  '%25',
  '%252e',
  '%61',
  '%7E',
  '%00',
  '%C0%AE',
  '%c3%a9',
  '%zz',
  '',
  'b;c',
  '~',
  '%32',
  '%65',
  '%25%32%65',
  '2e',
];
const paths = fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 6 }).map((parts) => '/' + parts.join(fc.sample(fc.constantFrom('/', ''), 1)[0]));
const pathsWithSlashes = fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 6 }).map((parts) => '/' + parts.join('/'));

describe('normalizePath', () => {
  it('refuses every path in which a decoding app would find a dot segment', () => {
    fc.assert(
      fc.property(fc.oneof(paths, pathsWithSlashes), (p) => {
        if (hasDotSegment(p)) expect(typeof normalizePath(p), p).not.toBe('string');
      }),
      { numRuns: 3000 },
    );
  });

  it('an app that decodes twice finds no dot segment in an accepted path', () => {
    fc.assert(
      fc.property(fc.oneof(paths, pathsWithSlashes), (p) => {
        if (typeof normalizePath(p) !== 'string') return;
        let once: string;
        try {
          once = decodeURIComponent(p);
        } catch {
          return;
        }
        expect(hasDotSegment(once), p).toBe(false);
      }),
      { numRuns: 5000 },
    );
  });

  it('accepted paths resolve, for a decoding app, to what the normal form says', () => {
    fc.assert(
      fc.property(fc.oneof(paths, pathsWithSlashes), (p) => {
        const n = normalizePath(p);
        if (typeof n !== 'string') return;
        const ref = referenceResolve(p);
        if (ref === null) return; // the reference cannot decode it (e.g. %2f-joined odd bytes)
        expect(referenceResolve(n), p).toBe(ref);
        expect(normalizePath(n), p).toBe(n); // idempotent
      }),
      { numRuns: 3000 },
    );
  });

  it('the reported bypasses never pass a /v1/* rule', () => {
    const authz = new Authorizer([{ from: null, paths: ['/v1/*'], methods: null }]);
    for (const p of [
      '/v1/..;/admin',
      '/v1/.;/admin',
      '/v1/%2e%2e;/admin',
      '/v1/%252e%252e/admin',
      '/v1/%25%32%65%25%32%65/admin',
      '/v1/%C0%AE%C0%AE/admin',
      '/v1/..%00/admin',
      '/v1/%2e%2e%2fadmin',
      '/v1/..\\admin',
    ]) {
      const n = normalizePath(p);
      expect(typeof n === 'string' && authz.check(null, n, 'GET') >= 0, p).toBe(false);
    }
  });

  it('keeps ordinary paths as they are and gives the matching form of the rest', () => {
    expect(normalizePath('/v1/users/42')).toBe('/v1/users/42');
    expect(normalizePath('/v1/%75sers;jsessionid=1/x')).toBe('/v1/users/x');
    expect(normalizePath('/v1//a///b')).toBe('/v1/a/b');
    expect(normalizePath('/a%2fb')).toBe('/a%2Fb');
    expect(normalizePath('/caf%C3%A9')).toBe('/caf%C3%A9');
    expect(normalizePath('/.well-known/x')).toBe('/.well-known/x');
    expect(normalizePath('/a/%zz')).toEqual({ refused: 'malformed percent-encoding in path' });
    expect(normalizePath('/a/%25')).toBe('/a/%25'); // a literal percent sign
    expect(normalizePath('/a/%2541')).toEqual({ refused: 'double percent-encoding in path' });
    expect(normalizePath('/%25%61a')).toEqual({ refused: 'double percent-encoding in path' }); // found by the property test
    expect(normalizePath('/v1/%25%32%65%25%32%65/admin')).toEqual({ refused: 'double percent-encoding in path' });
  });

  it('decided (README, "Paths"): dot-dot with a space and fullwidth dots are ordinary names, as for Envoy, nginx, Tomcat, Jetty and Spring', () => {
    expect(normalizePath('/v1/..%20/admin')).toBe('/v1/..%20/admin');
    expect(normalizePath('/v1/%EF%BC%8E%EF%BC%8E/admin')).toBe('/v1/%EF%BC%8E%EF%BC%8E/admin');
  });
});

describe('regexes are accepted only in linear-time syntax', () => {
  it('refuses a backreference and a lookahead with a clear problem', () => {
    const cfg = minimal();
    const routes = [
      { match: { path_regex: '^/(a)\\1$' }, cluster: 'api' },
      { match: { headers: { 'x-v': { regex: '(?=a)a' } } }, cluster: 'api' },
      { match: { path_regex: '^/(a+)+$' }, cluster: 'api' },
    ];
    (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['routes'] = routes;
    const problems = listed(compileConfig(cfg, OPTS));
    expect(problems).toEqual([
      'listeners[0].routes[0].match.path_regex: uses syntax that cannot be matched in linear time (backreferences, lookahead/lookbehind): rewrite it without them',
      'listeners[0].routes[1].match.headers.x-v.regex: uses syntax that cannot be matched in linear time (backreferences, lookahead/lookbehind): rewrite it without them',
    ]);
  });

  it('the start-up self-test finds the linear engine in effect here', () => {
    expect(linearRegexUnavailable()).toBeNull();
  });

  // A V8 that ignores the flags (a Node other than the one package.json names) must not backtrack
  // silently: the self-test notices and every regex in a config is refused. Run in a child
  // process on the built code, with the flags turned back off after outrigger turned them on.
  for (const [flag, why] of [
    ['--no-enable-experimental-regexp-engine', "the 'l' flag does not compile"],
    ['--no-enable-experimental-regexp-engine-on-excessive-backtracks', 'does not switch to its linear regex engine on excessive backtracking'],
  ] as const) {
    it(`without V8's linear engine (${flag}) a config with a regex is refused, one without is accepted`, () => {
      const script = `
        import v8 from 'node:v8';
        import { enableLinearRegex } from './dist/src/config/regex.js';
        import { compileConfig } from './dist/src/config/load.js';
        enableLinearRegex();
        v8.setFlagsFromString(${JSON.stringify(flag)});
        const opts = { version: 1, availableParallelism: 4, enableTestHooks: false };
        const cfg = (routes) => ({ listeners: [{ name: 'out', address: '127.0.0.1:15001', routes }], clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }] }] });
        const plain = compileConfig(cfg([{ match: { path_prefix: '/v1/' }, cluster: 'api' }]), opts);
        const regex = compileConfig(cfg([{ match: { path_regex: '^/v[0-9]+/' }, cluster: 'api' }, { match: { headers: { 'x-a': { regex: 'a+' } } }, cluster: 'api' }]), opts);
        console.log(JSON.stringify({ plain: plain.ok, problems: regex.ok ? [] : regex.problems.map((p) => p.path + ': ' + p.message) }));
      `;
      const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })) as {
        plain: boolean;
        problems: string[];
      };
      expect(out.plain).toBe(true);
      expect(out.problems).toHaveLength(2);
      expect(out.problems[0]).toMatch(/^listeners\[0\]\.routes\[0\]\.match\.path_regex: regexes are refused on this runtime: /);
      expect(out.problems[1]).toMatch(/^listeners\[0\]\.routes\[1\]\.match\.headers\.x-a\.regex: regexes are refused on this runtime: /);
      for (const p of out.problems) expect(p).toContain(why);
    });
  }
});

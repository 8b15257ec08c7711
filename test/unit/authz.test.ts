// Inbound authorization (src/dataplane/authz.ts): the first rule that allows wins, every field of
// a rule must match, identities match segment-wise with the trust domain exact, paths exactly or
// by a `*` prefix, methods exactly; anything no rule allows is denied, and decisions are counted.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuthzRuleSpec } from '../../src/config/types.js';
import { Authorizer } from '../../src/dataplane/authz.js';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const OPS = 'spiffe://cluster.local/ns/ops/sa/admin';

function rule(r: Partial<AuthzRuleSpec>): AuthzRuleSpec {
  return { from: null, paths: null, methods: null, ...r };
}

describe('Authorizer', () => {
  it('returns the index of the first rule that allows, and counts it', () => {
    const a = new Authorizer([
      rule({ from: [OPS] }),
      rule({ paths: ['/public/*'] }),
      rule({ from: [WEB], paths: ['/public/*'] }), // shadowed by rule 1 for /public/*
      rule({ from: [WEB] }),
    ]);
    expect(a.check(OPS, '/public/x', 'GET')).toBe(0);
    expect(a.check(WEB, '/public/x', 'GET')).toBe(1);
    expect(a.check(WEB, '/private', 'GET')).toBe(3);
    expect(a.check(null, '/public/', 'POST')).toBe(1);
    expect(a.allowed).toEqual([1, 2, 0, 1]);
    expect(a.denied).toBe(0);
  });

  it('denies by default once a policy exists, and counts denials', () => {
    const a = new Authorizer([rule({ from: [WEB], paths: ['/v1/*'], methods: ['GET'] })]);
    expect(a.check(OPS, '/v1/x', 'GET')).toBe(-1);
    expect(a.check(WEB, '/v2/x', 'GET')).toBe(-1);
    expect(a.check(WEB, '/v1/x', 'DELETE')).toBe(-1);
    expect(a.check(null, '/v1/x', 'GET')).toBe(-1);
    expect(a.denied).toBe(4);
    expect(a.check(WEB, '/v1/x', 'GET')).toBe(0);
    const none = new Authorizer([]);
    expect(none.check(WEB, '/', 'GET')).toBe(-1);
    expect(none.denied).toBe(1);
  });

  it('a rule allows only when every field it has matches; omitted fields match anything', () => {
    const a = new Authorizer([rule({ from: [WEB], methods: ['GET', 'HEAD'] })]);
    expect(a.check(WEB, '/any/path', 'HEAD')).toBe(0);
    expect(a.check(WEB, '/any/path', 'POST')).toBe(-1);
    expect(new Authorizer([rule({})]).check(null, '/x', 'PATCH')).toBe(0);
  });

  it('methods match exactly (compiled upper-case; a lower-case request method is a different method)', () => {
    const a = new Authorizer([rule({ methods: ['GET'] })]);
    expect(a.check(WEB, '/', 'GET')).toBe(0);
    expect(a.check(WEB, '/', 'get')).toBe(-1);
    expect(a.check(WEB, '/', 'GETX')).toBe(-1);
  });

  it('paths: exact entries match exactly; entries ending in * match by prefix', () => {
    const a = new Authorizer([rule({ paths: ['/health', '/v1/*', '/static*'] })]);
    const allowed = ['/health', '/v1/', '/v1/users', '/v1/a/b/c', '/static', '/static/app.js', '/staticfoo'];
    const denied = ['/health/', '/healthz', '/Health', '/v1', '/v2/users', '/', '/x/v1/users'];
    for (const p of allowed) expect(a.check(null, p, 'GET'), p).toBe(0);
    for (const p of denied) expect(a.check(null, p, 'GET'), p).toBe(-1);
  });

  it('identities: exact IDs, and patterns segment-wise with the trust domain exact', () => {
    const a = new Authorizer([rule({ from: [WEB, 'spiffe://cluster.local/ns/ops/*', 'spiffe://cluster.local/ns/*/sa/batch'] })]);
    const allowed = [WEB, OPS, 'spiffe://cluster.local/ns/ops/sa/a/b', 'spiffe://cluster.local/ns/prod/sa/batch'];
    const denied = [
      'spiffe://cluster.local/ns/default/sa/web2',
      'spiffe://cluster.local/ns/default/sa/we',
      'spiffe://cluster.local/ns/ops', // "*" last: one or more segments under ns/ops
      'spiffe://cluster.local/ns/opsx/sa/admin', // whole segments only
      'spiffe://other.domain/ns/ops/sa/admin', // trust domain exact
      'spiffe://cluster.local.evil/ns/ops/sa/admin',
      'spiffe://cluster.local/ns/prod/sa/batch/x', // inner "*" is exactly one segment, and batch is last
      'spiffe://cluster.local/ns/a/b/sa/batch',
      'SPIFFE://cluster.local/ns/default/sa/web',
    ];
    for (const id of allowed) expect(a.check(id, '/', 'GET'), id).toBe(0);
    for (const id of denied) expect(a.check(id, '/', 'GET'), id).toBe(-1);
  });

  it('a rule with `from` never allows a peer without an identity', () => {
    const a = new Authorizer([rule({ from: ['spiffe://cluster.local/*'] })]);
    expect(a.check(null, '/', 'GET')).toBe(-1);
    expect(a.check('', '/', 'GET')).toBe(-1);
  });

  it('agrees with a direct reading of the rules (property)', () => {
    const seg = fc.constantFrom('a', 'b', 'v1', 'x');
    const path = fc.array(seg, { maxLength: 3 }).map((s) => '/' + s.join('/'));
    const pathEntry = fc.oneof(
      path,
      path.map((p) => p + '*'),
    );
    const ids = ['spiffe://td/ns/a/sa/x', 'spiffe://td/ns/b/sa/x', 'spiffe://td2/ns/a/sa/x'];
    const method = fc.constantFrom('GET', 'POST', 'PUT');
    const ruleArb: fc.Arbitrary<AuthzRuleSpec> = fc.record({
      from: fc.option(fc.subarray(ids, { minLength: 1 }), { nil: null }),
      paths: fc.option(fc.array(pathEntry, { minLength: 1, maxLength: 3 }), { nil: null }),
      methods: fc.option(fc.subarray(['GET', 'POST', 'PUT'], { minLength: 1 }), { nil: null }),
    });
    const pathOk = (entries: readonly string[], p: string): boolean => entries.some((e) => (e.endsWith('*') ? p.startsWith(e.slice(0, -1)) : p === e));
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 4 }), fc.option(fc.constantFrom(...ids), { nil: null }), path, method, (rules, id, p, m) => {
        const expected = rules.findIndex(
          (r) =>
            (r.from === null || (id !== null && r.from.includes(id))) &&
            (r.paths === null || pathOk(r.paths, p)) &&
            (r.methods === null || r.methods.includes(m)),
        );
        expect(new Authorizer(rules).check(id, p, m)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});

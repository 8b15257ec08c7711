import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerCertificate } from 'node:tls';
import {
  compileIdentityPattern,
  compileIdentityPatterns,
  identityPatternProblem,
  isValidTrustDomain,
  matchesIdentity,
  parseSpiffeId,
  parseSubjectAltNames,
  peerSpiffeId,
  spiffeIdProblem,
  tryParseSpiffeId,
  verifyPeerIdentity,
  workloadId,
} from '../../src/tls/spiffe.js';
import type { Ca } from '../../src/tls/ca.js';
import { issueLeaf } from '../../src/tls/ca.js';
import { makeCa, removeTempDirs } from './helpers.js';

const peer = (subjectaltname: string): PeerCertificate => ({ subjectaltname }) as PeerCertificate;

describe('SPIFFE IDs', () => {
  it('parses workload IDs and exposes ns/sa', () => {
    const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/web');
    expect(id).toEqual({
      uri: 'spiffe://cluster.local/ns/default/sa/web',
      trustDomain: 'cluster.local',
      path: '/ns/default/sa/web',
      namespace: 'default',
      serviceAccount: 'web',
    });
    expect(workloadId('td', 'a', 'b')).toBe('spiffe://td/ns/a/sa/b');
  });

  it('accepts general paths and trust-domain IDs without ns/sa', () => {
    expect(parseSpiffeId('spiffe://example.org/payments/api')).toMatchObject({ path: '/payments/api', namespace: null, serviceAccount: null });
    expect(parseSpiffeId('spiffe://example.org')).toMatchObject({ trustDomain: 'example.org', path: '' });
    expect(parseSpiffeId('spiffe://td/ns/a/sa/b/extra').namespace).toBeNull();
  });

  it.each([
    ['http://td/ns/a', 'must start with'],
    ['SPIFFE://td/x', 'must start with'],
    ['spiffe://', 'trust domain is empty'],
    ['spiffe:///x', 'trust domain is empty'],
    ['spiffe://Example.org/x', 'trust domain'],
    ['spiffe://td:8080/x', 'trust domain'],
    ['spiffe://user@td/x', 'trust domain'],
    ['spiffe://td/', 'empty segment'],
    ['spiffe://td/a//b', 'empty segment'],
    ['spiffe://td/a/../b', '".."'],
    ['spiffe://td/a/./b', '"."'],
    ['spiffe://td/a?x=1', 'path segment'],
    ['spiffe://td/a#f', 'path segment'],
    ['spiffe://td/a%20b', 'path segment'],
    ['spiffe://td/a,b', 'path segment'],
  ])('rejects %s', (s, why) => {
    expect(tryParseSpiffeId(s)).toBeNull();
    expect(spiffeIdProblem(s)).toContain(why);
    expect(() => parseSpiffeId(s)).toThrow(/is not a SPIFFE ID/);
  });

  it('limits lengths', () => {
    expect(isValidTrustDomain('a'.repeat(255))).toBe(true);
    expect(isValidTrustDomain('a'.repeat(256))).toBe(false);
    expect(isValidTrustDomain('')).toBe(false);
    expect(isValidTrustDomain('under_score-dash.dot9')).toBe(true);
    expect(tryParseSpiffeId(`spiffe://td/${'a'.repeat(2040)}`)).toBeNull();
  });
});

describe('identity patterns (one segment-wise matcher, trust domain exact)', () => {
  it('matches exact IDs and whole-segment "*" wildcards', () => {
    const ns = compileIdentityPattern('spiffe://td/ns/x/*');
    expect(ns('spiffe://td/ns/x/sa/web')).toBe(true); // a last "*": one or more segments
    expect(ns('spiffe://td/ns/x/sa')).toBe(true);
    expect(ns('spiffe://td/ns/x')).toBe(false);
    expect(ns('spiffe://td/ns/xy/sa/web')).toBe(false);
    expect(ns('spiffe://other/ns/x/sa/web')).toBe(false);
    expect(matchesIdentity('spiffe://td/*', 'spiffe://td/anything/at/all')).toBe(true);
    expect(matchesIdentity('spiffe://td/*', 'spiffe://td')).toBe(false);
    expect(matchesIdentity('spiffe://td/ns/a/sa/b', 'spiffe://td/ns/a/sa/b')).toBe(true);
    expect(matchesIdentity('spiffe://td/ns/a/sa/b', 'spiffe://td/ns/a/sa/bb')).toBe(false);
    const any = compileIdentityPatterns(['spiffe://td/ns/a/sa/b', 'spiffe://td/ns/c/*']);
    expect(any('spiffe://td/ns/c/sa/z')).toBe(true);
    expect(any('spiffe://td/ns/a/sa/z')).toBe(false);
    expect(any('spiffe://td/ns/a/sa/b')).toBe(true);
  });

  it('a "*" in the middle is exactly one segment', () => {
    const web = compileIdentityPattern('spiffe://td/ns/*/sa/web');
    expect(web('spiffe://td/ns/prod/sa/web')).toBe(true);
    expect(web('spiffe://td/ns/dev/sa/web')).toBe(true);
    expect(web('spiffe://td/ns/a/b/sa/web')).toBe(false);
    expect(web('spiffe://td/ns/sa/web')).toBe(false);
    expect(web('spiffe://td/ns/prod/sa/webx')).toBe(false);
    expect(web('spiffe://td/ns/prod/sa/web/x')).toBe(false);
    const prodSa = compileIdentityPattern('spiffe://td/ns/prod/sa/*');
    expect(prodSa('spiffe://td/ns/prod/sa/api')).toBe(true);
    expect(prodSa('spiffe://td/ns/production/sa/api')).toBe(false);
    expect(compileIdentityPattern('spiffe://td/*/*/sa/*')('spiffe://td/a/b/sa/c')).toBe(true);
  });

  it('the attacks of issue 11: a "*" inside a segment or the trust domain is refused, so ns/x* cannot match ns/xy and td* cannot match td.evil', () => {
    expect(() => compileIdentityPattern('spiffe://td/ns/x*')).toThrow(/"\*" must be a whole path segment/);
    expect(() => compileIdentityPattern('spiffe://td*')).toThrow(/trust domain is matched exactly/);
    expect(() => compileIdentityPattern('spiffe://td*/ns/a')).toThrow(/trust domain is matched exactly/);
    // The nearest valid patterns stay inside their segment and trust domain.
    expect(matchesIdentity('spiffe://td/ns/x/*', 'spiffe://td/ns/xy/sa/a')).toBe(false);
    expect(matchesIdentity('spiffe://td/*', 'spiffe://td.evil/ns/a/sa/b')).toBe(false);
    expect(matchesIdentity('spiffe://td/*', 'spiffe://tdx/ns/a')).toBe(false);
  });

  it.each([
    ['spiffe://td/ns/x*', 'whole path segment'],
    ['spiffe://td/ns/*x/sa/b', 'whole path segment'],
    ['spiffe://td/ns/**', 'whole path segment'],
    ['spiffe://td*', 'trust domain'],
    ['spiffe://*', 'trust domain'],
    ['spiffe://*/ns/a', 'trust domain'],
    ['*', 'must start with'],
    ['spiffe://TD/x', 'trust domain'],
    ['spiffe://td/ns//*', 'empty segment'],
    ['spiffe://td/ns/*/', 'empty segment'],
    ['spiffe://td/../*', '".."'],
    ['spiffe://td/ns/a b', 'path segment'],
  ])('refuses pattern %s', (p, why) => {
    expect(identityPatternProblem(p)).toContain(why);
    expect(() => compileIdentityPattern(p)).toThrow(/identity pattern/);
  });

  const seg = fc.string({ unit: fc.constantFrom(...'abcXYZ019.-_'), minLength: 1, maxLength: 6 }).filter((s) => s !== '.' && s !== '..');
  const td = fc.string({ unit: fc.constantFrom(...'abz09.-_'), minLength: 1, maxLength: 10 });
  /** The reference model: segment lists compared one by one; a last "*" takes one or more. */
  const model = (pt: string, ps: readonly string[], it: string, is: readonly string[]): boolean => {
    if (pt !== it) return false;
    for (let i = 0; i < ps.length; i++) {
      if (ps[i] === '*' && i === ps.length - 1) return is.length >= ps.length;
      if (i >= is.length) return false;
      if (ps[i] !== '*' && ps[i] !== is[i]) return false;
    }
    return is.length === ps.length;
  };

  it('property: the matcher agrees with the segment model on random patterns and IDs', () => {
    const patSeg = fc.oneof({ weight: 3, arbitrary: seg }, { weight: 1, arbitrary: fc.constant('*') });
    fc.assert(
      fc.property(td, fc.array(patSeg, { maxLength: 5 }), td, fc.array(seg, { maxLength: 6 }), fc.boolean(), (pt, ps, it, is, related) => {
        // Half the time derive the ID from the pattern, so matches are common.
        const idSegs = related ? [...ps.map((s, i) => (s === '*' ? (is[i] ?? 'w') : s)), ...is.slice(ps.length, ps.length + (related ? 1 : 0))] : is;
        const idTd = related ? pt : it;
        const pattern = `spiffe://${pt}${ps.map((s) => `/${s}`).join('')}`;
        const id = `spiffe://${idTd}${idSegs.map((s) => `/${s}`).join('')}`;
        expect(identityPatternProblem(pattern)).toBeNull();
        expect(compileIdentityPattern(pattern)(id)).toBe(model(pt, ps, idTd, idSegs));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: the trust domain is exact — no pattern of one trust domain matches an ID of another', () => {
    const patSeg = fc.oneof(seg, fc.constant('*'));
    fc.assert(
      fc.property(td, td, fc.array(patSeg, { maxLength: 4 }), fc.array(seg, { maxLength: 5 }), (pt, it, ps, is) => {
        fc.pre(pt !== it);
        const m = compileIdentityPattern(`spiffe://${pt}${ps.map((s) => `/${s}`).join('')}`);
        expect(m(`spiffe://${it}${is.map((s) => `/${s}`).join('')}`)).toBe(false);
        // ... including trust domains that extend it (td vs td.evil, td-x)
        expect(m(`spiffe://${pt}.evil${is.map((s) => `/${s}`).join('')}`)).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('property: "*" glued to other characters is always refused, never compiled into a prefix match', () => {
    fc.assert(
      fc.property(td, fc.array(seg, { maxLength: 3 }), seg, fc.boolean(), (t, segs, s, before) => {
        const glued = before ? `*${s}` : `${s}*`;
        expect(identityPatternProblem(`spiffe://${t}${segs.map((x) => `/${x}`).join('')}/${glued}`)).toMatch(/whole path segment/);
        expect(identityPatternProblem(`spiffe://${t}*${segs.map((x) => `/${x}`).join('')}`)).toMatch(/trust domain/);
      }),
    );
  });
});

describe('subject alt names', () => {
  it('splits node SAN strings, including JSON-quoted values with commas', () => {
    expect(parseSubjectAltNames('DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:127.0.0.1')).toEqual([
      ['DNS', 'a.example'],
      ['URI', 'spiffe://td/ns/a/sa/b'],
      ['IP Address', '127.0.0.1'],
    ]);
    expect(parseSubjectAltNames('URI:"spiffe://td/a,b", DNS:x')).toEqual([
      ['URI', 'spiffe://td/a,b'],
      ['DNS', 'x'],
    ]);
    expect(parseSubjectAltNames('DNS:"a\\"b, URI:spiffe://td/evil", URI:spiffe://td/real')).toEqual([
      ['DNS', 'a"b, URI:spiffe://td/evil'],
      ['URI', 'spiffe://td/real'],
    ]);
  });

  it('peerSpiffeId wants exactly one valid spiffe URI SAN', () => {
    expect(peerSpiffeId(peer('DNS:x, URI:spiffe://td/ns/a/sa/b'))).toBe('spiffe://td/ns/a/sa/b');
    expect(peerSpiffeId(peer('URI:spiffe://td/a, URI:spiffe://td/b'))).toBeNull();
    expect(peerSpiffeId(peer('URI:https://td/a'))).toBeNull();
    expect(peerSpiffeId(peer('URI:"spiffe://td/a,b"'))).toBeNull();
    expect(peerSpiffeId(peer('DNS:"x, URI:spiffe://td/forged"'))).toBeNull();
    expect(peerSpiffeId({} as PeerCertificate)).toBeNull();
    expect(peerSpiffeId(null)).toBeNull();
  });

  it('property: node-style SAN strings split back into their entries', () => {
    const value = fc.string({ unit: fc.constantFrom('a', 'b', ':', '/', ',', ' ', '"', '\\', '.', '\u0001'), minLength: 1, maxLength: 20 });
    const entry = fc.tuple(fc.constantFrom('DNS', 'URI', 'email', 'IP Address'), value);
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 5 }), (entries) => {
        // node quotes a value with JSON syntax when it holds ",", quotes, backslashes or control bytes
        // eslint-disable-next-line no-control-regex -- matching control bytes is the point
        const enc = entries.map(([t, v]) => `${t}:${/[,"\\\u0000-\u001f]/.test(v) ? JSON.stringify(v) : v}`).join(', ');
        expect(parseSubjectAltNames(enc)).toEqual(entries);
      }),
    );
  });

  it('property: valid IDs parse, and a namespace wildcard matches exactly the IDs under it', () => {
    const seg = fc.string({ unit: fc.constantFrom(...'abcXYZ019.-_'), minLength: 1, maxLength: 8 }).filter((s) => s !== '.' && s !== '..');
    const td = fc.string({ unit: fc.constantFrom(...'abz09.-_'), minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(td, fc.array(seg, { maxLength: 5 }), td, seg, seg, (t, segs, t2, ns, ns2) => {
        const id = `spiffe://${t}${segs.map((s) => `/${s}`).join('')}`;
        const parsed = parseSpiffeId(id);
        expect(parsed.trustDomain).toBe(t);
        expect(`spiffe://${parsed.trustDomain}${parsed.path}`).toBe(id);
        const m = compileIdentityPattern(`spiffe://${t}/ns/${ns}/*`);
        const candidate = `spiffe://${t2}/ns/${ns2}/sa/${segs[0] ?? 'x'}`;
        expect(m(candidate)).toBe(t === t2 && ns === ns2);
      }),
    );
  });
});

describe('certificates', () => {
  let ca: Ca;
  beforeAll(async () => {
    ca = await makeCa('td');
  });
  afterAll(removeTempDirs);

  it('reads the ID from X509Certificate and from a PeerCertificate alike', () => {
    const leaf = new X509Certificate(issueLeaf(ca, { identity: 'spiffe://td/ns/a/sa/b' }).certPem);
    expect(peerSpiffeId(leaf)).toBe('spiffe://td/ns/a/sa/b');
    expect(peerSpiffeId(peer(leaf.subjectAltName ?? ''))).toBe('spiffe://td/ns/a/sa/b');
    expect(verifyPeerIdentity(leaf, 'spiffe://td/ns/a/sa/b')).toBeNull();
    expect(verifyPeerIdentity(leaf, ['spiffe://td/ns/x/sa/y', 'spiffe://td/ns/a/*'])).toBeNull();
    expect(verifyPeerIdentity(leaf, 'spiffe://td/ns/a/sa/c')).toBe('peer is spiffe://td/ns/a/sa/b, expected spiffe://td/ns/a/sa/c');
    expect(verifyPeerIdentity(ca.cert, 'spiffe://td/ns/a/sa/c')).toBe('peer is spiffe://td, expected spiffe://td/ns/a/sa/c');
    expect(verifyPeerIdentity(peer('DNS:x'), 'spiffe://td/ns/a/sa/c')).toMatch(/no SPIFFE ID/);
  });
});

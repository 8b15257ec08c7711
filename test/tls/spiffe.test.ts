import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerCertificate } from 'node:tls';
import {
  compileIdentityPattern,
  compileIdentityPatterns,
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

describe('identity patterns', () => {
  it('matches exact IDs and "prefix/*" wildcards', () => {
    const ns = compileIdentityPattern('spiffe://td/ns/x/*');
    expect(ns('spiffe://td/ns/x/sa/web')).toBe(true);
    expect(ns('spiffe://td/ns/x')).toBe(false);
    expect(ns('spiffe://td/ns/xy/sa/web')).toBe(false);
    expect(ns('spiffe://other/ns/x/sa/web')).toBe(false);
    expect(matchesIdentity('spiffe://td/*', 'spiffe://td/anything/at/all')).toBe(true);
    expect(matchesIdentity('spiffe://td/ns/a/sa/b', 'spiffe://td/ns/a/sa/b')).toBe(true);
    expect(matchesIdentity('spiffe://td/ns/a/sa/b', 'spiffe://td/ns/a/sa/bb')).toBe(false);
    const any = compileIdentityPatterns(['spiffe://td/ns/a/sa/b', 'spiffe://td/ns/c/*']);
    expect(any('spiffe://td/ns/c/sa/z')).toBe(true);
    expect(any('spiffe://td/ns/a/sa/z')).toBe(false);
  });

  it.each(['spiffe://td/ns/*/sa/b', 'spiffe://td/ns/x*', '*', 'spiffe://*', 'spiffe://TD/x'])('refuses pattern %s', (p) => {
    expect(() => compileIdentityPattern(p)).toThrow(/identity pattern/);
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
    const value = fc.string({ unit: fc.constantFrom('a', 'b', ':', '/', ',', ' ', '"', '\\', '.', '\u0001') , minLength: 1, maxLength: 20 });
    const entry = fc.tuple(fc.constantFrom('DNS', 'URI', 'email', 'IP Address'), value);
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 5 }), (entries) => {
        // node quotes a value with JSON syntax when it holds ",", quotes, backslashes or control bytes
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

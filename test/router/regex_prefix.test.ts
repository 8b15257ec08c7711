// regexLiteralPrefix: what it reads from common anchored sources, what it refuses, and (property)
// that every string a random regex matches starts with the prefix it reads.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { regexLiteralPrefix } from '../../src/dataplane/regex_prefix.js';

describe('regexLiteralPrefix', () => {
  /** Anchored sources and the literal prefix every string they match starts with. */
  const prefixes: Record<string, string> = {
    '^(?:/api/v[0-9]+/.*)$': '/api/v',
    '^(?:/users/[0-9]+)$': '/users/',
    '^(?:\\/a\\.b\\-c.*)$': '/a.b-c',
    '^/static/.*': '/static/',
    '^/exact$': '/exact',
    '^(?:/ab?c)$': '/a',
    '^(?:/ab*)$': '/a',
    '^(?:/ab+)$': '/a',
    '^(?:/ab{2})$': '/a',
    '^(?:/a\\d+)$': '/a',
    '^(?:/a(?:b|c))$': '/a',
    '^(?:/é/x)$': '/é/x',
  };

  it.each(Object.entries(prefixes))('%s → %s', (source, prefix) => {
    expect(regexLiteralPrefix(source)).toBe(prefix);
  });

  it.each([
    ['/api/.*', 'not anchored'],
    ['^(?:/a|/b)$', 'alternation in the group'],
    ['^/a|/b', 'alternation at the top'],
    ['^(?:/a)?$', 'the group is optional'],
    ['^(?:/a)(?:/b)$', 'the group does not span the pattern'],
    ['^(?:^/a)$', 'a second anchor'],
    ['^(?:(?:/a))$', 'a nested group first'],
    ['^(?:[/]a)$', 'a class first'],
    ['^(?:.a)$', 'any character first'],
    ['^(?:\\w+)$', 'a class escape first'],
  ])('%s → "" (%s)', (source) => {
    expect(regexLiteralPrefix(source)).toBe('');
  });

  it('property: every string the regex matches starts with the prefix', () => {
    const atom = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('a', 'b', '/', '\\/', '\\.', 'é', '-') },
      { weight: 1, arbitrary: fc.constantFrom('.', '[ab]', '[^a]', '\\d', '\\w', '[\\]a]') },
    );
    const quantified = fc.tuple(atom, fc.constantFrom('', '', '', '?', '*', '+', '{0,1}', '{1}', '*?')).map(([a, q]) => a + q);
    const seq: fc.Arbitrary<string> = fc.letrec<{ seq: string; group: string }>((tie) => ({
      seq: fc.array(fc.oneof({ weight: 5, arbitrary: quantified }, { weight: 1, arbitrary: tie('group') }), { maxLength: 5 }).map((xs) => xs.join('')),
      group: fc
        .tuple(fc.constantFrom('(?:', '('), fc.array(tie('seq'), { minLength: 1, maxLength: 2 }), fc.constantFrom(')', ')?', ')*', ')+'))
        .map(([open, alts, close]) => `${open}${alts.join('|')}${close}`),
    })).seq;
    const sourceArb = fc.oneof(
      seq.map((s) => `^(?:${s})$`),
      fc.array(seq, { minLength: 2, maxLength: 3 }).map((alts) => `^(?:${alts.join('|')})$`),
      seq.map((s) => `^${s}`),
      fc.tuple(seq, seq).map(([a, b]) => `^${a}|${b}`),
      fc.tuple(seq, seq).map(([a, b]) => `^(?:${a})${b}`),
    );
    const subject = fc.array(fc.constantFrom('a', 'b', '/', '.', 'é', '-', '1', ']'), { maxLength: 8 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(sourceArb, fc.array(subject, { minLength: 1, maxLength: 30 }), (source, subjects) => {
        const re = new RegExp(source);
        const prefix = regexLiteralPrefix(source);
        // Strings built from the prefix too, so that matches are common.
        for (const s of [...subjects, ...subjects.map((x) => prefix + x)]) {
          if (re.test(s)) expect(s.startsWith(prefix), `${source} matched ${JSON.stringify(s)}, prefix ${JSON.stringify(prefix)}`).toBe(true);
        }
      }),
      { numRuns: 3000, seed: 21 },
    );
  });
});

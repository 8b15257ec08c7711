// Config text has two YAML parsers (src/config/load.ts): js-yaml with a hand-written YAML 1.2 core
// schema builds the object fast, and `yaml`'s document model knows lines and words errors. They
// must mean the same thing: for every text js-yaml accepts, its object equals `yaml`'s, scalars
// at the edges of the core schema included (a property over number-like and bool-like strings),
// and parseConfigText's answer (problems with lines, warnings) is the one the `yaml` path gives.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDocument, stringify } from 'yaml';
import { configWithRoutes, type RouteTableKind } from '../../bench/micro/config_text.js';
import { fastParse, parseConfigText } from '../../src/config/load.js';
import { OPTS } from './helpers.js';

/** What `yaml` makes of the text (the options parseConfigText gives it), or 'refused'. */
function slowParse(text: string): unknown {
  const doc = parseDocument(text, { merge: true, uniqueKeys: true, prettyErrors: false });
  return doc.errors.length > 0 ? 'refused' : doc.toJS({ maxAliasCount: 100 });
}

/** Equal as data, with NaN, Infinity and -0 told apart from null and 0. */
function expectSame(text: string): void {
  const fast = fastParse(text);
  if (fast === undefined) return; // js-yaml refused (or a `!` sent it to the slow path): only the slow path answers
  expect(slowParse(text), text).not.toBe('refused');
  expect(fast, text).toStrictEqual(slowParse(text));
}

const docsExample = /^```yaml\n([\s\S]*?)^```$/m.exec(readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8'))?.[1] ?? '';

describe('js-yaml (fast path) and yaml (document model) read config text alike', () => {
  it.each([
    ['docs/config.md example', docsExample],
    ['DESIGN example fixture', readFileSync(new URL('../fixtures/design-example.yaml', import.meta.url), 'utf8')],
    ...(['path_prefix', 'path', 'host', 'mixed'] as RouteTableKind[]).map((k) => [`1000 routes, ${k}`, configWithRoutes(1000, k)]),
  ])('%s', (_name, text) => {
    expect(fastParse(text)).not.toBeUndefined();
    expectSame(text);
  });

  it('anchors, aliases and << merge keys', () => {
    const text = 'base: &b {connect_timeout_ms: 5, idle_timeout_ms: 6}\npool:\n  <<: *b\n  idle_timeout_ms: 7\nmany:\n  <<: [*b, {x: 1}]\nlist: [*b, *b]\n';
    expect(fastParse(text)).toStrictEqual({
      base: { connect_timeout_ms: 5, idle_timeout_ms: 6 },
      pool: { connect_timeout_ms: 5, idle_timeout_ms: 7 },
      many: { connect_timeout_ms: 5, idle_timeout_ms: 6, x: 1 },
      list: [
        { connect_timeout_ms: 5, idle_timeout_ms: 6 },
        { connect_timeout_ms: 5, idle_timeout_ms: 6 },
      ],
    });
    expectSame(text);
  });

  it.each([
    ['0b101'],
    ['+0x1F'],
    ['-0o7'],
    ['+.5'],
    ['1_000'],
    ['017'],
    ['0O17'],
    ['.NaN'],
    ['-.Inf'],
    ['+.inf'],
    ['-0'],
    ['1.'],
    ['~'],
    [''],
    ['Null'],
    ['nULL'],
    ['TRUE'],
    ['tRue'],
    ['yes'],
    ['off'],
    ['2026-12-04'],
    ['12:30:00'],
    ['"0x10"'],
    ["'true'"],
    ['|\n  two\n  lines'],
    ['>-\n  folded\n  text'],
  ])('the scalar %j', (scalar) => {
    expectSame(`v: ${scalar}\n`);
  });

  it('any scalar made of number-, bool- and null-like characters', () => {
    const chars = '0123456789.+-_eExXoObBaAfFiInNtTrRuUlLsS~ '.split('');
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...chars), { minLength: 1, maxLength: 8 }), (cs) => {
        expectSame(`v: ${cs.join('')}\nw: [${cs.join('')}]\n`);
      }),
      { numRuns: 3000 },
    );
  });

  it('any plain data, written as YAML by `yaml`', () => {
    const data = fc.jsonValue({ maxDepth: 4 });
    fc.assert(
      fc.property(data, (v) => {
        expectSame(stringify({ v }));
      }),
      { numRuns: 500 },
    );
  });

  it('texts js-yaml refuses and `yaml` reads are read by `yaml` (explicit tags go the slow way)', () => {
    expect(fastParse('v: !!binary aGk=\n')).toBeUndefined();
    expect(fastParse('v: !!float 1\n')).toBeUndefined();
    expect(fastParse('a: 1\na: 2\n')).toBeUndefined(); // duplicate keys: both refuse; `yaml` words it
    const r = parseConfigText('v: !!binary aGk=\n', OPTS);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]?.message).toMatch(/Buffer/);
  });
});

describe('parseConfigText on the fast path', () => {
  it('gives problems their lines from the document model (built only then)', () => {
    const text = 'listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {path_prefix: /}\n        cluster: nope\nclusters: []\n';
    expect(fastParse(text)).not.toBeUndefined();
    const r = parseConfigText(text, OPTS);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems).toContainEqual(expect.objectContaining({ path: 'listeners[0].routes[0].cluster', line: 6 }));
  });

  it('a syntax error is worded by `yaml`, with its line', () => {
    const r = parseConfigText('listeners:\n  - name: l\n   address: x\n', OPTS);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.problems[0]?.message).toMatch(/^syntax error: /);
      expect(r.problems[0]?.line).toBe(3);
    }
  });

  it('an empty text is "config is empty"', () => {
    const r = parseConfigText('# nothing\n', OPTS, 'x.yaml');
    expect(r).toEqual({ ok: false, problems: [{ path: '', message: 'config file "x.yaml" is empty', line: null }] });
  });
});

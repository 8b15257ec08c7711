// docs/config.md stays true: its full example (the first ```yaml block) is a valid config with no
// problem and no warning, and every key the schema knows is named in the reference.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblems, parseConfigText } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { OPTS } from './helpers.js';

const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');

function firstYamlBlock(markdown: string): string {
  const m = /^```yaml\n([\s\S]*?)^```$/m.exec(markdown);
  if (m === null || m[1] === undefined) expect.fail('docs/config.md has no ```yaml block');
  return m[1];
}

/** Every object key of the schema, as dotted paths (`clusters[].pool.idle_timeout_ms`). */
function schemaKeys(schema: z.core.$ZodType, at: string, out: Map<string, string>): void {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap();
    else if (s instanceof z.ZodPipe) s = s.in;
    else break;
  }
  if (s instanceof z.ZodObject) {
    for (const [k, child] of Object.entries(s.shape)) {
      const path = at === '' ? k : `${at}.${k}`;
      out.set(path, k);
      schemaKeys(child, path, out);
    }
  } else if (s instanceof z.ZodArray) schemaKeys(s.element, `${at}[]`, out);
  else if (s instanceof z.ZodRecord) schemaKeys(s.valueType, `${at}.*`, out);
  else if (s instanceof z.ZodUnion) for (const o of s.options as z.core.$ZodType[]) schemaKeys(o, at, out);
}

describe('docs/config.md', () => {
  it('opens with a full example that parses with no problem and no warning', () => {
    const text = firstYamlBlock(doc);
    const r = parseConfigText(text, OPTS, 'docs/config.md');
    if (!r.ok) expect.fail(`the example in docs/config.md has problems:\n${formatProblems(r.problems)}`);
    expect(r.warnings).toEqual([]);
    // It really is the full example: every top-level section and the mesh features are in it.
    expect(Object.keys(r.source).sort()).toEqual(['admin', 'clusters', 'listeners', 'node', 'tls']);
    const s = r.snapshot;
    expect(s.tls?.mode).toBe('ca');
    expect(s.node.randomSeed).toBe(42);
    expect(s.listeners.map((l) => [l.name, l.tls])).toEqual([
      ['outbound', null],
      ['inbound', 'mtls'],
    ]);
    expect(s.listeners[1]?.authorization).not.toBeNull();
    expect(s.listeners[0]?.rateLimit).not.toBeNull();
    expect(s.listeners[0]?.accessLog).not.toBeNull();
    const routes = s.listeners[0]?.routes ?? [];
    expect(routes.some((r) => r.retries !== null && r.rateLimit !== null && r.maxStreamDurationMs > 0)).toBe(true);
    expect(routes.some((r) => r.fault !== null)).toBe(true);
    const c = s.clusters[0];
    expect(c?.tls).not.toBeNull();
    expect(c?.healthCheck).not.toBeNull();
    expect(c?.outlier).not.toBeNull();
    expect(s.clusters[1]?.tls?.identities).toHaveLength(2);
  });

  it('names every key of the config schema', () => {
    const keys = new Map<string, string>();
    schemaKeys(configSchema, '', keys);
    expect(keys.size).toBeGreaterThan(80);
    const missing = [...keys].filter(([, k]) => !new RegExp('`[^`\\n]*\\b' + k + '\\b[^`\\n]*`').test(doc)).map(([path]) => path);
    expect(missing).toEqual([]);
  });
});

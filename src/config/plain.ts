// Refuses values that are not plain JSON-like data before the schema sees them: YAML tags such
// as !!binary, !!set or timestamps (Buffers, Sets, Dates), and aliases that make a cycle.
// Pure; a config that passes this is a tree of objects, arrays, strings, numbers, booleans, null.
import type { ConfigPath, RawProblem } from './paths.js';

/** The problems, at most `limit` of them (the walk stops there). */
export function nonPlainProblems(value: unknown, limit = Infinity): RawProblem[] {
  const out: RawProblem[] = [];
  walk(value, [], new Set(), out, limit);
  return out;
}

function walk(value: unknown, path: ConfigPath, stack: Set<object>, out: RawProblem[], limit: number): void {
  if (out.length >= limit) return;
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint' || typeof value === 'symbol' || typeof value === 'function') {
      out.push({ path, message: `unsupported value (a ${typeof value})` });
    }
    return;
  }
  if (stack.has(value)) {
    out.push({ path, message: 'refers to itself (a cyclic alias)' });
    return;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) {
    const kind = (value as { constructor?: { name?: unknown } }).constructor?.name;
    out.push({
      path,
      message: `unsupported value (${typeof kind === 'string' ? `a ${kind}` : 'not plain data'}); use plain strings, numbers, lists and mappings`,
    });
    return;
  }
  stack.add(value);
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...path, i], stack, out, limit));
  else for (const [k, v] of Object.entries(value)) walk(v, [...path, k], stack, out, limit);
  stack.delete(value);
}

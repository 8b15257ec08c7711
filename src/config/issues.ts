// Turns zod issues into config problems with plain-English messages ("expected an integer, got
// "ten"", "unknown key "clustr" (did you mean "clusters"?)"). Reads the raw input to describe what
// was given and the schema to suggest known keys. Imports zod, paths.ts and suggest.ts.
import { z } from 'zod';
import type { ConfigPath, PathSegment, RawProblem } from './paths.js';
import { didYouMean } from './suggest.js';

type Issue = z.core.$ZodIssue;

/**
 * Map every issue (unions resolved to their best branch) to problems with absolute paths; stops
 * once `limit` problems are collected (a key per unknown key can be tens of thousands).
 */
export function issuesToProblems(issues: readonly Issue[], input: unknown, schema: z.core.$ZodType, limit = Infinity): RawProblem[] {
  const out: RawProblem[] = [];
  for (const issue of issues) {
    if (out.length >= limit) break;
    mapIssue(issue, [], input, schema, out, limit);
  }
  return out.slice(0, limit);
}

function mapIssue(issue: Issue, prefix: ConfigPath, input: unknown, schema: z.core.$ZodType, out: RawProblem[], limit: number): void {
  const path: PathSegment[] = [...prefix, ...issue.path.map(toSegment)];
  const value = valueAt(input, path);
  switch (issue.code) {
    case 'invalid_type': {
      if (value === undefined) out.push({ path, message: 'required' });
      else {
        const hint = issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean') ? ` (quote it: "${String(value)}")` : '';
        out.push({ path, message: `expected ${typeName(issue.expected)}, got ${describe(value)}${hint}` });
      }
      return;
    }
    case 'too_small':
      out.push({ path, message: sizeMessage(issue.origin, issue.minimum, issue.inclusive !== false, 'min') });
      return;
    case 'too_big':
      out.push({ path, message: sizeMessage(issue.origin, issue.maximum, issue.inclusive !== false, 'max') });
      return;
    case 'invalid_value': {
      const allowed = issue.values.map((v) => JSON.stringify(v));
      const head = allowed.length === 1 ? `must be ${allowed[0] ?? ''}` : `must be one of ${allowed.join(', ')}`;
      out.push({ path, message: `${head} (got ${describe(value)})` });
      return;
    }
    case 'unrecognized_keys': {
      const known = knownKeys(schema, path);
      for (const key of issue.keys) {
        if (out.length >= limit) return;
        out.push({ path: [...path, key], message: `unknown key "${key}"${didYouMean(key, known)}` });
      }
      return;
    }
    case 'invalid_union': {
      const branch = bestBranch(issue.errors);
      if (branch === null) out.push({ path, message: `${issue.message}${gotScalar(value)}` });
      else for (const sub of branch) mapIssue(sub, path, input, schema, out, limit);
      return;
    }
    case 'invalid_key': {
      const first = issue.issues[0];
      out.push({ path, message: `invalid key: ${first === undefined ? issue.message : first.message}` });
      return;
    }
    case 'invalid_format':
      out.push({ path, message: `${issue.message} (got ${describe(value)})` });
      return;
    default:
      out.push({ path, message: issue.message });
  }
}

/**
 * The union branch that explains the failure: branches whose type or literal did not match are out;
 * of the rest, the one with the fewest issues wins, and a tie means no branch is clearly meant.
 */
function bestBranch(errors: readonly (readonly Issue[])[]): readonly Issue[] | null {
  const typed = errors.filter((b) => !b.some((i) => (i.code === 'invalid_type' || i.code === 'invalid_value') && i.path.length === 0));
  if (typed.length === 0) return null;
  const min = Math.min(...typed.map((b) => b.length));
  const best = typed.filter((b) => b.length === min);
  return best.length === 1 ? (best[0] ?? null) : null;
}

/** `; got 1 (quote it: "1")` for a scalar that may have been meant as a string; '' otherwise. */
function gotScalar(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return `; got ${String(value)} (quote it: "${String(value)}")`;
  if (value === null || typeof value === 'string') return `; got ${describe(value)}`;
  return '';
}

function sizeMessage(origin: string, limit: number | bigint, inclusive: boolean, side: 'min' | 'max'): string {
  const n = Number(limit);
  if (origin === 'array' || origin === 'set') {
    return side === 'min' ? `must have at least ${n} item${n === 1 ? '' : 's'}` : `must have at most ${n} items`;
  }
  if (origin === 'string') {
    if (side === 'min') return n === 1 ? 'must not be empty' : `must be at least ${n} characters`;
    return `must be at most ${n} characters`;
  }
  const op = side === 'min' ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
  return `must be ${op} ${n}`;
}

function typeName(expected: string): string {
  switch (expected) {
    case 'int':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    case 'record':
      return 'a mapping';
    default:
      return expected;
  }
}

/** A short description of a given value for messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

function toSegment(key: PropertyKey): PathSegment {
  return typeof key === 'number' ? key : String(key);
}

/** The raw value at `path`, or undefined. */
export function valueAt(input: unknown, path: ConfigPath): unknown {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathSegment, unknown>)[seg];
  }
  return cur;
}

/** Keys of the object schema(s) found at `path`, for "did you mean" hints. */
function knownKeys(schema: z.core.$ZodType, path: ConfigPath): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(schema, path)) {
    if (s instanceof z.ZodObject) for (const k of Object.keys(s.shape)) keys.add(k);
  }
  return [...keys];
}

function schemasAt(schema: z.core.$ZodType, path: ConfigPath): z.core.$ZodType[] {
  const s = peel(schema);
  if (s instanceof z.ZodUnion) return s.options.flatMap((o: z.core.$ZodType) => schemasAt(o, path));
  const [head, ...rest] = path;
  if (head === undefined) return [s];
  if (s instanceof z.ZodObject && typeof head === 'string') {
    const child = (s.shape as Record<string, z.core.$ZodType | undefined>)[head];
    return child === undefined ? [] : schemasAt(child, rest);
  }
  if (s instanceof z.ZodArray && typeof head === 'number') return schemasAt(s.element, rest);
  if (s instanceof z.ZodRecord) return schemasAt(s.valueType, rest);
  return [];
}

function peel(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap();
    else if (s instanceof z.ZodPipe) s = s.in;
    else return s;
  }
}

// The config layer's front door: text (YAML or JSON) or an object → schema → cross checks →
// compiled, frozen Snapshot plus AdminSpec and warnings, or every problem with its path and line.
// Reads a file only in loadConfigFile; everything else is pure.
import { readFile } from 'node:fs/promises';
import { FAILSAFE_SCHEMA, Type, load as loadYaml, type LoadOptions } from 'js-yaml';
import { LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { crossCheck } from './checks.js';
import { engineLimitProblems } from './engine_limits.js';
import { compileAdmin, compileSnapshot, type AdminSpec, type CompileOptions } from './compile.js';
import { deepFreeze } from './freeze.js';
import { issuesToProblems } from './issues.js';
import { lineLookupFor, type LineLookup } from './lines.js';
import { formatPath, type RawProblem } from './paths.js';
import { nonPlainProblems } from './plain.js';
import { configSchema, type RawConfig } from './schema.js';
import type { ConfigProblem, ConfigWarning, Snapshot } from './types.js';
import { notBuiltWarnings } from './warnings.js';

export type { AdminSpec, CompileOptions } from './compile.js';
export type { LineLookup } from './lines.js';
export type { ConfigPath, PathSegment } from './paths.js';
export type { RawConfig } from './schema.js';
export { formatProblems } from './format.js';

export type LoadResult =
  | {
      ok: true;
      snapshot: Snapshot;
      admin: AdminSpec;
      warnings: ConfigWarning[];
      /** The validated config with every default applied (deeply frozen). */
      source: RawConfig;
    }
  | { ok: false; problems: ConfigProblem[] };

/** Extra bounds for text from an untrusted source (the admin API: admin/body_limits.ts). */
export interface ParseGuard {
  readonly maxAliasCount: number;
  /**
   * A problem that refuses the parsed document before it is converted (size, depth, duplicate
   * keys), or null. The guarded document is parsed with `uniqueKeys: false` (yaml's own check
   * compares each key with every earlier one: quadratic), so this check must refuse duplicates.
   */
  check(doc: Document, lineOf: (node: Node | null | undefined) => number | null): ConfigProblem | null;
  /** The problem message for a YAML syntax error. */
  syntaxMessage(message: string): string;
}

/**
 * Parse YAML or JSON text and compile it.
 *
 * Two YAML parsers, one meaning. js-yaml (YAML 1.2 core schema plus `<<` merge keys, the same
 * schema as the `yaml` options below) builds the object about 20× faster than `yaml`'s document
 * model: 1000 routes parse in ~3 ms instead of ~50 ms. The document model is what knows lines, so
 * it is built only when a line is asked for (a problem or a warning to report), when js-yaml
 * refuses the text (the `yaml` path then words the syntax error), and always for untrusted text
 * (`guard`, the admin API), whose size, depth and aliases are checked on the document before
 * anything is converted. test/config/yaml_parsers.test.ts holds the two parsers to the same result.
 */
export function parseConfigText(text: string, opts: CompileOptions, filename?: string, guard?: ParseGuard): LoadResult {
  if (guard === undefined) {
    const obj = fastParse(text);
    if (obj !== undefined && obj !== null) return compileConfig(obj, opts, lazyLineLookup(text));
  }
  return parseWithDocument(text, opts, filename, guard);
}

// The YAML 1.2 core schema exactly as `yaml` reads it, written out because js-yaml's own types
// differ at the edges (its integers also take 0b101, +0x1F and -0o7; it refuses +.5 as a float).
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT = /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/;
const FLOAT = /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const scalar = (tag: string, re: RegExp, construct: (s: string) => unknown): Type =>
  new Type(`tag:yaml.org,2002:${tag}`, {
    kind: 'scalar',
    resolve: (s: string | null) => re.test(s ?? ''),
    construct: (s: string | null) => construct(s ?? ''),
  });
const FAST_SCHEMA = FAILSAFE_SCHEMA.extend({
  implicit: [
    scalar('null', NULL, () => null),
    scalar('bool', BOOL, (s) => s[0] === 't' || s[0] === 'T'),
    scalar('int', INT, (s) => (s.startsWith('0o') ? parseInt(s.slice(2), 8) : s.startsWith('0x') ? parseInt(s.slice(2), 16) : parseInt(s, 10))),
    scalar('float', FLOAT, (s) => (/nan$/i.test(s) ? NaN : /inf$/i.test(s) ? (s.startsWith('-') ? -Infinity : Infinity) : parseFloat(s))),
    // `<<` merge keys (yaml's `merge: true`); js-yaml's loader knows them by this tag.
    new Type('tag:yaml.org,2002:merge', { kind: 'scalar', resolve: (s: string | null) => s === '<<' || s === null }),
  ],
});

/**
 * js-yaml with the schema above, as it is: throws a YAMLException for text it refuses (and for
 * unknown explicit tags). For callers that decide about tags themselves (admin/body_limits.ts).
 */
export function fastLoad(text: string, options: Omit<LoadOptions, 'schema'> & { maxDepth?: number; maxTotalMergeKeys?: number } = {}): unknown {
  return loadYaml(text, { ...options, schema: FAST_SCHEMA });
}

/**
 * js-yaml with the schema above; undefined when it refuses the text, and for any text with a `!`
 * (an explicit tag may be there, and the two parsers read some tags differently).
 */
export function fastParse(text: string): unknown {
  if (text.includes('!')) return undefined;
  try {
    return fastLoad(text);
  } catch {
    return undefined;
  }
}

/**
 * Lines for problems and warnings from the `yaml` document, parsed on the first question only.
 * `uniqueKeys: false` for text whose duplicate keys were checked already (yaml's check is quadratic).
 */
export function lazyLineLookup(text: string, uniqueKeys = true): LineLookup {
  let lookup: LineLookup | undefined;
  return (path) => {
    if (lookup === undefined) {
      const lineCounter = new LineCounter();
      lookup = lineLookupFor(parseDocument(text, { lineCounter, merge: true, uniqueKeys, prettyErrors: false }), lineCounter);
    }
    return lookup(path);
  };
}

function parseWithDocument(text: string, opts: CompileOptions, filename?: string, guard?: ParseGuard): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: guard === undefined, prettyErrors: false });
  const lineOfOffset = (pos: readonly number[]): number | null => {
    const start = pos[0];
    return start === undefined ? null : lineCounter.linePos(start).line;
  };
  if (doc.errors.length > 0) {
    const message = (m: string): string => (guard === undefined ? `syntax error: ${m}` : guard.syntaxMessage(m));
    return fail(doc.errors.map((e) => ({ path: '', message: message(e.message), line: lineOfOffset(e.pos) })));
  }
  if (guard !== undefined) {
    const refused = guard.check(doc, (node) => {
      const start = node?.range?.[0];
      return start === undefined ? null : lineCounter.linePos(start).line;
    });
    if (refused !== null) return fail([refused]);
  }
  let obj: unknown;
  try {
    obj = doc.toJS({ maxAliasCount: guard?.maxAliasCount ?? 100 });
  } catch (err) {
    return fail([{ path: '', message: (err as Error).message, line: null }]);
  }
  if (obj === null || obj === undefined) {
    return fail([{ path: '', message: filename === undefined ? 'config is empty' : `config file "${filename}" is empty`, line: null }]);
  }
  const result = compileConfig(obj, opts, lineLookupFor(doc, lineCounter));
  if (!result.ok || doc.warnings.length === 0) return result;
  const yamlWarnings = doc.warnings.map((w) => ({ path: '', message: w.message, line: lineOfOffset(w.pos) }));
  return { ...result, warnings: [...yamlWarnings, ...result.warnings] };
}

/** Read and compile a config file; an unreadable file is one problem. */
export async function loadConfigFile(path: string, opts: CompileOptions): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return fail([{ path: '', message: `cannot read config file "${path}": ${(err as Error).message}`, line: null }]);
  }
  return parseConfigText(text, opts, path);
}

/**
 * Most problems reported for one config: each costs a line lookup and a "did you mean", and a
 * body of 60k unknown keys must not cost 60k of them (the rest is summed up in one last problem).
 */
export const MAX_PROBLEMS = 100;

/** Validate and compile a config object (e.g. a JSON body of PUT /config). */
export function compileConfig(obj: unknown, opts: CompileOptions, lines?: LineLookup): LoadResult {
  const lineOf: LineLookup = lines ?? (() => null);
  const withLine = (p: RawProblem): ConfigProblem => ({ path: formatPath(p.path), message: p.message, line: lineOf(p.path) });
  // One more than the cap is enough to know there are more.
  const odd = nonPlainProblems(obj, MAX_PROBLEMS + 1);
  if (odd.length > 0) return fail(dedupe(odd, withLine));
  const parsed = configSchema.safeParse(obj);
  const raw: RawProblem[] = parsed.success ? [] : issuesToProblems(parsed.error.issues, obj, configSchema, MAX_PROBLEMS + 1);
  raw.push(...crossCheck(obj, opts), ...engineLimitProblems(obj));
  if (!parsed.success || raw.length > 0) return fail(dedupe(raw, withLine));
  const source = deepFreeze(parsed.data);
  return {
    ok: true,
    snapshot: compileSnapshot(source, opts),
    admin: compileAdmin(source.admin),
    warnings: sortByLine(notBuiltWarnings(obj).map(withLine)),
    source,
  };
}

function fail(problems: ConfigProblem[]): LoadResult {
  return { ok: false, problems };
}

/** Distinct problems (path and message), at most MAX_PROBLEMS with their lines, then how many more. */
function dedupe(problems: readonly RawProblem[], withLine: (p: RawProblem) => ConfigProblem): ConfigProblem[] {
  const seen = new Set<string>();
  const distinct = problems.filter((p) => {
    const key = `${formatPath(p.path)}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const out = sortByLine(distinct.slice(0, MAX_PROBLEMS).map(withLine));
  const more = distinct.length - MAX_PROBLEMS;
  if (more > 0) out.push({ path: '', message: `and more problems: only the first ${MAX_PROBLEMS} are listed`, line: null });
  return out;
}

/** Document order where lines are known (stable; problems without a line keep their place at the end). */
function sortByLine(items: ConfigProblem[]): ConfigProblem[] {
  return items
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i)
    .map((x) => x.p);
}

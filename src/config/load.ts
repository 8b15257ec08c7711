// The config layer's front door: text (YAML or JSON) or an object → schema → cross checks →
// compiled, frozen Snapshot plus AdminSpec and warnings, or every problem with its path and line.
// Reads a file only in loadConfigFile; everything else is pure.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { crossCheck } from './checks.js';
import { compileAdmin, compileSnapshot, deepFreeze, type AdminSpec, type CompileOptions } from './compile.js';
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
  /** A problem that refuses the parsed document before it is converted (size, depth), or null. */
  check(doc: Document, lineOf: (node: Node | null | undefined) => number | null): ConfigProblem | null;
  /** The problem message for a YAML syntax error. */
  syntaxMessage(message: string): string;
}

/** Parse YAML or JSON text (JSON goes through the YAML parser too, so lines are known) and compile it. */
export function parseConfigText(text: string, opts: CompileOptions, filename?: string, guard?: ParseGuard): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: true, prettyErrors: false });
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

/** Validate and compile a config object (e.g. a JSON body of PUT /config). */
export function compileConfig(obj: unknown, opts: CompileOptions, lines?: LineLookup): LoadResult {
  const lineOf: LineLookup = lines ?? (() => null);
  const withLine = (p: RawProblem): ConfigProblem => ({ path: formatPath(p.path), message: p.message, line: lineOf(p.path) });
  const odd = nonPlainProblems(obj);
  if (odd.length > 0) return fail(dedupe(odd.map(withLine)));
  const parsed = configSchema.safeParse(obj);
  const raw: RawProblem[] = parsed.success ? [] : issuesToProblems(parsed.error.issues, obj, configSchema);
  raw.push(...crossCheck(obj, opts));
  if (!parsed.success || raw.length > 0) return fail(dedupe(raw.map(withLine)));
  const source = deepFreeze(parsed.data);
  return {
    ok: true,
    snapshot: compileSnapshot(source, opts),
    admin: compileAdmin(source.admin),
    warnings: sortByLine(notBuiltWarnings(obj).map(withLine)),
    source,
  };
}

/** One problem per line: `listeners[0].routes[2].cluster: unknown cluster "ap" (line 14)`. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${p.path === '' ? '' : `${p.path}: `}${p.message}${p.line === null ? '' : ` (line ${p.line})`}`).join('\n');
}

function fail(problems: ConfigProblem[]): LoadResult {
  return { ok: false, problems };
}

function dedupe(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const out = problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return sortByLine(out);
}

/** Document order where lines are known (stable; problems without a line keep their place at the end). */
function sortByLine(items: ConfigProblem[]): ConfigProblem[] {
  return items
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i)
    .map((x) => x.p);
}

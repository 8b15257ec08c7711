// Bounds on the main-thread work a config body sent to the admin API can cause (PUT /config,
// POST /config/validate). A linear scan of the text first refuses flow nesting deeper than
// MAX_DEPTH and bodies with more than MAX_NODES items (lines, flow items). Then the body is read
// by js-yaml (config/load.ts fastLoad: ~1 µs per node, merge keys and nesting bounded by js-yaml
// itself, aliases shared rather than copied), and the object it builds (aliases counted every
// time they are used) is held to the same depth and size before the schema sees it. The `yaml`
// document model costs 10-20× more per node (and its duplicate-key check is quadratic in the
// keys of one mapping), so it is built only for small bodies (at most MAX_DOCUMENT_NODES): to
// read explicit tags (the two parsers differ there), to word a syntax error, and for the lines of
// problems. A larger body with a tag is refused, one with a syntax error gets js-yaml's words
// (with a line), and the problems of a larger body name their paths but no lines. Problems are
// capped (config/load.ts MAX_PROBLEMS). Limits break no real config: nothing in the format nests
// beyond ~10 levels, and 10 000 routes are 70-100k items.

import { isAlias, isCollection, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import { compileConfig, fastLoad, lazyLineLookup, parseConfigText, type CompileOptions, type LoadResult, type ParseGuard } from '../config/load.js';
import type { ConfigProblem } from '../config/types.js';

/** Deepest nesting of mappings and lists (the config format itself needs about 10). */
export const MAX_DEPTH = 64;
/** Most collection items (and lines) in one body, aliases counted each time they are used. */
export const MAX_NODES = 100_000;
/** Largest body (in scanned items) for which the `yaml` document model is built. */
export const MAX_DOCUMENT_NODES = 5_000;
/** js-yaml's own nesting bound (it counts a block-sequence entry twice); the exact check follows. */
const JS_YAML_MAX_DEPTH = 4 * MAX_DEPTH;
/** Alias expansions the yaml package allows (its `maxAliasCount`). */
export const MAX_ALIAS_COUNT = 100;

const DEPTH_MESSAGE = `nested deeper than ${MAX_DEPTH} levels of mappings and lists: refused by the admin API`;
const SIZE_MESSAGE = `more than ${MAX_NODES} values (aliases counted each time they are used): too large for the admin API`;

/** What scanConfigBody learns about a body. */
export interface BodyScan {
  /** The first limit exceeded, or null. */
  readonly problem: ConfigProblem | null;
  /** Items counted (an over-count: lines, flow openers, flow commas). */
  readonly nodes: number;
  /** Line of the first `!` at the start of a token (an explicit tag, probably), or null. */
  readonly tagLine: number | null;
}

/** scanConfigBody's problem only. */
export function scanConfigText(text: string): ConfigProblem | null {
  return scanConfigBody(text).problem;
}

/**
 * One pass over the text, no allocation: flow-collection depth (`[`/`{` at the start of a token,
 * outside quotes and comments), a count of items (lines, flow openers, flow commas) and where a
 * tag may start. Stops at the first limit exceeded. It over-counts rather than under-counts; the
 * exact check on the parsed tree follows.
 */
export function scanConfigBody(text: string): BodyScan {
  let tagLine: number | null = null;
  let depth = 0;
  let nodes = 0;
  const stop = (message: string, line: number): BodyScan => ({ problem: { path: '', message, line }, nodes, tagLine });
  let line = 1;
  let prev = 10; // '\n'
  let prevOpened = false; // prev was a `[`/`{` that opened a collection (not one inside a plain scalar)
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const tokenStart = prev === 10 || prev === 32 || prev === 9 || prev === 13 || prev === 44 || prev === 58 || prevOpened;
    prevOpened = false;
    switch (c) {
      case 10: // \n
        line++;
        if (++nodes > MAX_NODES) return stop(SIZE_MESSAGE, line);
        break;
      case 35: // # comment (only at a token start)
        if (prev === 10 || prev === 32 || prev === 9) {
          while (i + 1 < n && text.charCodeAt(i + 1) !== 10) i++;
        }
        break;
      case 34: // "..." with backslash escapes
        if (tokenStart) {
          for (i++; i < n; i++) {
            const d = text.charCodeAt(i);
            if (d === 92) i++;
            else if (d === 34) break;
            else if (d === 10) line++;
          }
        }
        break;
      case 39: // '...' with '' escapes
        if (tokenStart) {
          for (i++; i < n; i++) {
            const d = text.charCodeAt(i);
            if (d === 39) {
              if (text.charCodeAt(i + 1) === 39) i++;
              else break;
            } else if (d === 10) line++;
          }
        }
        break;
      case 91: // [
      case 123: // {
        if (tokenStart) {
          if (++depth > MAX_DEPTH) return stop(DEPTH_MESSAGE, line);
          if (++nodes > MAX_NODES) return stop(SIZE_MESSAGE, line);
          prevOpened = true;
        }
        break;
      case 93: // ]
      case 125: // }
        if (depth > 0) depth--;
        break;
      case 33: // ! (a tag starts a node)
        if (tokenStart && tagLine === null) tagLine = line;
        break;
      case 44: // ,
        if (depth > 0 && ++nodes > MAX_NODES) return stop(SIZE_MESSAGE, line);
        break;
      default:
        break;
    }
    prev = c;
  }
  return { problem: null, nodes, tagLine };
}

/**
 * Depth and size of the parsed tree, aliases resolved (each use counted, results memoised per
 * node); stops as soon as a limit is exceeded. Recursion is bounded by MAX_DEPTH.
 */
export function checkDocument(doc: Document, lineOf: (node: Node | null | undefined) => number | null): ConfigProblem | null {
  const memo = new Map<unknown, { size: number; depth: number }>();
  const inProgress = new Set<unknown>();
  let total = 0;
  class Stop extends Error {
    constructor(readonly problem: ConfigProblem) {
      super(problem.message);
    }
  }
  // Returns the size and the depth of `node`; `level` is the depth at which it sits.
  const visit = (node: unknown, level: number): { size: number; depth: number } => {
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (target === undefined || inProgress.has(target)) return { size: 1, depth: 0 }; // a cycle: reported by the config layer
      const known = memo.get(target);
      const r = known ?? visit(target, level);
      if (known !== undefined) {
        total += known.size;
        if (total > MAX_NODES) throw new Stop({ path: '', message: SIZE_MESSAGE, line: lineOf(node) });
        if (level + known.depth > MAX_DEPTH) throw new Stop({ path: '', message: DEPTH_MESSAGE, line: lineOf(node) });
      }
      return r;
    }
    if (isScalar(node) || node === null || node === undefined) {
      if (++total > MAX_NODES) throw new Stop({ path: '', message: SIZE_MESSAGE, line: lineOf(isScalar(node) ? node : null) });
      return { size: 1, depth: 0 };
    }
    if (isPair(node)) {
      // Keys are counted only when they are collections (or aliases of one).
      const k = isScalar(node.key) ? { size: 0, depth: 0 } : visit(node.key, level);
      const v = visit(node.value, level);
      return { size: k.size + v.size, depth: Math.max(k.depth, v.depth) };
    }
    if (isCollection(node)) {
      if (level + 1 > MAX_DEPTH) {
        throw new Stop({ path: '', message: DEPTH_MESSAGE, line: lineOf(node) });
      }
      if (++total > MAX_NODES) throw new Stop({ path: '', message: SIZE_MESSAGE, line: lineOf(node) });
      if (isMap(node)) {
        // yaml's uniqueKeys, linear: scalar keys by value (collection keys are refused by the schema).
        const keys = new Set<unknown>();
        for (const pair of node.items) {
          if (!isScalar(pair.key)) continue;
          if (keys.has(pair.key.value)) throw new Stop({ path: '', message: 'syntax error: Map keys must be unique', line: lineOf(pair.key) });
          keys.add(pair.key.value);
        }
      }
      inProgress.add(node);
      let size = 1;
      let depth = 0;
      for (const item of node.items as unknown[]) {
        const r = visit(item, level + 1);
        size += r.size;
        depth = Math.max(depth, r.depth);
      }
      inProgress.delete(node);
      const r = { size, depth: depth + 1 };
      if (node.anchor !== undefined) memo.set(node, r);
      return r;
    }
    return { size: 1, depth: 0 };
  };
  try {
    visit(doc.contents, 0);
    return null;
  } catch (e) {
    if (e instanceof Stop) return e.problem;
    throw e;
  }
}

/** The limits above, as parseConfigText's guard. */
const GUARD: ParseGuard = {
  maxAliasCount: MAX_ALIAS_COUNT,
  check: checkDocument,
  // The parser recurses per level: a stack overflow means nesting the scan could not see (block style).
  syntaxMessage: (m) => (m.includes('call stack') ? DEPTH_MESSAGE : `syntax error: ${m}`),
};

/**
 * Depth and size of a value js-yaml built, aliases (shared objects) counted each time they are
 * used, results memoised per object; stops as soon as a limit is exceeded. Recursion is bounded
 * by MAX_DEPTH. The problem has no line (the object knows none).
 */
export function checkValue(value: unknown): ConfigProblem | null {
  const memo = new Map<object, { size: number; depth: number }>();
  const inProgress = new Set<object>();
  let total = 0;
  let problem: ConfigProblem | null = null;
  const refuse = (message: string): null => {
    problem = { path: '', message, line: null };
    return null;
  };
  // The size and depth of `v` sitting at depth `level`, or null once a limit is exceeded.
  const visit = (v: unknown, level: number): { size: number; depth: number } | null => {
    if (v === null || typeof v !== 'object') return ++total > MAX_NODES ? refuse(SIZE_MESSAGE) : { size: 1, depth: 0 };
    const known = memo.get(v);
    if (known !== undefined) {
      total += known.size;
      if (total > MAX_NODES) return refuse(SIZE_MESSAGE);
      return level + known.depth > MAX_DEPTH ? refuse(DEPTH_MESSAGE) : known;
    }
    if (inProgress.has(v)) return { size: 1, depth: 0 }; // a cycle: reported by the config layer
    if (level + 1 > MAX_DEPTH) return refuse(DEPTH_MESSAGE);
    if (++total > MAX_NODES) return refuse(SIZE_MESSAGE);
    inProgress.add(v);
    let size = 1;
    let depth = 0;
    for (const item of Array.isArray(v) ? (v as unknown[]) : Object.values(v)) {
      const r = visit(item, level + 1);
      if (r === null) return null;
      size += r.size;
      depth = Math.max(depth, r.depth);
    }
    inProgress.delete(v);
    const r = { size, depth: depth + 1 };
    memo.set(v, r);
    return r;
  };
  visit(value, 0);
  return problem;
}

/** A js-yaml refusal as a problem (its reason and line; nesting beyond its bound is ours). */
function jsYamlProblem(err: unknown): ConfigProblem {
  const e = err as { reason?: unknown; mark?: { line?: unknown }; message?: unknown };
  const line = typeof e.mark?.line === 'number' ? e.mark.line + 1 : null;
  const reason = typeof e.reason === 'string' ? e.reason : String(e.message);
  if (reason.includes('maxDepth') || reason.includes('call stack')) return { path: '', message: DEPTH_MESSAGE, line };
  return { path: '', message: `syntax error: ${reason}`, line };
}

const refused = (problem: ConfigProblem): LoadResult => ({ ok: false, problems: [problem] });

/**
 * parseConfigText (config/load.ts) with the limits above: the text scan first; then js-yaml and
 * the value check, or (small bodies with a tag, or that js-yaml refuses) the guarded `yaml` parse;
 * then the compile.
 */
export function parseConfigBody(text: string, opts: CompileOptions): LoadResult {
  const scan = scanConfigBody(text);
  if (scan.problem !== null) return refused(scan.problem);
  const small = scan.nodes <= MAX_DOCUMENT_NODES;
  if (scan.tagLine === null) {
    let obj: unknown;
    try {
      obj = fastLoad(text, { maxDepth: JS_YAML_MAX_DEPTH });
    } catch (err) {
      const problem = jsYamlProblem(err);
      // The `yaml` parser words a syntax error in a small body (nesting is never worth its time).
      if (!small || problem.message === DEPTH_MESSAGE) return refused(problem);
      return parseConfigText(text, opts, undefined, GUARD);
    }
    if (obj === undefined || obj === null) return refused({ path: '', message: 'config is empty', line: null });
    const tooBig = checkValue(obj);
    if (tooBig !== null) return refused(tooBig);
    return compileConfig(obj, opts, small ? lazyLineLookup(text, false) : () => null);
  }
  if (!small) {
    return refused({
      path: '',
      message: `explicit tags ("!") are read only in bodies of at most ${MAX_DOCUMENT_NODES} values through the admin API; this one has more`,
      line: scan.tagLine,
    });
  }
  return parseConfigText(text, opts, undefined, GUARD);
}

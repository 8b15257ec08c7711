// Bounds on the main-thread work a config body sent to the admin API can cause (PUT /config,
// POST /config/validate). The yaml parser costs ~10 µs per node here and recurses per level of
// nesting, so before it runs a linear scan refuses flow nesting deeper than MAX_DEPTH and bodies
// with more than MAX_NODES collection items; after it runs, the document tree (aliases counted
// every time they are used) is held to the same depth and size before the schema sees it.
// Limits break no real config: nothing in the format nests beyond ~10 levels.

import { isAlias, isCollection, isPair, isScalar, type Document, type Node } from 'yaml';
import { parseConfigText, type CompileOptions, type LoadResult, type ParseGuard } from '../config/load.js';
import type { ConfigProblem } from '../config/types.js';

/** Deepest nesting of mappings and lists (the config format itself needs about 10). */
export const MAX_DEPTH = 64;
/** Most collection items (and lines) in one body, aliases counted each time they are used. */
export const MAX_NODES = 200_000;
/** Alias expansions the yaml package allows (its `maxAliasCount`). */
export const MAX_ALIAS_COUNT = 100;

const DEPTH_MESSAGE = `nested deeper than ${MAX_DEPTH} levels of mappings and lists: refused by the admin API`;
const SIZE_MESSAGE = `more than ${MAX_NODES} values (aliases counted each time they are used): too large for the admin API`;

/**
 * One pass over the text, no allocation: flow-collection depth (`[`/`{` at the start of a token,
 * outside quotes and comments) and a count of items (lines, flow openers, flow commas). Returns
 * the first limit exceeded, or null. It over-counts rather than under-counts; the exact check on
 * the parsed tree follows.
 */
export function scanConfigText(text: string): ConfigProblem | null {
  let depth = 0;
  let nodes = 0;
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
        if (++nodes > MAX_NODES) return { path: '', message: SIZE_MESSAGE, line };
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
          if (++depth > MAX_DEPTH) return { path: '', message: DEPTH_MESSAGE, line };
          if (++nodes > MAX_NODES) return { path: '', message: SIZE_MESSAGE, line };
          prevOpened = true;
        }
        break;
      case 93: // ]
      case 125: // }
        if (depth > 0) depth--;
        break;
      case 44: // ,
        if (depth > 0 && ++nodes > MAX_NODES) return { path: '', message: SIZE_MESSAGE, line };
        break;
      default:
        break;
    }
    prev = c;
  }
  return null;
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

/** parseConfigText (config/load.ts) with the limits above: the text scan first, then the guarded parse and compile. */
export function parseConfigBody(text: string, opts: CompileOptions): LoadResult {
  const scanned = scanConfigText(text);
  if (scanned !== null) return { ok: false, problems: [scanned] };
  return parseConfigText(text, opts, undefined, GUARD);
}

// The literal text every match of an anchored path regex must start with, read from its source:
// `^(?:/api/v[0-9]+/.*)$` → `/api/v`. The path index files a regex route under that prefix, so
// the route is tried only for paths that start with it. Conservative: any construct it does not
// fully understand ends the prefix (an empty prefix = try the route for every path).

const CARET = 0x5e; // ^
const DOLLAR = 0x24; // $
const BACKSLASH = 0x5c;
const OPEN = 0x28; // (
const CLOSE = 0x29; // )
const PIPE = 0x7c; // |
const CLASS_OPEN = 0x5b; // [
const CLASS_CLOSE = 0x5d; // ]

/** Characters that are syntax outside a class (`]` and `}` are literal there in Annex B, but not taken). */
const SYNTAX = '^$\\.*+?()[]{}|';
/** Characters whose backslash escape is the character itself in a flag-less (non-unicode) regex. */
const IDENTITY_ESCAPES = '^$\\.*+?()[]{}|/-';

interface Shape {
  /** The index of the `)` that closes the group opened at `groupAt`, or -1. */
  readonly groupClose: number;
  /** The smallest paren depth at which a `|` occurs (Infinity when none). */
  readonly alternationDepth: number;
}

/** One pass over the source: escapes skipped, classes skipped, paren depth tracked. */
function shapeOf(source: string, groupAt: number): Shape {
  let depth = 0;
  let groupClose = -1;
  let alternationDepth = Number.POSITIVE_INFINITY;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === BACKSLASH) {
      i++;
      continue;
    }
    if (inClass) {
      if (c === CLASS_CLOSE) inClass = false;
      continue;
    }
    if (c === CLASS_OPEN) inClass = true;
    else if (c === OPEN) depth++;
    else if (c === CLOSE) {
      depth--;
      if (depth === 0 && groupClose < 0 && groupAt >= 0 && i > groupAt) groupClose = i;
    } else if (c === PIPE && depth < alternationDepth) alternationDepth = depth;
  }
  return { groupClose, alternationDepth };
}

/**
 * The longest literal text that every string matched by `new RegExp(source)` (no flags) starts
 * with, as far as it can be read with certainty; '' when none. Takes `^` then literal characters,
 * optionally inside one `(?:…)` group that spans the rest of the pattern up to a final `$`.
 */
export function regexLiteralPrefix(source: string): string {
  if (source.charCodeAt(0) !== CARET) return '';
  let pos = 1;
  let end = source.length;
  let depth = 0;
  const wrapped = source.startsWith('(?:', pos);
  const shape = shapeOf(source, wrapped ? pos : -1);
  if (wrapped) {
    // The group must close just before a final `$`: nothing follows it that could quantify it.
    if (shape.groupClose !== source.length - 2 || source.charCodeAt(source.length - 1) !== DOLLAR) return '';
    depth = 1;
    pos += 3;
    end = shape.groupClose;
  }
  if (shape.alternationDepth <= depth) return '';
  let prefix = '';
  while (pos < end) {
    const c = source.charAt(pos);
    let literal: string;
    let next: number;
    if (c === '\\') {
      const escaped = source.charAt(pos + 1);
      if (escaped === '' || !IDENTITY_ESCAPES.includes(escaped)) break;
      literal = escaped;
      next = pos + 2;
    } else if (SYNTAX.includes(c)) {
      break;
    } else {
      literal = c;
      next = pos + 1;
    }
    // A quantifier makes this character optional or repeated: the prefix ends before it.
    const after = source.charAt(next);
    if (after === '?' || after === '*' || after === '+' || after === '{') break;
    prefix += literal;
    pos = next;
  }
  return prefix;
}

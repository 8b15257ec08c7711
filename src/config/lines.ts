// Finds the source line of a config path in a parsed YAML/JSON document, so problems can say
// "(line 14)". Falls back to the nearest ancestor that exists (a missing key → its mapping).
// Imports only the yaml library.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { ConfigPath } from './paths.js';

/** The 1-based line of the value at `path` (of its key, for a mapping entry), or null. */
export type LineLookup = (path: ConfigPath) => number | null;

export function lineLookupFor(doc: Document, lineCounter: LineCounter): LineLookup {
  const lineAt = (node: Node | null | undefined): number | null => {
    const start = node?.range?.[0];
    return start === undefined ? null : lineCounter.linePos(start).line;
  };
  return (path) => {
    let node: unknown = doc.contents;
    let line = lineAt(doc.contents);
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        if (pair === undefined) return line;
        line = lineAt(isScalar(pair.key) ? pair.key : null) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item: unknown = node.items[seg];
        if (item === undefined) return line;
        node = item;
        if (isAlias(node) || isMap(node) || isSeq(node) || isScalar(node)) line = lineAt(node) ?? line;
      } else return line;
    }
    return line;
  };
}

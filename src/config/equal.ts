// Structural equality of plain config data (what compile.ts produces and what the schema
// returns): every config comparison uses it. Key order is irrelevant, arrays compare in order,
// a key whose value is undefined counts as absent. No I/O, no state.

/** True when `a` and `b` hold the same plain data (primitives, arrays, plain objects). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return Number.isNaN(a) && Number.isNaN(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  const ao = a as Readonly<Record<string, unknown>>;
  const bo = b as Readonly<Record<string, unknown>>;
  const keys = definedKeys(ao);
  if (keys.length !== definedKeys(bo).length) return false;
  for (const k of keys) if (!sameValue(ao[k], bo[k])) return false;
  return true;
}

function definedKeys(o: Readonly<Record<string, unknown>>): string[] {
  return Object.keys(o).filter((k) => o[k] !== undefined);
}

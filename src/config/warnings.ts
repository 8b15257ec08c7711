// Warnings for config sections that are accepted (and shape-checked by the schema) but whose
// feature is not built yet in this version: they are ignored at run time, and the user is told.
// Reads the raw input only, so a section counts as "set" when the file wrote it, not by default.
import type { ConfigPath, RawProblem } from './paths.js';

const NOT_BUILT = 'accepted, not built yet in this version (ignored)';

const LISTENER_KEYS = [] as const;
const ROUTE_KEYS = [] as const;
const CLUSTER_KEYS = [] as const;

/** One warning per not-built section present in a (valid) raw config, in document order. */
export function notBuiltWarnings(raw: unknown): RawProblem[] {
  const out: RawProblem[] = [];
  if (!isObj(raw)) return out;
  list(raw['listeners']).forEach((l, i) => {
    if (!isObj(l)) return;
    warnIfSet(l, LISTENER_KEYS, ['listeners', i], out);
    list(l['routes']).forEach((r, j) => {
      if (isObj(r)) warnIfSet(r, ROUTE_KEYS, ['listeners', i, 'routes', j], out);
    });
  });
  list(raw['clusters']).forEach((c, k) => {
    if (isObj(c)) warnIfSet(c, CLUSTER_KEYS, ['clusters', k], out);
  });
  return out;
}

function warnIfSet(obj: Readonly<Record<string, unknown>>, keys: readonly string[], at: ConfigPath, out: RawProblem[]): void {
  for (const key of keys) if (obj[key] !== undefined) out.push({ path: [...at, key], message: NOT_BUILT });
}

function isObj(v: unknown): v is Readonly<Record<string, unknown>> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

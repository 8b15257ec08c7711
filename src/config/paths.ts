// Config paths: the segments that locate a value in a config (`['listeners', 0, 'name']`) and
// their printed form (`listeners[0].name`). Shared by schema problems, cross checks and warnings.
// Pure functions; no imports.

export type PathSegment = string | number;
export type ConfigPath = readonly PathSegment[];

/** A problem or warning before its line is known. */
export interface RawProblem {
  readonly path: ConfigPath;
  readonly message: string;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['listeners', 0, 'routes', 2, 'cluster']` → `listeners[0].routes[2].cluster`; odd keys → `["a.b"]`. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

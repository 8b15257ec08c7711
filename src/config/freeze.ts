// Deep freezing of config data (plain objects and arrays), free of the schema (zod): compile.ts
// freezes what it compiles, and a checked config that arrives on the main thread as a structured
// clone (admin/config_check_thread.ts) is frozen again here.

/** `value` and everything reachable from it, frozen; returns `value`. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

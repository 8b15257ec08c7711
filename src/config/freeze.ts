// Deep freezing for config data made outside config/compile.ts: a checked config arrives on the
// main thread as a structured clone (admin/config_check_thread.ts), which is not frozen. Free of
// the schema (zod), unlike compile.ts, which freezes what it compiles.

/** `value` and everything reachable from it, frozen; returns `value`. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// Keeping V8's optimized code of the request path alive through rare events.
//
// V8 treats an object field that still holds the first value ever stored in it as constant, and
// optimized code is built on that. The field's first change anywhere throws away every piece of
// optimized code that relied on it. For a field that only a rare event changes (a client's
// half-close, the first timer sweep) that first change comes long after warm-up, and the whole
// request path drops back to the interpreter and recompiles under load: traced with
// `--trace-generalization --trace-deopt` on a pair of sidecars after their first saturated run
// (the clients' closes), ~25 functions at once, and the p99 of the next seconds at 1000 req/s
// doubled (bench/README, "The first closes").

/**
 * Changes each boolean field named and puts its value back, so that V8 counts it as changing
 * from the start. Call at the end of the constructor (after the fields' initializers): the first
 * object made then does it before any code is optimized. Costs two stores per field per object.
 * Names are strings so that private fields can be named; a name that is not a boolean field
 * throws (a typo would otherwise do nothing).
 */
export function changingFlags(obj: object, ...fields: readonly string[]): void {
  const o = obj as Record<string, unknown>;
  for (const f of fields) {
    const v = o[f];
    if (typeof v !== 'boolean') throw new TypeError(`changingFlags: ${f} is not a boolean field (${typeof v})`);
    o[f] = !v;
    o[f] = v;
  }
}

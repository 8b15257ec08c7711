// Keeping V8's optimized code of the request path alive through rare events.
//
// V8 treats an object field that has never been stored to since it was added as constant, and
// builds optimized code on that. The field's first store anywhere then throws away every piece
// of optimized code that relied on it. For a field that only a rare event stores to (a client's
// abort or half-close, the first upstream error, the first timer sweep) that comes long after
// warm-up, and the whole request path drops back to the interpreter and recompiles under load:
// traced with `--trace-generalization --trace-deopt` on the two sidecars of the mTLS hop after
// their first saturated run (wrk's closing connections aborted requests in flight), ~25
// functions at once on the client sidecar, and the next seconds at 1000 req/s ran slower
// (bench/README.md, "The first aborts").

/**
 * The fields of one class that only rare events store to. `first(this)` at the end of the
 * class's constructor stores each one's own value back into it on the first object made (a store
 * of the same value is enough; test/cli/jit_flags checks that it still is), so that V8 counts them
 * as changing from then on, for every object of the class, before any code is optimized. Later
 * objects cost a branch. Names are strings so that private fields can be named; a name that is not
 * a field of the first object throws (a typo would otherwise do nothing).
 */
export class RareFields {
  private pending = true;

  constructor(private readonly fields: readonly string[]) {}

  first(obj: object): void {
    if (!this.pending) return;
    this.pending = false;
    changingFields(obj, this.fields);
  }
}

/** Stores each named field's own value back into it (RareFields.first, once per class). */
function changingFields(obj: object, fields: readonly string[]): void {
  const o = obj as Record<string, unknown>;
  for (const f of fields) {
    if (!Object.hasOwn(o, f)) throw new TypeError(`changingFields: ${f} is not a field of ${obj.constructor.name}`);
    const value = o[f];
    o[f] = value;
  }
}

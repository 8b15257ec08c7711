// RareFields (src/jit.ts): values kept, only the first object touched, typos refused. (That V8
// then counts the fields as changing is test/cli/jit_flags.test.ts.)
import { describe, expect, it } from 'vitest';
import { RareFields } from '../../src/jit.js';

class Thing {
  a = false;
  n = 1;
  e: Error | null = null;
}

describe('RareFields', () => {
  it('leaves every named field of the first object at its value, and later objects alone', () => {
    const rare = new RareFields(['a', 'n', 'e']);
    const first = new Thing();
    rare.first(first);
    expect(first).toEqual(new Thing());
    // A later object is not read at all: a name that is not among its fields does not throw.
    const later = new RareFields(['a']);
    later.first(new Thing());
    expect(() => later.first({})).not.toThrow();
  });

  it('refuses a name that is not a field of the first object', () => {
    expect(() => new RareFields(['missing']).first(new Thing())).toThrow(/missing is not a field of Thing/);
    expect(() => new RareFields(['constructor']).first(new Thing())).toThrow(/constructor is not a field of Thing/);
  });
});

// changingFields (src/jit.ts): values kept, typos refused. (That V8 then counts the fields as
// changing is test/cli/jit_flags.test.ts.)
import { describe, expect, it } from 'vitest';
import { changingFields } from '../../src/jit.js';

class Thing {
  a = false;
  n = 1;
  e: Error | null = null;
}

describe('changingFields', () => {
  it('leaves every named field at its value', () => {
    const o = new Thing();
    changingFields(o, 'a', 'n', 'e');
    expect(o).toEqual(new Thing());
  });

  it('refuses a name that is not a field of the object', () => {
    expect(() => changingFields(new Thing(), 'missing')).toThrow(/missing is not a field of Thing/);
    expect(() => changingFields(new Thing(), 'constructor')).toThrow(/constructor is not a field of Thing/);
  });
});

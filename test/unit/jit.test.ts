// changingFlags (src/jit.ts): values kept, typos refused.
import { describe, expect, it } from 'vitest';
import { changingFlags } from '../../src/jit.js';

describe('changingFlags', () => {
  it('leaves every named flag at its value', () => {
    const o = { a: false, b: true, n: 1 };
    changingFlags(o, 'a', 'b');
    expect(o).toEqual({ a: false, b: true, n: 1 });
  });

  it('refuses a name that is not a boolean field', () => {
    const o = { a: false, n: 1 };
    expect(() => changingFlags(o, 'n')).toThrow(/n is not a boolean field \(number\)/);
    expect(() => changingFlags(o, 'missing')).toThrow(/missing is not a boolean field \(undefined\)/);
  });
});

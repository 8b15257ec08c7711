import { describe, expect, it } from 'vitest';
import { createLoadBalancer } from '../../src/lb/index.js';
import { seededRng } from '../../src/lb/rng.js';
import { hosts, type TestHost } from './helpers.js';

function sequence(lb: { pick(exclude?: TestHost | null): TestHost | null }, n: number, exclude: TestHost | null = null): string {
  let s = '';
  for (let i = 0; i < n; i++) s += lb.pick(exclude)?.name ?? '-';
  return s;
}

describe('round_robin', () => {
  it("follows nginx's smooth weighted sequence for weights 5,1,1", () => {
    const lb = createLoadBalancer('round_robin', hosts([5, 1, 1]), seededRng(1));
    expect(sequence(lb, 14)).toBe('aabacaa' + 'aabacaa');
  });

  it('rotates with equal weights', () => {
    const lb = createLoadBalancer('round_robin', hosts([2, 2, 2]), seededRng(1));
    expect(sequence(lb, 7)).toBe('abcabca');
  });

  it('gives exact weight shares over whole cycles', () => {
    const hs = hosts([1, 2, 3]);
    const lb = createLoadBalancer('round_robin', hs, seededRng(1));
    const seq = sequence(lb, 600);
    expect([...seq].filter((c) => c === 'a').length).toBe(100);
    expect([...seq].filter((c) => c === 'b').length).toBe(200);
    expect([...seq].filter((c) => c === 'c').length).toBe(300);
    // Smooth: the heaviest host never runs more than twice in a row for 1:2:3.
    expect(seq.includes('ccc')).toBe(false);
  });

  it('is deterministic (independent of the rng)', () => {
    const a = createLoadBalancer('round_robin', hosts([3, 1, 2]), seededRng(1));
    const b = createLoadBalancer('round_robin', hosts([3, 1, 2]), seededRng(999));
    expect(sequence(a, 50)).toBe(sequence(b, 50));
  });

  it('skips unhealthy hosts, weighted and unweighted', () => {
    const weighted = hosts([5, 1, 1]);
    (weighted[0] as TestHost).healthy = false;
    expect(sequence(createLoadBalancer('round_robin', weighted, seededRng(1)), 6)).toBe('bcbcbc');
    const equal = hosts([1, 1, 1]);
    (equal[1] as TestHost).healthy = false;
    expect(sequence(createLoadBalancer('round_robin', equal, seededRng(1)), 6)).toBe('acacac');
  });

  it('honours exclude', () => {
    const hs = hosts([5, 1, 1]);
    const lb = createLoadBalancer('round_robin', hs, seededRng(1));
    expect(sequence(lb, 10, hs[0] as TestHost)).toBe('bcbcbcbcbc');
    const eq = hosts([1, 1, 1]);
    const lb2 = createLoadBalancer('round_robin', eq, seededRng(1));
    expect(sequence(lb2, 6, eq[2] as TestHost)).toBe('ababab');
  });

  it('picks up a host that becomes healthy again', () => {
    const hs = hosts([1, 1]);
    const lb = createLoadBalancer('round_robin', hs, seededRng(1));
    (hs[1] as TestHost).healthy = false;
    expect(sequence(lb, 3)).toBe('aaa');
    (hs[1] as TestHost).healthy = true;
    expect(sequence(lb, 4)).toBe('baba');
  });
});

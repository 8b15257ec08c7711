// Behaviour every policy shares: empty lists, health, panic, exclusion; and a property test.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LbPolicy } from '../../src/config/types.js';
import { createLoadBalancer } from '../../src/lb/index.js';
import { seededRng } from '../../src/lb/rng.js';
import { hosts, type TestHost } from './helpers.js';

const policies: readonly LbPolicy[] = ['least_request', 'round_robin', 'random'];
const weightSets: readonly (readonly number[])[] = [
  [1, 1, 1, 1],
  [1, 2, 3, 4],
];

describe.each(policies)('%s', (policy) => {
  it('returns null for an empty host list', () => {
    const lb = createLoadBalancer<TestHost>(policy, [], seededRng(1));
    expect(lb.pick()).toBeNull();
    expect(lb.panicking).toBe(false);
  });

  it.each(weightSets)('skips unhealthy hosts (weights %j)', (...weights) => {
    const hs = hosts(weights);
    hs[0]!.healthy = false;
    hs[2]!.healthy = false;
    const lb = createLoadBalancer(policy, hs, seededRng(2));
    for (let i = 0; i < 1000; i++) {
      const h = lb.pick();
      expect(h === hs[1] || h === hs[3]).toBe(true);
      expect(lb.panicking).toBe(false);
    }
  });

  it.each(weightSets)('honours exclude when another host exists (weights %j)', (...weights) => {
    const hs = hosts(weights);
    const lb = createLoadBalancer(policy, hs, seededRng(3));
    for (const excluded of hs) {
      const seen = new Set<TestHost>();
      for (let i = 0; i < 500; i++) {
        const h = lb.pick(excluded);
        expect(h).not.toBe(excluded);
        seen.add(h!);
      }
      expect(seen.size).toBe(3);
    }
  });

  it('retries on the excluded host when it is the only healthy one', () => {
    const hs = hosts([1, 2, 3]);
    hs[0]!.healthy = false;
    hs[2]!.healthy = false;
    const lb = createLoadBalancer(policy, hs, seededRng(4));
    expect(lb.pick(hs[1])).toBe(hs[1]);
    expect(lb.panicking).toBe(false);
  });

  it('returns the single host even when it is excluded or unhealthy', () => {
    const hs = hosts([1]);
    const lb = createLoadBalancer(policy, hs, seededRng(5));
    expect(lb.pick(hs[0])).toBe(hs[0]);
    hs[0]!.healthy = false;
    expect(lb.pick()).toBe(hs[0]);
    expect(lb.panicking).toBe(true);
  });

  it.each(weightSets)('fails open (panics) when every host is unhealthy (weights %j)', (...weights) => {
    const hs = hosts(weights);
    for (const h of hs) h.healthy = false;
    const lb = createLoadBalancer(policy, hs, seededRng(6));
    const seen = new Set<TestHost>();
    for (let i = 0; i < 500; i++) {
      const h = lb.pick(hs[3]);
      expect(lb.panicking).toBe(true);
      expect(h).not.toBe(hs[3]);
      seen.add(h!);
    }
    expect(seen.size).toBe(3);
    hs[1]!.healthy = true;
    expect(lb.pick()).toBe(hs[1]);
    expect(lb.panicking).toBe(false);
  });

  it('ignores later changes to the array it was built from', () => {
    const hs = hosts([1, 1]);
    const lb = createLoadBalancer(policy, hs, seededRng(7));
    hs.push({ name: 'z', weight: 1, active: 0, healthy: true });
    for (let i = 0; i < 200; i++) expect(lb.pick()?.name).not.toBe('z');
  });
});

describe('property: every pick is a member, healthy and not excluded when possible', () => {
  const hostArb = fc.record({
    weight: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom(0, -1, Number.NaN)),
    active: fc.integer({ min: 0, max: 5 }),
    healthy: fc.boolean(),
  });
  const stepArb = fc.record({
    excludeIndex: fc.option(fc.nat(), { nil: null }),
    flip: fc.option(fc.nat(), { nil: null }),
    activeDelta: fc.option(fc.tuple(fc.nat(), fc.integer({ min: -1, max: 2 })), { nil: null }),
  });

  it('holds for random host sets, states and pick sequences', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...policies),
        fc.array(hostArb, { maxLength: 8 }),
        fc.array(stepArb, { minLength: 1, maxLength: 30 }),
        fc.integer(),
        (policy, specs, steps, seed) => {
          const hs: TestHost[] = specs.map((s, i) => ({ name: `h${i}`, ...s }));
          const lb = createLoadBalancer(policy, hs, seededRng(seed));
          for (const step of steps) {
            if (hs.length > 0 && step.flip !== null) {
              const h = hs[step.flip % hs.length]!;
              h.healthy = !h.healthy;
            }
            if (hs.length > 0 && step.activeDelta !== null) {
              const h = hs[step.activeDelta[0] % hs.length]!;
              h.active = Math.max(0, h.active + step.activeDelta[1]);
            }
            const exclude = hs.length > 0 && step.excludeIndex !== null ? hs[step.excludeIndex % hs.length]! : null;
            const picked = lb.pick(exclude);
            if (hs.length === 0) {
              expect(picked).toBeNull();
              continue;
            }
            expect(picked).not.toBeNull();
            expect(hs.includes(picked!)).toBe(true);
            const anyHealthy = hs.some((h) => h.healthy);
            expect(lb.panicking).toBe(!anyHealthy);
            // Top tier: healthy (or, in panic, any) hosts other than exclude.
            const tier = hs.filter((h) => h !== exclude && (h.healthy || !anyHealthy));
            if (tier.length > 0) {
              expect(tier.includes(picked!)).toBe(true);
              const positive = (w: number): boolean => Number.isFinite(w) && w > 0;
              if (tier.some((h) => positive(h.weight))) expect(positive(picked!.weight)).toBe(true);
            } else {
              expect(picked).toBe(exclude);
            }
          }
        },
      ),
      { numRuns: 500, seed: 20240601 },
    );
  });
});

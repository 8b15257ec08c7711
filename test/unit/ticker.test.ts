// The ticker's timer wheel on an injected clock: each armed item fires once, at the first tick at
// or after its deadline and never before; re-arm and delete; far deadlines; many items. The
// reference is the scan the wheel replaced: at every tick, exactly the registered items whose
// deadline is at or before now fire.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ticker, type Timed } from '../../src/upstream/ticker.js';
import { ManualClock, manualTicker } from './manual_clock.js';

/** An item that records when it fired. */
class Probe implements Timed {
  deadline = 0;
  readonly fired: number[] = [];
  constructor(
    readonly name = '',
    private readonly then: ((now: number) => void) | null = null,
  ) {}
  onDeadline(now: number): void {
    this.fired.push(now);
    this.then?.(now);
  }
}

/** A probe registered on `ticker` for `deadline`. */
function armed(ticker: Pick<Ticker, 'add'>, deadline: number): Probe {
  const p = new Probe();
  p.deadline = deadline;
  ticker.add(p);
  return p;
}

describe('Ticker (timer wheel)', () => {
  it('fires an item once, at the first tick at or after its deadline', () => {
    const { ticker, clock, advance } = manualTicker(25);
    const p = armed(ticker, clock.now() + 100);
    advance(99);
    expect(p.fired).toEqual([]);
    advance(1);
    expect(p.fired).toEqual([clock.now()]);
    advance(1_000);
    expect(p.fired).toHaveLength(1);
    expect(ticker.has(p)).toBe(false);
    expect(ticker.size).toBe(0);
  });

  it('a deadline inside the current tick waits for a tick at or after it (lower bound, at most one tick late)', () => {
    const { ticker, clock, advance } = manualTicker(25, 1_000);
    const p = new Probe();
    p.deadline = 1_010; // same 25 ms tick as now
    ticker.add(p);
    advance(5); // 1005: same tick, not yet due
    expect(p.fired).toEqual([]);
    advance(5); // 1010: due
    expect(p.fired).toEqual([1_010]);
    expect(clock.now()).toBe(1_010);
  });

  it('never calls onDeadline synchronously, even for a deadline in the past', () => {
    const { ticker, clock, advance } = manualTicker();
    const p = new Probe();
    p.deadline = clock.now() - 50;
    ticker.add(p);
    ticker.after(0, new Probe());
    expect(p.fired).toEqual([]);
    ticker.tick();
    expect(p.fired).toEqual([clock.now()]);
    advance(25);
    expect(p.fired).toHaveLength(1);
  });

  it('re-arming moves an item (one registration per item), earlier or later', () => {
    const { ticker, clock, advance } = manualTicker();
    const p = new Probe();
    const t0 = clock.now();
    p.deadline = t0 + 1_000;
    ticker.add(p);
    p.deadline = t0 + 50; // earlier
    ticker.add(p);
    expect(ticker.size).toBe(1);
    advance(50);
    expect(p.fired).toEqual([t0 + 50]);
    p.deadline = t0 + 20_000; // re-armed after firing, far (a coarser wheel level)
    ticker.add(p);
    p.deadline = t0 + 30_000; // later again
    ticker.add(p);
    advance(19_950);
    expect(p.fired).toHaveLength(1);
    advance(10_000);
    expect(p.fired).toEqual([t0 + 50, t0 + 30_000]);
  });

  it('delete unregisters; a deadline of 0 unregisters; deleting twice is harmless', () => {
    const { ticker, clock, advance } = manualTicker();
    const a = armed(ticker, clock.now() + 100);
    const b = armed(ticker, clock.now() + 100);
    ticker.delete(a);
    ticker.delete(a);
    b.deadline = 0;
    ticker.add(b);
    expect(ticker.size).toBe(0);
    advance(500);
    expect(a.fired).toEqual([]);
    expect(b.fired).toEqual([]);
  });

  it('a deadline moved later without re-arming is still never fired early; cleared to 0, it never fires', () => {
    const { ticker, clock, advance } = manualTicker();
    const later = armed(ticker, clock.now() + 100);
    const cleared = armed(ticker, clock.now() + 100);
    later.deadline += 400;
    cleared.deadline = 0;
    advance(100);
    expect(later.fired).toEqual([]);
    expect(cleared.fired).toEqual([]);
    expect(ticker.size).toBe(1);
    advance(400);
    expect(later.fired).toHaveLength(1);
  });

  it('after(ms, item) sets the deadline from the fresh clock and fires once', () => {
    const { ticker, clock, advance } = manualTicker();
    const p = new Probe();
    ticker.after(300, p);
    expect(p.deadline).toBe(clock.now() + 300);
    advance(275);
    expect(p.fired).toEqual([]);
    advance(25);
    expect(p.fired).toEqual([clock.now()]);
    ticker.after(100, p);
    ticker.delete(p); // cancelled backoff
    advance(1_000);
    expect(p.fired).toHaveLength(1);
  });

  it('callbacks may delete an item due in the same tick (it does not fire) and re-arm themselves (next tick at the earliest)', () => {
    const { ticker, clock, advance } = manualTicker();
    // Two items due in the same tick, each deleting the other: whichever runs first, exactly one fires.
    const a: Probe = new Probe('a', () => ticker.delete(b));
    const b: Probe = new Probe('b', () => ticker.delete(a));
    let rearms = 0;
    const self: Probe = new Probe('self', () => {
      if (rearms++ < 3) {
        self.deadline = clock.now(); // due again at once: must wait for the next tick, not loop
        ticker.add(self);
      }
    });
    const d = clock.now() + 50;
    for (const p of [a, b, self]) {
      p.deadline = d;
      ticker.add(p);
    }
    advance(50);
    expect(a.fired.length + b.fired.length).toBe(1);
    expect(ticker.has(a) || ticker.has(b)).toBe(false);
    expect(self.fired).toHaveLength(1);
    advance(25);
    advance(25);
    advance(25);
    expect(self.fired).toHaveLength(4);
    advance(25);
    expect(self.fired).toHaveLength(4);
  });

  it('a clock jump fires everything due in order of tick, each once', () => {
    const { ticker, clock, advance } = manualTicker(25);
    const order: number[] = [];
    const t0 = clock.now();
    const items = Array.from({ length: 50 }, (_, i) => {
      const p = new Probe(String(i), () => order.push(i));
      p.deadline = t0 + (50 - i) * 1_000; // added latest first
      ticker.add(p);
      return p;
    });
    advance(60_000);
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => 49 - i));
    for (const p of items) expect(p.fired).toEqual([t0 + 60_000]);
  });

  it('far deadlines (hours, days, beyond the wheel span, Infinity) fire at or after their time, cheaply', () => {
    const { ticker, clock, advance } = manualTicker(25);
    const t0 = clock.now();
    const hour = armed(ticker, t0 + 3_600_000);
    const days = armed(ticker, t0 + 3 * 86_400_000 + 7);
    const beyond = armed(ticker, t0 + 40 * 86_400_000); // > 2^26 ticks of 25 ms (≈ 19 days)
    const never = armed(ticker, Infinity);
    advance(3_600_000 - 1);
    expect(hour.fired).toEqual([]);
    advance(1);
    expect(hour.fired).toEqual([t0 + 3_600_000]);
    // In steps of a tick around the deadline: fires exactly at the first tick at or after it.
    advance(3 * 86_400_000 - 3_600_000 - 25);
    expect(days.fired).toEqual([]);
    advance(25);
    expect(days.fired).toEqual([]);
    advance(25);
    expect(days.fired).toEqual([t0 + 3 * 86_400_000 + 25]);
    advance(37 * 86_400_000 - 26);
    expect(beyond.fired).toEqual([]);
    advance(1);
    expect(beyond.fired).toEqual([t0 + 40 * 86_400_000]);
    advance(365 * 86_400_000);
    expect(never.fired).toEqual([]);
    expect(ticker.size).toBe(1);
  });

  it('many items: 100 000 deadlines over a minute each fire once, never early', () => {
    const { ticker, clock, advance } = manualTicker(25);
    const t0 = clock.now();
    let fired = 0;
    let early = 0;
    const items: Timed[] = [];
    for (let i = 0; i < 100_000; i++) {
      const item: Timed = {
        deadline: t0 + 1 + ((i * 7_919) % 60_000),
        onDeadline(now: number): void {
          fired++;
          if (now < item.deadline) early++;
        },
      };
      items.push(item);
      ticker.add(item);
    }
    for (let i = 0; i < 50_000; i += 2) ticker.delete(items[i]!);
    for (let ms = 0; ms < 61_000; ms += 25) advance(25);
    expect(early).toBe(0);
    expect(fired).toBe(75_000);
    expect(ticker.size).toBe(0);
  });

  it('an item belongs to one ticker at a time: adding it to another moves it', () => {
    const one = manualTicker();
    const two = manualTicker();
    const p = new Probe();
    p.deadline = one.clock.now() + 100;
    one.ticker.add(p);
    two.ticker.add(p);
    expect(one.ticker.has(p)).toBe(false);
    expect(one.ticker.size).toBe(0);
    expect(two.ticker.has(p)).toBe(true);
    one.advance(1_000);
    expect(p.fired).toEqual([]);
    two.advance(100);
    expect(p.fired).toHaveLength(1);
  });

  it('reads time only from the injected clock; now is refreshed by fresh() and tick()', () => {
    const clock = new ManualClock(5_000);
    const ticker = new Ticker({ resolutionMs: 10, clock, autoTick: false });
    expect(ticker.now).toBe(5_000);
    clock.advance(7);
    expect(ticker.now).toBe(5_000);
    expect(ticker.fresh()).toBe(5_007);
    clock.advance(3);
    ticker.tick();
    expect(ticker.now).toBe(5_010);
    expect(ticker.resolutionMs).toBe(10);
  });

  it('an empty wheel that stood still files new deadlines from now', () => {
    const { ticker, clock } = manualTicker(25);
    clock.advance(10 * 86_400_000); // no tick ran meanwhile
    const p = armed(ticker, clock.now() + 100);
    clock.advance(100);
    ticker.tick();
    expect(p.fired).toEqual([clock.now()]);
  });

  it('stop() unregisters everything; the default ticker is on the monotonic clock', () => {
    const ticker = new Ticker(25);
    const p = armed(ticker, ticker.fresh() + 60_000);
    expect(ticker.size).toBe(1);
    ticker.stop();
    expect(ticker.size).toBe(0);
    expect(ticker.has(p)).toBe(false);
    expect(ticker.fresh()).toBeGreaterThanOrEqual(0);
    expect(() => new Ticker(0)).toThrow(RangeError);
  });

  it('with autoTick, now keeps moving before anything is registered (a deadline computed from it is not stale)', async () => {
    const ticker = new Ticker(5);
    const start = ticker.now;
    await expect.poll(() => ticker.now).toBeGreaterThan(start);
    ticker.stop();
  });

  it('the real interval timer fires a deadline (autoTick), also after stop()', async () => {
    const ticker = new Ticker(5);
    const p = new Probe();
    ticker.after(10, p);
    await expect.poll(() => p.fired.length).toBe(1);
    expect(p.fired[0]).toBeGreaterThanOrEqual(p.deadline);
    ticker.stop();
    ticker.after(10, p);
    await expect.poll(() => p.fired.length).toBe(2);
    ticker.stop();
  });

  it('tickless: no timer while nothing is registered; `now` is read afresh in each turn of the event loop, once', async () => {
    const ticker = new Ticker(5);
    try {
      expect(ticker.timerSet).toBe(false);
      const first = ticker.now;
      await new Promise((r) => setTimeout(r, 30));
      const before = performance.now();
      const now = ticker.now;
      expect(now).toBeGreaterThanOrEqual(before);
      expect(now).toBeGreaterThanOrEqual(first + 25);
      const until = performance.now() + 3;
      while (performance.now() < until) {
        /* the same turn */
      }
      expect(ticker.now).toBe(now);
      await new Promise((r) => setImmediate(r));
      expect(ticker.now).toBeGreaterThan(now);
      expect(ticker.timerSet).toBe(false);
    } finally {
      ticker.stop();
    }
  });

  it('tickless: one timer for the earliest deadline fires near ones (level 0) and far ones (a cascade) at or after their time', async () => {
    const ticker = new Ticker(5);
    try {
      const near = new Probe();
      const far = new Probe();
      ticker.after(2_000, far); // beyond level 0's 256 ticks of 5 ms: filed in level 1, cascaded down
      ticker.after(150, near); // earlier than the timer set for `far`: the timer moves
      expect(ticker.timerSet).toBe(true);
      await expect.poll(() => near.fired.length, { timeout: 1_500 }).toBe(1);
      expect(near.fired[0]).toBeGreaterThanOrEqual(near.deadline);
      expect(far.fired).toEqual([]);
      expect(ticker.timerSet).toBe(true); // set again, for `far`
      await expect.poll(() => far.fired.length, { timeout: 10_000 }).toBe(1);
      expect(far.fired[0]).toBeGreaterThanOrEqual(far.deadline);
      expect(ticker.timerSet).toBe(false); // nothing left
    } finally {
      ticker.stop();
    }
  });

  it('tickless: a deadline computed from `now` after a quiet spell is not early', async () => {
    const ticker = new Ticker(5);
    try {
      void ticker.now;
      await new Promise((r) => setTimeout(r, 50));
      const p = new Probe();
      const before = performance.now();
      p.deadline = ticker.now + 20;
      expect(p.deadline).toBeGreaterThanOrEqual(before + 20);
      ticker.add(p);
      await expect.poll(() => p.fired.length).toBe(1);
      expect(p.fired[0]).toBeGreaterThanOrEqual(p.deadline);
    } finally {
      ticker.stop();
    }
  });

  it('matches the reference scan under random adds, re-arms, deletes and clock steps (property)', () => {
    type Op =
      | { readonly kind: 'arm'; readonly item: number; readonly inMs: number }
      | { readonly kind: 'delete'; readonly item: number }
      | { readonly kind: 'advance'; readonly ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('arm' as const),
        item: fc.nat(19),
        inMs: fc.oneof(fc.integer({ min: -100, max: 400 }), fc.integer({ min: 0, max: 30_000 }), fc.integer({ min: 0, max: 2_000_000 })),
      }),
      fc.record({ kind: fc.constant('delete' as const), item: fc.nat(19) }),
      fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 1_000_000 })),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.integer({ min: 1, max: 50 }), (ops, resolutionMs) => {
        const clock = new ManualClock(1_000);
        const ticker = new Ticker({ resolutionMs, clock, autoTick: false });
        const log: string[] = [];
        const items = Array.from({ length: 20 }, (_, i) => ({
          deadline: 0,
          onDeadline(now: number): void {
            log.push(`${i}@${now}`);
          },
        }));
        // The reference: the Set scan the wheel replaced.
        const armed = new Map<number, number>();
        const expected: string[] = [];
        for (const o of ops) {
          if (o.kind === 'arm') {
            const d = clock.now() + o.inMs;
            items[o.item]!.deadline = d;
            ticker.add(items[o.item]!);
            if (d > 0) armed.set(o.item, d);
            else armed.delete(o.item);
          } else if (o.kind === 'delete') {
            ticker.delete(items[o.item]!);
            armed.delete(o.item);
          } else {
            clock.advance(o.ms);
            ticker.tick();
            const now = clock.now();
            const due = [...armed].filter(([, d]) => d <= now).map(([i]) => i);
            for (const i of due) armed.delete(i);
            expected.push(...due.map((i) => `${i}@${now}`));
          }
          expect(ticker.size).toBe(armed.size);
        }
        // Firing order within one tick is not specified: compare as multisets per tick.
        expect([...log].sort()).toEqual([...expected].sort());
        for (const [i, d] of armed) expect(items[i]!.deadline).toBe(d);
      }),
      { numRuns: 300 },
    );
  });
});

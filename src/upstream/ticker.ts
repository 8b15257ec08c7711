// One coarse timer per worker (STYLE.md item 7): instead of a setTimeout per request or per
// connection, anything with a deadline registers here. Deadlines are on one monotonic clock
// (performance.now(), injectable), filed in a hierarchical timer wheel: add, delete and re-arm are
// O(1), and a tick's work is proportional to what expires (plus an item's rare cascade from a
// coarse level to a finer one). Deadlines are lower bounds: an item fires at the first tick at
// or after its deadline, so at most one tick (`resolutionMs`) late, never early.
//
// Tickless (with autoTick): no timer runs while nothing is due. One one-shot timer is set for the
// first tick after the earliest deadline (or the next cascade of a coarser level), moved earlier
// when add() files an earlier deadline, and set again after each tick. `now` is read from the
// clock at its first read in each turn of the event loop (a setImmediate marks it stale at the
// turn's end), so it is never older than the turn that reads it. A wake-up costs ~0.1 ms of loop
// time here: an idle worker on a 25 ms interval spent ~4 ms a second waking, and at 10 requests a
// second the interval woke it twice per request.

import { performance } from 'node:perf_hooks';
import { RareFields } from '../jit.js';

/** A monotonic clock in milliseconds (fractional), reading > 0 (0 is "no deadline" to a Timed). Never steps with NTP or the wall clock. */
export interface Clock {
  now(): number;
}

/** The data plane's clock: performance.now() (monotonic, per thread origin). */
export const monotonicClock: Clock = { now: () => performance.now() };

export interface Timed {
  /**
   * Absolute deadline in ms on the Ticker's clock (`ticker.now` / `ticker.fresh()`); 0 = none.
   * After changing it, call `add()` again (re-arm): the wheel files an item by the deadline it
   * had when added. A deadline moved later without re-arming is still honoured (never early);
   * one moved earlier fires at the old time; 0 without `delete()` drops the item when its old
   * time comes.
   */
  deadline: number;
  /** Called once per arming, at or after `deadline`; the item is no longer registered. */
  onDeadline(now: number): void;
  /**
   * The ticker's bookkeeping for this item, made at its first add() and kept for its life (so
   * registering costs no hash-table operation). Only the ticker touches it; a class declares it
   * `timerEntry: TimerEntry | null = null` so its objects keep one shape.
   */
  timerEntry?: TimerEntry | null;
}

/** A registration: one per item, kept across re-arms, linked into one wheel slot while registered. */
export class TimerEntry {
  /** The ticker it is registered with, or null. */
  owner: Ticker | null = null;
  prev: TimerEntry | null = null;
  next: TimerEntry | null = null;
  /** Index into the owner's slot heads; -1 when in no list. */
  slot = -1;
  constructor(readonly item: Timed) {}
}

export interface TickerOptions {
  /** Tick length in ms (default 25): how late a deadline may fire. */
  readonly resolutionMs?: number;
  /** Default: monotonicClock. Tests inject a clock they advance by hand. */
  readonly clock?: Clock;
  /** false: no interval timer; whoever owns the ticker calls `tick()` (tests, benchmarks). Default true. */
  readonly autoTick?: boolean;
}

// Level 0: 256 slots of one tick (6.4 s at 25 ms); levels 1-3: 64 slots each of 256, 2^14 and
// 2^20 ticks (≈ 6.8 min, 7.3 h, 19 days). Farther deadlines wait in level 3's farthest slot and
// are re-filed from there.
const L0_BITS = 8;
const LN_BITS = 6;
const LEVELS = 4;
const L0_SIZE = 1 << L0_BITS;
const LN_SIZE = 1 << LN_BITS;
const L0_MASK = L0_SIZE - 1;
const LN_MASK = LN_SIZE - 1;
const SPAN_BITS = L0_BITS + (LEVELS - 1) * LN_BITS;
const MAX_DELTA = 2 ** SPAN_BITS - 1;
const WHEEL_SLOTS = L0_SIZE + (LEVELS - 1) * LN_SIZE;
/** The list being fired (its entries may be deleted by the callbacks it runs). */
const FIRING = WHEEL_SLOTS;

function levelOf(slot: number): number {
  return slot < L0_SIZE ? 0 : 1 + ((slot - L0_SIZE) >> LN_BITS);
}

const TICKER_RARE = new RareFields(['ticking']);

export class Ticker {
  /** The clock as last read: `now`'s value. */
  private t: number;
  /** autoTick: `now` is read from the clock at its next read (a new turn of the event loop). */
  private stale: boolean;
  /** The tick the one-shot timer is set for; Infinity when none is. */
  private armedTick = Infinity;
  readonly resolutionMs: number;
  private readonly clock: Clock;
  private readonly autoTick: boolean;
  /** Items registered. */
  private count = 0;
  /** Slot list heads: level 0, then levels 1..3, then FIRING. */
  private readonly heads: Array<TimerEntry | null> = new Array<TimerEntry | null>(WHEEL_SLOTS + 1).fill(null);
  /** Entries filed per level: empty finer levels let a tick skip ahead to the next cascade. */
  private readonly levelCounts = new Int32Array(LEVELS);
  /** The tick being worked through: every deadline filed before it has fired. */
  private current: number;
  /** The last tick whose coarser levels were cascaded (cascade once per tick, however often it is revisited). */
  private cascaded: number;
  private ticking = false;
  private timer: NodeJS.Timeout | null = null;

  /** `new Ticker(25)` (a resolution in ms) or `new Ticker({ resolutionMs, clock, autoTick })`. */
  constructor(options: number | TickerOptions = {}) {
    const o: TickerOptions = typeof options === 'number' ? { resolutionMs: options } : options;
    this.resolutionMs = o.resolutionMs ?? 25;
    if (!(this.resolutionMs > 0)) throw new RangeError(`ticker resolution must be > 0 ms, got ${this.resolutionMs}`);
    this.clock = o.clock ?? monotonicClock;
    this.autoTick = o.autoTick ?? true;
    this.t = this.clock.now();
    this.stale = this.autoTick;
    this.current = this.tickOf(this.t);
    this.cascaded = this.current;
    // Set by the first tick that finds a deadline, which may come long after warm-up (jit.ts).
    TICKER_RARE.first(this);
  }

  /**
   * Milliseconds on the ticker's clock. With autoTick, read from the clock at the first read in
   * each turn of the event loop (cheap to read on the hot path); without, refreshed by tick() and
   * fresh() only.
   */
  get now(): number {
    if (this.stale) this.refresh();
    return this.t;
  }

  private refresh(): void {
    this.t = this.clock.now();
    this.stale = false;
    setImmediate(this.markStale);
  }

  private readonly markStale = (): void => {
    this.stale = true;
  };

  /** A timer is set (something is registered, its tick not reached). */
  get timerSet(): boolean {
    return this.timer !== null;
  }

  /** Sets the one-shot timer for tick `due` unless it is set for that tick or an earlier one. */
  private arm(due: number): void {
    if (!this.autoTick || due >= this.armedTick) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedTick = due;
    if (!Number.isFinite(due)) {
      this.timer = null;
      return;
    }
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(due * this.resolutionMs - this.clock.now())));
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.armedTick = Infinity;
    this.tick();
    this.arm(this.nextDueTick()); // callbacks may have set it already, for an earlier tick
  };

  /** Items registered. */
  get size(): number {
    return this.count;
  }

  has(item: Timed): boolean {
    const e = item.timerEntry;
    return e != null && e.owner === this;
  }

  /** Current time in ms, fresh (for deadlines set on the hot path, a tick-old `now` is fine). */
  fresh(): number {
    if (this.stale) this.refresh();
    else this.t = this.clock.now();
    return this.t;
  }

  /**
   * Registers `item` for `item.deadline`, or re-arms it if already registered (one registration
   * per item). A deadline of 0 (none) unregisters it. Never calls `onDeadline` synchronously.
   */
  add(item: Timed): void {
    if (!(item.deadline > 0)) {
      this.delete(item);
      return;
    }
    let e = item.timerEntry;
    if (e == null) e = item.timerEntry = new TimerEntry(item);
    if (e.owner !== this) {
      e.owner?.delete(item); // an item belongs to one ticker at a time
      if (this.count === 0) this.catchUp();
      e.owner = this;
      this.count++;
      this.link(e, this.slotFor(item.deadline));
    } else {
      const slot = this.slotFor(item.deadline);
      if (slot !== e.slot) {
        this.unlink(e);
        this.link(e, slot);
      } // else: re-armed within the slot it is in, nothing to move
    }
    // Fires at the first tick after its deadline's (at or after the deadline); not before the next.
    if (!this.ticking) this.arm(Math.max(this.current, this.tickOf(item.deadline)) + 1);
  }

  /**
   * One-shot scheduling: sets `item.deadline` to `ms` from now and (re-)arms it; `onDeadline`
   * runs at the first tick at or after that (never synchronously, even for ms ≤ 0). Cancel
   * with `delete(item)`. For retry backoff and fault delays instead of a setTimeout each.
   */
  after(ms: number, item: Timed): void {
    item.deadline = this.fresh() + Math.max(0, ms);
    this.add(item);
  }

  /** Unregisters `item` (a no-op when it is not registered). */
  delete(item: Timed): void {
    const e = item.timerEntry;
    if (e == null || e.owner !== this) return;
    this.unlink(e);
    this.release(e);
  }

  /**
   * Fires every item whose deadline is at or before the clock's now. The interval calls this
   * every `resolutionMs`; with `autoTick: false` the owner does.
   */
  tick(): void {
    if (this.ticking) return; // called from an onDeadline: the running tick covers it
    const now = this.fresh();
    if (this.count === 0) {
      this.current = this.cascaded = this.tickOf(now);
      return;
    }
    this.ticking = true;
    try {
      const target = this.tickOf(now);
      for (;;) {
        if (this.cascaded !== this.current) {
          this.cascaded = this.current;
          this.cascade(this.current);
        }
        this.fireSlot(this.current & L0_MASK, now);
        // The target tick stays current: deadlines later in it are checked again next time.
        if (this.current >= target) break;
        if (this.count === 0) {
          this.current = this.cascaded = target;
          break;
        }
        this.current = Math.min(target, this.nextBusyTick());
      }
    } finally {
      this.ticking = false;
    }
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedTick = Infinity;
    for (let slot = 0; slot < this.heads.length; slot++) {
      let e = this.heads[slot] ?? null;
      while (e !== null) {
        const next: TimerEntry | null = e.next;
        this.unlink(e);
        this.release(e);
        e = next;
      }
    }
  }

  // ---- the wheel ------------------------------------------------------------------------------

  /** The next tick with work: the next one while level 0 has entries; else the next cascade. */
  private nextBusyTick(): number {
    return this.levelCounts[0] !== 0 ? this.current + 1 : this.nextCascadeTick();
  }

  /**
   * The next block boundary of the finest non-empty coarser level (the ticks before it have
   * nothing of that level to cascade); Infinity when the coarser levels are empty.
   */
  private nextCascadeTick(): number {
    let shift = L0_BITS;
    for (let level = 1; level < LEVELS; level++) {
      if (this.levelCounts[level] !== 0) {
        const block = 2 ** shift;
        return (Math.floor(this.current / block) + 1) * block;
      }
      shift += LN_BITS;
    }
    return Infinity;
  }

  /**
   * The tick the timer is set for after a tick: the one after the first non-empty level-0 slot's
   * (its deadlines are all past by then), or the next block boundary of the finest non-empty
   * coarser level (its cascade), whichever is first. Infinity when nothing is registered.
   */
  private nextDueTick(): number {
    let due = Infinity;
    if (this.levelCounts[0] !== 0) {
      for (let d = 0; d < L0_SIZE; d++) {
        if (this.heads[(this.current + d) & L0_MASK] !== null) {
          due = this.current + d + 1;
          break;
        }
      }
    }
    return Math.min(due, this.nextCascadeTick());
  }

  private tickOf(ms: number): number {
    return Math.floor(ms / this.resolutionMs);
  }

  /** An empty wheel may have stood still (no interval, or ticks skipped): start from now. */
  private catchUp(): void {
    if (this.ticking) return;
    this.current = this.cascaded = this.tickOf(this.fresh());
  }

  /** Puts `e` into the slot for `deadline`: level 0 by tick, coarser levels by block of ticks. */
  private file(e: TimerEntry, deadline: number): void {
    this.link(e, this.slotFor(deadline));
  }

  /** The slot for `deadline`, from the current tick. */
  private slotFor(deadline: number): number {
    let t = this.tickOf(deadline);
    let delta = t - this.current;
    if (delta < 0) {
      t = this.current;
      delta = 0;
    } else if (!(delta <= MAX_DELTA)) {
      // Beyond the wheel's span (or Infinity): file at its far end, re-filed when reached.
      delta = MAX_DELTA;
      t = this.current + MAX_DELTA;
    }
    if (delta < L0_SIZE) return t & L0_MASK;
    let level = 1;
    let shift = L0_BITS;
    while (delta >= 2 ** (shift + LN_BITS) && level < LEVELS - 1) {
      level++;
      shift += LN_BITS;
    }
    return L0_SIZE + (level - 1) * LN_SIZE + (Math.floor(t / 2 ** shift) & LN_MASK);
  }

  private link(e: TimerEntry, slot: number): void {
    this.levelCounts[levelOf(slot)]!++;
    const head = this.heads[slot] ?? null;
    e.slot = slot;
    e.prev = null;
    e.next = head;
    if (head !== null) head.prev = e;
    this.heads[slot] = e;
  }

  private unlink(e: TimerEntry): void {
    if (e.slot < 0) return;
    if (e.slot < FIRING) this.levelCounts[levelOf(e.slot)]!--;
    if (e.prev !== null) e.prev.next = e.next;
    else this.heads[e.slot] = e.next;
    if (e.next !== null) e.next.prev = e.prev;
    e.prev = e.next = null;
    e.slot = -1;
  }

  /** The entry (already unlinked) leaves this ticker. */
  private release(e: TimerEntry): void {
    e.owner = null;
    this.count--;
  }

  /**
   * Entering tick `t`: at each boundary of a coarser level's block, that level's slot for the
   * block now starting is re-filed into finer levels (each item moves down at most LEVELS - 1
   * times in its life).
   */
  private cascade(t: number): void {
    let shift = L0_BITS;
    for (let level = 1; level < LEVELS; level++) {
      if (t % 2 ** shift !== 0) return;
      const slot = L0_SIZE + (level - 1) * LN_SIZE + (Math.floor(t / 2 ** shift) & LN_MASK);
      let e: TimerEntry | null = this.heads[slot] ?? null;
      this.heads[slot] = null;
      while (e !== null) {
        this.levelCounts[level]!--;
        const next: TimerEntry | null = e.next;
        this.file(e, e.item.deadline);
        e = next;
      }
      shift += LN_BITS;
    }
  }

  /** Fires the due items of level-0 slot `slot`; the others (later in the tick) are filed again. */
  private fireSlot(slot: number, now: number): void {
    let e: TimerEntry | null = this.heads[slot] ?? null;
    if (e === null) return;
    // Move the list aside first: callbacks may delete entries in it or add new ones to `slot`.
    this.heads[slot] = null;
    this.heads[FIRING] = e;
    for (let x: TimerEntry | null = e; x !== null; x = x.next) {
      x.slot = FIRING;
      this.levelCounts[0]!--;
    }
    while ((e = this.heads[FIRING] ?? null) !== null) {
      this.unlink(e);
      const item = e.item;
      const d = item.deadline;
      if (d > 0 && d <= now) {
        this.release(e);
        item.onDeadline(now);
      } else if (d > 0) {
        this.file(e, d);
      } else {
        this.release(e); // deadline cleared without delete(): never fires
      }
    }
  }
}

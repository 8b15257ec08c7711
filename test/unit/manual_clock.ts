// A clock the test moves by hand (the Clock the data plane reads is monotonic; this one only
// moves forward when told to), and a ticker on it that never starts an interval timer.

import { Ticker, type Clock } from '../../src/upstream/ticker.js';

export class ManualClock implements Clock {
  constructor(private ms = 1_000) {}

  now(): number {
    return this.ms;
  }

  /** Moves the clock forward by `ms` (never back: the real clock is monotonic). */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('a monotonic clock does not go back');
    this.ms += ms;
  }
}

/** A ticker on a manual clock; `advance(ms)` moves the clock and runs one tick. */
export function manualTicker(resolutionMs = 25, startMs = 1_000): { clock: ManualClock; ticker: Ticker; advance: (ms: number) => void } {
  const clock = new ManualClock(startMs);
  const ticker = new Ticker({ resolutionMs, clock, autoTick: false });
  const advance = (ms: number): void => {
    clock.advance(ms);
    ticker.tick();
  };
  return { clock, ticker, advance };
}

// The worker's ticker (src/upstream/ticker.ts): the timer wheel against the Set it replaced,
// which scanned every registered item at each 25 ms tick. Per operation, with `resident` other
// items registered (requests in flight): arm + disarm (a request's deadline, start to finish),
// re-arm (a moved deadline), a tick where nothing expires (the scan's cost), and fire (an item
// expiring). Both run on a hand-moved clock, so a tick costs only its own work.

import type { Bench } from 'tinybench';
import { Ticker, type Clock, type Timed } from '../../src/upstream/ticker.js';

export const title = 'ticker: timer wheel vs the old Set scan';

class BenchClock implements Clock {
  ms = 1_000;
  now(): number {
    return this.ms;
  }
}

/** The ticker before the wheel (a Set scanned every tick), on an injected clock for comparison. */
class SetScanTicker {
  private readonly items = new Set<Timed>();
  now: number;
  constructor(private readonly clock: Clock) {
    this.now = clock.now();
  }
  add(item: Timed): void {
    this.items.add(item);
  }
  delete(item: Timed): void {
    this.items.delete(item);
  }
  fresh(): number {
    return (this.now = this.clock.now());
  }
  tick(): void {
    const now = this.fresh();
    for (const item of this.items) {
      if (item.deadline !== 0 && item.deadline <= now) {
        this.items.delete(item);
        item.onDeadline(now);
      }
    }
  }
}

type AnyTicker = Pick<Ticker, 'add' | 'delete' | 'fresh' | 'tick'>;

const noop = (): void => {};
const FAR = 1e9; // never reached while the benchmark runs

function item(deadline: number): Timed {
  return { deadline, onDeadline: noop };
}

function setUp(kind: 'wheel' | 'set', resident: number): { clock: BenchClock; ticker: AnyTicker } {
  const clock = new BenchClock();
  const ticker: AnyTicker = kind === 'wheel' ? new Ticker({ resolutionMs: 25, clock, autoTick: false }) : new SetScanTicker(clock);
  // Deadlines spread over 30 s (route timeouts), far enough not to expire during the run.
  for (let i = 0; i < resident; i++) ticker.add(item(clock.ms + FAR + ((i * 7_919) % 30_000)));
  return { clock, ticker };
}

export function register(bench: Bench): void {
  for (const resident of [1_000, 10_000]) {
    for (const kind of ['set', 'wheel'] as const) {
      const label = `${kind === 'set' ? 'old Set scan' : 'wheel'}, ${resident.toLocaleString('en-US')} resident`;
      {
        const { clock, ticker } = setUp(kind, resident);
        const it = item(0);
        let i = 0;
        bench.add(`arm + disarm, ${label}`, () => {
          it.deadline = clock.ms + 1_000 + (i++ & 1023) * 25;
          ticker.add(it);
          ticker.delete(it);
        });
      }
      {
        const { clock, ticker } = setUp(kind, resident);
        const it = item(clock.ms + 15_000);
        ticker.add(it);
        let i = 0;
        bench.add(`re-arm, ${label}`, () => {
          it.deadline = clock.ms + 1_000 + (i++ & 1023) * 25;
          ticker.add(it);
        });
      }
      {
        const { clock, ticker } = setUp(kind, resident);
        bench.add(`tick, nothing due, ${label}`, () => {
          clock.ms += 25;
          ticker.tick();
        });
      }
      {
        // One item armed for the next tick and fired by it: add + expiry + callback.
        const { clock, ticker } = setUp(kind, resident);
        const it = item(0);
        bench.add(`arm + fire, ${label}`, () => {
          it.deadline = clock.ms + 25;
          ticker.add(it);
          clock.ms += 25;
          ticker.tick();
        });
      }
    }
  }
}

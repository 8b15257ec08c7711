// One coarse timer per worker (STYLE.md item 7): instead of a setTimeout per request or per
// connection, anything with a deadline registers here and is checked every `resolutionMs`.
// Deadlines are therefore late by up to one tick; every timeout in the config is a lower bound.

export interface Timed {
  /** Absolute deadline in ms (Ticker.now scale); 0 = none. */
  deadline: number;
  onDeadline(now: number): void;
}

export class Ticker {
  private readonly items = new Set<Timed>();
  private timer: NodeJS.Timeout | null = null;
  /** Milliseconds, refreshed at each tick; cheap to read on the hot path. */
  now = Date.now();

  constructor(private readonly resolutionMs = 25) {}

  add(item: Timed): void {
    this.items.add(item);
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.resolutionMs);
      this.timer.unref();
    }
  }

  delete(item: Timed): void {
    this.items.delete(item);
  }

  /** Current time in ms, fresh (for deadlines set on the hot path, a tick-old `now` is fine). */
  fresh(): number {
    return (this.now = Date.now());
  }

  private tick(): void {
    const now = this.fresh();
    for (const item of this.items) {
      if (item.deadline !== 0 && item.deadline <= now) {
        this.items.delete(item);
        item.onDeadline(now);
      }
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.items.clear();
  }
}

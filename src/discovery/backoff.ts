// Retry delays for talking to etcd again: exponential with full jitter (a random delay between 0
// and the current ceiling), so sidecars that lost etcd together do not all come back at once.

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 250,
    private readonly capMs = 10_000,
  ) {}

  /** The delay before the next attempt; each call raises the ceiling (doubling, up to capMs). */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(Math.random() * ceiling);
  }

  /** After a success: the next failure starts from the base again. */
  reset(): void {
    this.attempt = 0;
  }
}

// A worker's drain: once it stops accepting, it waits until the last in-flight request ends
// (the exchange that finishes it says so through `exchangeDone`) or the timeout passes,
// whichever comes first. No polling.

export class Drain {
  private check: (() => void) | null = null;

  /** `inflight`: requests in flight on every listener of the worker, current and retired. */
  constructor(private readonly inflight: () => number) {}

  /** Resolves with the number of requests still in flight: 0, or those the timeout cut off. */
  wait(timeoutMs: number): Promise<number> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.check = null;
        resolve(this.inflight());
      };
      const timer = setTimeout(finish, timeoutMs);
      this.check = () => {
        if (this.inflight() === 0) finish();
      };
      this.check();
    });
  }

  /** An exchange ended: if it was the last one of a drain, the drain is over. */
  exchangeDone(): void {
    this.check?.();
  }
}

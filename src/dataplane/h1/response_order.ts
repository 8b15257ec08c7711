// The responses of a pipelined connection (ALPN PIPELINE_ALPN, only between outrigger sidecars
// over mTLS, src/net/alpn.ts): its requests are served concurrently and answered in request
// order. The response at the head writes to the socket; those behind it hold their bytes
// (StrictDownstream.holdOutput) and write them when they reach the head. Only H1Connection
// touches this; it owns the socket and decides when the connection stops.

import type { StrictDownstream } from './downstream.js';

/** Requests of one connection handed to the host and not yet answered in full; past it, reading pauses. */
export const MAX_IN_FLIGHT = 32;

export class ResponseOrder {
  /** Handed to the host, in request order, until their last byte went to the socket. */
  private readonly downs: StrictDownstream[] = [];

  get size(): number {
    return this.downs.length;
  }

  get full(): boolean {
    return this.downs.length >= MAX_IN_FLIGHT;
  }

  /** The response writing to the socket, or null. */
  get head(): StrictDownstream | null {
    return this.downs[0] ?? null;
  }

  /** Whether `down` is the last request handed to the host (so far). */
  isLast(down: StrictDownstream): boolean {
    return this.downs[this.downs.length - 1] === down;
  }

  /** A request handed to the host: its response goes after every one before it. */
  add(down: StrictDownstream): void {
    if (this.downs.length > 0) down.holdOutput();
    this.downs.push(down);
  }

  /**
   * After a response finished or was cut short: the finished ones at the head leave and the next
   * takes the head (its held bytes go out). False when a response cut short reached the head: the
   * bytes before it are written, and the connection must now close.
   */
  advance(): boolean {
    for (;;) {
      const head = this.downs[0];
      if (head === undefined) return true;
      if (head.cutShort) return false;
      if (!head.complete) return true;
      this.downs.shift();
      this.downs[0]?.promote();
    }
  }

  /** The connection is gone: every response still owed (the caller aborts their exchanges). */
  clear(): StrictDownstream[] {
    return this.downs.splice(0);
  }
}

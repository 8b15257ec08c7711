// Requests waiting for a way upstream (an HTTP/1.1 connection, an HTTP/2 stream): one endpoint
// pool's queue, counted against the bound its cluster shares across endpoints (beyond it a
// request is answered 503 overflow). Both pools queue through this, so the count cannot drift.

import { ProxyError } from '../errors.js';
import type { UpstreamRequest } from './channel.js';

/** Requests waiting, shared by every endpoint pool of one cluster. */
export interface PendingBudget {
  pending: number;
  max: number;
}

export class WaitQueue {
  private readonly reqs: UpstreamRequest[] = [];

  constructor(private readonly budget: PendingBudget) {}

  get length(): number {
    return this.reqs.length;
  }

  /** The cluster's bound is reached: the next request to wait is refused instead. */
  get full(): boolean {
    return this.budget.pending >= this.budget.max;
  }

  /** The refusal for a request that finds the queue full; `what` it would have waited for. */
  overflow(what: string): ProxyError {
    return new ProxyError('overflow', `${this.budget.pending} requests already wait for ${what}`);
  }

  push(req: UpstreamRequest): void {
    this.budget.pending++;
    this.reqs.push(req);
  }

  /** The longest waiting request, left in the queue. */
  get first(): UpstreamRequest | undefined {
    return this.reqs[0];
  }

  /** The longest waiting request, out of the queue. */
  shift(): UpstreamRequest | undefined {
    const req = this.reqs.shift();
    if (req !== undefined) this.budget.pending--;
    return req;
  }

  /** Withdraws a request (its client went away); nothing when it is not waiting. */
  remove(req: UpstreamRequest): void {
    const i = this.reqs.indexOf(req);
    if (i >= 0) {
      this.reqs.splice(i, 1);
      this.budget.pending--;
    }
  }

  /** Every waiting request, out of the queue. */
  takeAll(): UpstreamRequest[] {
    const all = this.reqs.splice(0);
    this.budget.pending -= all.length;
    return all;
  }
}

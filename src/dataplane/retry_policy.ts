// A route's retry policy applied to one exchange (DESIGN.md §4): which failed tries may be
// retried, how many are left, the backoff before the next (full jitter), and the cluster's retry
// budget — charged when a retry is allowed, and this exchange counted among the retries in flight
// from its first retry to its end. The exchange asks; this module decides and keeps the counts.
// A gRPC call is retried on the grpc-status codes `on` names only while nothing of its response
// has reached the client: the exchange asks with kind 'grpc' for a trailers-only response.

import type { RetrySpec } from '../config/types.js';
import type { Rng } from '../lb/types.js';
import type { Cluster } from '../upstream/cluster.js';
import { BodyFraming, type RequestHead } from './request_head.js';

/** Why a try failed, as far as retry policy cares: 'grpc' is a trailers-only gRPC response with a grpc-status other than 0. */
export type FailureKind = 'connect' | 'reset' | 'timeout' | 'status' | 'grpc';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class RetryPolicy {
  private left: number;
  /** This exchange is counted in its cluster's retries in flight. */
  private retrying = false;
  /**
   * A gRPC call whose method alone would not be retried (POST without allow_non_idempotent): the
   * gRPC codes `on` names still retry it, as gRPC's own retry policy does — naming a code says
   * the service may be called again after answering it. Other failures do not.
   */
  private readonly grpcCodesOnly: boolean;

  constructor(
    private readonly spec: RetrySpec | null,
    head: RequestHead,
    private readonly cluster: Cluster,
    /** The request is a gRPC call (HTTP/2, content-type application/grpc*). */
    grpc: boolean,
  ) {
    const byMethod = spec !== null && (spec.allowNonIdempotent || IDEMPOTENT.has(head.method));
    this.grpcCodesOnly = !byMethod && grpc && spec !== null && spec.grpcStatuses.length > 0;
    this.left = byMethod || this.grpcCodesOnly ? spec!.attempts : 0;
    // A body announced larger than the replay limit can never be replayed.
    if (this.left > 0 && head.framing === BodyFraming.Length && head.contentLength > spec!.maxBodyBytes) this.left = 0;
  }

  /** Bytes of request body kept for replay; -1 when no retry can happen (nothing is kept). */
  get replayLimit(): number {
    return this.left > 0 ? this.spec!.maxBodyBytes : -1;
  }

  /** The per-try timeout in ms (0 = none). */
  get perTryTimeoutMs(): number {
    return this.spec?.perTryTimeoutMs ?? 0;
  }

  /** The body outgrew the replay buffer: no retry is possible any more. */
  giveUp(): void {
    this.left = 0;
  }

  /**
   * Whether a failed try may be retried now; if so, the retry is charged to the cluster's budget.
   * `code`: the HTTP status for 'status', the grpc-status for 'grpc', else 0.
   */
  allows(kind: FailureKind, code: number, nowMs: number): boolean {
    const r = this.spec;
    if (r === null || this.left <= 0 || (this.grpcCodesOnly && kind !== 'grpc')) return false;
    let wanted: boolean;
    switch (kind) {
      case 'connect':
        wanted = r.onConnectFailure;
        break;
      case 'reset':
        wanted = r.onReset;
        break;
      case 'timeout':
        wanted = r.onReset || r.on5xx || r.onGatewayError;
        break;
      case 'status':
        wanted =
          (r.on5xx && code >= 500) || (r.onGatewayError && code >= 502 && code <= 504) || (r.onRetriable4xx && code === 409) || r.statuses.includes(code);
        break;
      case 'grpc':
        wanted = r.grpcStatuses.includes(code);
        break;
    }
    return wanted && this.cluster.retryBudget.tryAcquire(nowMs, this.cluster.active, this.retrying);
  }

  /** Takes the retry `allows` granted: returns the backoff in ms (full jitter, exponential, capped). */
  take(rng: Rng): number {
    const r = this.spec!;
    const n = r.attempts - this.left; // retries made before this one
    this.left--;
    if (!this.retrying) {
      this.retrying = true;
      this.cluster.retryBudget.retryStarted();
    }
    this.cluster.countRetry();
    const cap = Math.min(r.backoffMaxMs, r.backoffBaseMs * 2 ** n);
    return Math.floor(rng.next() * cap);
  }

  /** The exchange ended: it no longer counts among the retries in flight. */
  release(): void {
    if (this.retrying) {
      this.retrying = false;
      this.cluster.retryBudget.retryEnded();
    }
  }
}

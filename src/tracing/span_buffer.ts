// Worker side of tracing, off the request path: when a sampled request ends (its exchange, or a
// local reply), one plain SpanRecord describing its server span and client span joins a bounded
// buffer, which the worker hands to the main thread with its periodic stats message. Records of
// an interval beyond the bound are dropped and counted, never queued without limit.

import type { RequestHead } from '../dataplane/request_head.js';
import type { RetryEvent } from './tracer.js';
import { epochMs } from './tracer.js';

/** One sampled request, as the main thread exports it (otlp_json.ts): plain, structured-clone data. */
export interface SpanRecord {
  readonly traceId: string;
  readonly parentSpanId: string;
  readonly spanId: string;
  /** '' when no try was made (a local reply): no client span. */
  readonly clientSpanId: string;
  readonly startMs: number;
  readonly clientStartMs: number;
  readonly endMs: number;
  readonly listener: string;
  readonly method: string;
  readonly target: string;
  readonly host: string;
  readonly protocol: string;
  readonly status: number;
  readonly client: string;
  readonly peerIdentity: string | null;
  readonly route: string | null;
  readonly cluster: string | null;
  /** The endpoint of the last try. */
  readonly upstream: string | null;
  /** The local reply's error code (timeout, unauthorized, …), else null. */
  readonly error: string | null;
  readonly retries: readonly RetryEvent[] | null;
}

/** What a request left, for its span: the route and upstream it reached, or the error that answered it. */
export interface SpanOutcome {
  readonly listener: string;
  readonly route: string | null;
  readonly cluster: string | null;
  readonly upstream: string | null;
  readonly status: number;
  readonly error: string | null;
}

/** Spans of one stats interval a worker keeps at most (about 1 MiB of records); beyond, they are dropped. */
export const MAX_WORKER_SPANS = 4096;

export class SpanBuffer {
  private records: SpanRecord[] = [];
  private spans = 0;
  private dropped = 0;
  /**
   * The bound of this interval's spans: never more than the main thread's export queue may hold
   * (tracing.max_queued_spans: more would only be copied over to be dropped there).
   */
  limit = MAX_WORKER_SPANS;

  /** A new tracing config: its queue bound caps this buffer's. */
  configure(maxQueuedSpans: number | null): void {
    this.limit = Math.min(MAX_WORKER_SPANS, maxQueuedSpans ?? MAX_WORKER_SPANS);
  }

  /** A request ended: its record when it was sampled. */
  ended(head: RequestHead | null, o: SpanOutcome): void {
    const t = head?.trace;
    if (t === undefined || t === null || !t.sampled || head === null) return;
    const spans = t.clientStartMs > 0 ? 2 : 1;
    if (this.spans + spans > this.limit) {
      this.dropped += spans;
      return;
    }
    this.spans += spans;
    this.records.push({
      traceId: t.traceId,
      parentSpanId: t.parentSpanId,
      spanId: t.spanId,
      clientSpanId: t.clientStartMs > 0 ? t.clientSpanId : '',
      startMs: t.startMs,
      clientStartMs: t.clientStartMs,
      endMs: epochMs(),
      listener: o.listener,
      method: head.method,
      target: head.target,
      host: head.host,
      protocol: head.protocol,
      status: o.status,
      client: head.client,
      peerIdentity: head.peer,
      route: o.route,
      cluster: o.cluster,
      upstream: o.upstream,
      error: o.error,
      retries: t.retries,
    });
  }

  /** The records since the last call and the spans dropped meanwhile; null when there is nothing. */
  take(): { readonly records: SpanRecord[]; readonly dropped: number } | null {
    if (this.records.length === 0 && this.dropped === 0) return null;
    const out = { records: this.records, dropped: this.dropped };
    this.records = [];
    this.spans = 0;
    this.dropped = 0;
    return out;
  }
}

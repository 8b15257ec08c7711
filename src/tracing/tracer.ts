// Worker side of tracing, on the request path: reads the caller's trace context from a checked
// request head, decides whether the request is sampled, and says what trace headers go
// upstream. A sampled request gets a server span (the downstream request) and one client span
// (the upstream request, its retries as events); an unsampled one costs a header scan and, when
// it starts a trace, two ids. Nothing here does I/O: span_buffer.ts keeps the finished spans.

import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { TracingSpec } from '../config/types.js';
import { formatB3, formatB3Multi, formatTraceparent, parseB3Multi, parseB3Single, parseTraceparent, type ParentContext } from './context.js';

/** One retry of the client span: when it started and where it went. */
export interface RetryEvent {
  readonly timeMs: number;
  readonly attempt: number;
  readonly endpoint: string;
}

/** The trace of one request, on its RequestHead (request_head.ts). */
export class RequestTrace {
  /** Epoch ms (fractional) of the client span's start: the first try; 0 before it. */
  clientStartMs = 0;
  retries: RetryEvent[] | null = null;

  constructor(
    readonly traceId: string,
    /** The caller's span ('' when the trace starts here). */
    readonly parentSpanId: string,
    readonly sampled: boolean,
    /** Our server span ('' unsampled). */
    readonly spanId: string,
    /** Our client span, parent of the upstream's ('' unsampled). */
    readonly clientSpanId: string,
    /** Header lines to write upstream in place of the caller's trace headers; '' = forward the caller's unchanged. */
    readonly outgoing: string,
    /** Epoch ms (fractional) of the server span's start (0 unsampled). */
    readonly startMs: number,
  ) {}

  /** Exchange hook: a try starts (sampled traces only). The first opens the client span; later ones are retries. */
  tryStarted(attempt: number, endpoint: string): void {
    const now = epochMs();
    if (attempt === 1) {
      this.clientStartMs = now;
      return;
    }
    (this.retries ??= []).push({ timeMs: now, attempt, endpoint });
  }
}

/** Epoch milliseconds with sub-millisecond precision. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

// Random ids from a pool refilled 4 KiB at a time: one randomFillSync per 170 sampled requests.
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolAt = POOL_BYTES;

/** `bytes` random bytes as lower-case hex, never all zero (an invalid id in both formats). */
export function randomId(bytes: 8 | 16): string {
  for (;;) {
    if (poolAt + bytes > POOL_BYTES) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const start = poolAt;
    poolAt += bytes;
    for (let i = start; i < poolAt; i++) if (pool[i] !== 0) return pool.toString('hex', start, poolAt);
  }
}

/** The tracing settings one worker runs: decides and starts the trace of each request. */
export class Tracer {
  constructor(
    readonly spec: Pick<TracingSpec, 'sampleRate' | 'parentBased' | 'w3c' | 'b3'>,
    private readonly random: () => number = Math.random,
  ) {}

  /** The trace of a request whose flat, lower-case header list is `headers`. */
  begin(headers: readonly string[]): RequestTrace {
    const parent = readParent(headers);
    const sampled = this.sample(parent);
    if (!sampled && parent !== null) {
      // Not recorded: the caller's headers go on unchanged, its decision with them.
      return new RequestTrace(parent.traceId, parent.spanId, false, '', '', '', 0);
    }
    const traceId = parent?.traceId ?? randomId(16);
    if (!sampled) {
      // A trace starts here unrecorded: downstream sidecars see its id and its unsampled flag.
      return new RequestTrace(traceId, '', false, '', '', this.headersFor(traceId, randomId(8), false), 0);
    }
    const clientSpanId = randomId(8);
    return new RequestTrace(traceId, parent?.spanId ?? '', true, randomId(8), clientSpanId, this.headersFor(traceId, clientSpanId, true), epochMs());
  }

  /** Sampling: the caller's flag when parent-based and it gave one, else sample_rate. */
  sample(parent: ParentContext | null): boolean {
    if (parent !== null && parent.sampled !== null && this.spec.parentBased) return parent.sampled;
    const rate = this.spec.sampleRate;
    return rate >= 1 || (rate > 0 && this.random() < rate);
  }

  private headersFor(traceId: string, spanId: string, sampled: boolean): string {
    let out = '';
    if (this.spec.w3c) out += `traceparent: ${formatTraceparent(traceId, spanId, sampled)}\r\n`;
    // B3 in both forms: the single header for current Zipkin/Brave propagators, the X-B3-* headers
    // for apps that read only those (the caller's own B3 headers were dropped from the head).
    if (this.spec.b3) out += `b3: ${formatB3(traceId, spanId, sampled)}\r\n${formatB3Multi(traceId, spanId, sampled)}`;
    return out;
  }
}

/**
 * The caller's context: a valid traceparent first, else B3 single, else B3 multi; null when
 * none is valid. One pass over the headers; a name whose length none of the six has is passed over
 * before any comparison (most of a request's headers).
 */
export function readParent(headers: readonly string[]): ParentContext | null {
  let traceparent: string | undefined;
  let b3: string | undefined;
  let b3Trace: string | undefined;
  let b3Span: string | undefined;
  let b3Sampled: string | undefined;
  let b3Flags: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const n = name.length;
    if (n !== 2 && (n < 10 || n > 12)) continue;
    const value = headers[i + 1];
    if (name === 'traceparent') traceparent ??= value;
    else if (name === 'b3') b3 ??= value;
    else if (name === 'x-b3-traceid') b3Trace ??= value;
    else if (name === 'x-b3-spanid') b3Span ??= value;
    else if (name === 'x-b3-sampled') b3Sampled ??= value;
    else if (name === 'x-b3-flags') b3Flags ??= value;
  }
  const w3c = traceparent === undefined ? null : parseTraceparent(traceparent);
  if (w3c !== null) return w3c;
  const single = b3 === undefined ? null : parseB3Single(b3);
  if (single !== null) return single;
  return b3Trace === undefined || b3Span === undefined ? null : parseB3Multi(b3Trace, b3Span, b3Sampled, b3Flags);
}

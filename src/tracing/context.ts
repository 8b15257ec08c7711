// Trace context headers: W3C Trace Context `traceparent` (level 1) and B3 (single `b3` and the
// multi-header X-B3-*), read into one shape and written back. Pure functions over strings, no
// allocation beyond the strings themselves; ids are lower-case hex as both formats write them.

/** A caller's trace context, as read from its request headers. */
export interface ParentContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros). */
  readonly traceId: string;
  /** 16 lower-case hex digits: the caller's span, parent of ours. */
  readonly spanId: string;
  /** The caller's sampled flag; null when it left the decision to us (B3 without a sampling state). */
  readonly sampled: boolean | null;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * Parses a `traceparent` value (W3C Trace Context §3.2). Invalid → null (the request is then
 * treated as carrying none): version ff, a version 00 value that is not exactly 55 characters,
 * upper-case hex, all-zero trace or parent ids. A higher version is read by its version-00 prefix
 * when what follows it starts with `-`, as the spec asks.
 */
export function parseTraceparent(value: string): ParentContext | null {
  const m = TRACEPARENT.exec(value);
  if (m === null) return null;
  const version = m[1]!;
  if (version === 'ff') return null;
  if (version === '00' && value.length !== 55) return null;
  const traceId = m[2]!;
  const spanId = m[3]!;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, sampled: (parseInt(m[4]!, 16) & 1) === 1 };
}

/** The `traceparent` value for our span. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

const B3_ID = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
const B3_SPAN = /^[0-9a-f]{16}$/;

/** A B3 trace id as 32 hex digits (64-bit ids are left-padded), or null when it is not one. */
function b3TraceId(v: string): string | null {
  if (!B3_ID.test(v)) return null;
  const id = v.length === 16 ? `${ZERO_SPAN}${v}` : v;
  return id === ZERO_TRACE ? null : id;
}

/** X-B3-Sampled: `1` (or the older `true`) sampled, `0`/`false` not, absent deferred; anything else is invalid. */
function b3Sampled(v: string | undefined): boolean | null | undefined {
  switch (v) {
    case undefined:
      return null;
    case '1':
    case 'true':
      return true;
    case '0':
    case 'false':
      return false;
    default:
      return undefined;
  }
}

/**
 * Parses a B3 single header, `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`. A value
 * with only a sampling state carries no ids and is treated as absent (a new trace starts).
 */
export function parseB3Single(value: string): ParentContext | null {
  const parts = value.split('-');
  if (parts.length < 2 || parts.length > 4) return null;
  const traceId = b3TraceId(parts[0]!);
  const spanId = parts[1]!;
  if (traceId === null || !B3_SPAN.test(spanId) || spanId === ZERO_SPAN) return null;
  if (parts.length === 4 && !B3_SPAN.test(parts[3]!)) return null;
  const state = parts[2];
  if (state !== undefined && state !== '0' && state !== '1' && state !== 'd') return null;
  return { traceId, spanId, sampled: state === undefined ? null : state !== '0' };
}

/** Parses the B3 multi-header form (X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags: 1 = debug). */
export function parseB3Multi(traceIdValue: string, spanIdValue: string, sampledValue: string | undefined, flags: string | undefined): ParentContext | null {
  const traceId = b3TraceId(traceIdValue);
  if (traceId === null || !B3_SPAN.test(spanIdValue) || spanIdValue === ZERO_SPAN) return null;
  const sampled = flags === '1' ? true : b3Sampled(sampledValue);
  if (sampled === undefined) return null;
  return { traceId, spanId: spanIdValue, sampled };
}

/** The B3 single value for our span. */
export function formatB3(traceId: string, spanId: string, sampled: boolean): string {
  return `${traceId}-${spanId}-${sampled ? '1' : '0'}`;
}

/** B3 multi header lines (`x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`), each ending in CRLF. */
export function formatB3Multi(traceId: string, spanId: string, sampled: boolean): string {
  return `x-b3-traceid: ${traceId}\r\nx-b3-spanid: ${spanId}\r\nx-b3-sampled: ${sampled ? '1' : '0'}\r\n`;
}

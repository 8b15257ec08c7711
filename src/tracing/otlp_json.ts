// SpanRecords (span_buffer.ts) as an OTLP/JSON ExportTraceServiceRequest (OTLP 1.x, JSON
// Protobuf encoding: lowerCamelCase fields, ids as hex, enums as numbers, 64-bit integers as
// decimal strings). Attribute names follow OpenTelemetry's HTTP semantic conventions; our own
// are outrigger.*. A record makes a SERVER span and, when a try was made, a CLIENT span under it.

import type { SpanRecord } from './span_buffer.js';

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_CODE_ERROR = 2;

type AnyValue = { stringValue: string } | { intValue: string };
interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  events?: Array<{ timeUnixNano: string; name: string; attributes: KeyValue[] }>;
  status?: { code: number; message: string };
}

export interface OtlpTraceRequest {
  resourceSpans: Array<{
    resource: { attributes: KeyValue[] };
    scopeSpans: Array<{ scope: { name: string; version: string }; spans: OtlpSpan[] }>;
  }>;
}

/** The scope our spans are reported under. */
export const SCOPE = { name: 'outrigger', version: '0.1.0' } as const;

/** One export request for `records`, under resource attribute service.name. */
export function toOtlpJson(records: readonly SpanRecord[], serviceName: string): OtlpTraceRequest {
  const spans: OtlpSpan[] = [];
  for (const r of records) {
    spans.push(serverSpan(r));
    if (r.clientSpanId !== '') spans.push(clientSpan(r));
  }
  return {
    resourceSpans: [{ resource: { attributes: [str('service.name', serviceName)] }, scopeSpans: [{ scope: { ...SCOPE }, spans }] }],
  };
}

/** Spans a record makes (the queue's bound counts spans). */
export function spansOf(r: SpanRecord): number {
  return r.clientSpanId === '' ? 1 : 2;
}

function serverSpan(r: SpanRecord): OtlpSpan {
  const q = r.target.indexOf('?');
  const { host, port } = splitHostPort(r.host);
  const attributes = [
    str('http.request.method', r.method),
    str('url.path', q < 0 ? r.target : r.target.slice(0, q)),
    str('server.address', host),
    str('network.protocol.version', r.protocol.slice(5)),
    str('outrigger.listener', r.listener),
  ];
  if (q >= 0) attributes.push(str('url.query', r.target.slice(q + 1)));
  if (port !== '') attributes.push(int('server.port', Number(port)));
  if (r.status > 0) attributes.push(int('http.response.status_code', r.status));
  if (r.client !== '') attributes.push(str('client.address', r.client), str('network.peer.address', r.client));
  if (r.peerIdentity !== null) attributes.push(str('outrigger.peer_identity', r.peerIdentity));
  return withErrorStatus(spanOf(r, SPAN_KIND_SERVER, r.spanId, r.parentSpanId, r.startMs, attributes), r);
}

function clientSpan(r: SpanRecord): OtlpSpan {
  const { host, port } = splitHostPort(r.upstream ?? '');
  const attributes = [str('http.request.method', r.method), str('url.full', `http://${r.upstream ?? ''}${r.target}`), str('server.address', host)];
  if (port !== '') attributes.push(int('server.port', Number(port)));
  if (r.status > 0) attributes.push(int('http.response.status_code', r.status));
  if (r.retries !== null) attributes.push(int('http.request.resend_count', r.retries.length));
  const span = spanOf(r, SPAN_KIND_CLIENT, r.clientSpanId, r.spanId, r.clientStartMs, attributes);
  if (r.retries !== null) {
    span.events = r.retries.map((e) => ({
      timeUnixNano: nanos(e.timeMs),
      name: 'retry',
      attributes: [int('outrigger.attempt', e.attempt), str('outrigger.endpoint', e.endpoint)],
    }));
  }
  return withErrorStatus(span, r);
}

/**
 * A span of the record's trace (`parentSpanId` '' = a root), named by the method, ending with the
 * request; both kinds close their attributes with the route and cluster it went to.
 */
function spanOf(r: SpanRecord, kind: number, spanId: string, parentSpanId: string, startMs: number, attributes: KeyValue[]): OtlpSpan {
  if (r.route !== null) attributes.push(str('outrigger.route', r.route));
  if (r.cluster !== null) attributes.push(str('outrigger.cluster', r.cluster));
  const span: OtlpSpan = {
    traceId: r.traceId,
    spanId,
    name: r.method,
    kind,
    startTimeUnixNano: nanos(startMs),
    endTimeUnixNano: nanos(r.endMs),
    attributes,
  };
  if (parentSpanId !== '') span.parentSpanId = parentSpanId;
  return span;
}

/** ERROR on a 5xx, on a local reply (its error code the message), and on a response cut short (status 0). */
function withErrorStatus(span: OtlpSpan, r: SpanRecord): OtlpSpan {
  if (r.error !== null || r.status >= 500 || r.status === 0) {
    const message = r.error ?? (r.status === 0 ? 'no complete response' : String(r.status));
    span.status = { code: STATUS_CODE_ERROR, message };
    span.attributes.push(str('error.type', r.error ?? (r.status === 0 ? 'aborted' : String(r.status))));
  }
  return span;
}

/** Epoch ms (fractional) as nanoseconds in a decimal string (beyond 2^53: integer math on the parts). */
export function nanos(ms: number): string {
  const whole = Math.floor(ms);
  const sub = Math.min(999_999, Math.round((ms - whole) * 1e6));
  return `${whole}${String(sub).padStart(6, '0')}`;
}

/** `host:port`, `[v6]:port` or a bare host into its parts ('' port when none). */
function splitHostPort(hp: string): { host: string; port: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(hp);
  if (m === null) return { host: hp, port: '' };
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ?? '' };
}

function str(key: string, value: string): KeyValue {
  return { key, value: { stringValue: value } };
}

function int(key: string, value: number): KeyValue {
  return { key, value: { intValue: String(value) } };
}

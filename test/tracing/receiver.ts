// A test OTLP/HTTP trace receiver on 127.0.0.1:0. Every body is decoded with the official
// OpenTelemetry protos (the protobufjs root generated from opentelemetry-proto that
// @opentelemetry/otlp-transformer ships): protobuf bodies with decode(), OTLP/JSON bodies by
// turning their hex ids into the bytes the proto declares and verify() + fromObject(), then an
// encode/decode round trip. A body the protos refuse fails the test (its error is kept).

import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { track } from '../helpers/live.js';

interface ProtoType {
  decode(b: Uint8Array): unknown;
  encode(m: unknown): { finish(): Uint8Array };
  verify(o: unknown): string | null;
  fromObject(o: unknown): unknown;
  toObject(m: unknown, opts: Record<string, unknown>): unknown;
}
const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access -- a generated CommonJS module without types we can name
const ExportTraceServiceRequest: ProtoType = require('@opentelemetry/otlp-transformer/build/src/generated/root.js').opentelemetry.proto.collector.trace.v1
  .ExportTraceServiceRequest;

/** One received span, flattened with its resource and scope. */
export interface ReceivedSpan {
  readonly service: string;
  readonly scope: string;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** 2 SERVER, 3 CLIENT. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Readonly<Record<string, string | number | boolean>> }>;
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
}

export interface Receiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Bodies the protos refused (should stay empty). */
  readonly errors: string[];
  /** Content types of the bodies received. */
  readonly contentTypes: Set<string>;
  close(): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access -- protobufjs's 64-bit integer type, as the generated code uses it
const Long: { fromString(s: string, unsigned: boolean): unknown } = require('protobufjs/minimal').util.Long;

const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);
const INT64_FIELDS = new Set(['startTimeUnixNano', 'endTimeUnixNano', 'timeUnixNano', 'intValue']);

/**
 * OTLP/JSON as the proto's own verify() reads it: ids are hex in OTLP/JSON (a documented
 * difference from proto3 JSON's base64) and 64-bit integers decimal strings (proto3 JSON), which
 * verify() wants as Longs. Anything else is left for verify() to judge.
 */
function forVerify(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(forVerify);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (ID_FIELDS.has(k) && typeof x === 'string') out[k] = Buffer.from(x, 'hex').toString('base64');
    else if (INT64_FIELDS.has(k) && (typeof x === 'string' || typeof x === 'number')) out[k] = Long.fromString(String(x), k !== 'intValue');
    else out[k] = forVerify(x);
  }
  return out;
}

/** Decodes one body with the official protos; throws what they refuse. */
export function decodeExport(body: Buffer, contentType: string): unknown {
  let msg: unknown;
  if (contentType.includes('protobuf')) {
    msg = ExportTraceServiceRequest.decode(body);
  } else {
    const obj = forVerify(JSON.parse(body.toString('utf8')));
    const problem = ExportTraceServiceRequest.verify(obj);
    if (problem !== null) throw new Error(`OTLP/JSON refused by the proto: ${problem}`);
    msg = ExportTraceServiceRequest.fromObject(obj);
  }
  // Round trip through the wire format: what we read is what the proto can carry.
  const again = ExportTraceServiceRequest.decode(ExportTraceServiceRequest.encode(msg).finish());
  return ExportTraceServiceRequest.toObject(again, { longs: String, bytes: String, defaults: true, enums: Number });
}

type Attr = { key: string; value: Record<string, unknown> };
function attrs(list: readonly Attr[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const a of list) {
    const v = a.value;
    if (typeof v['stringValue'] === 'string' && v['stringValue'] !== '') out[a.key] = v['stringValue'];
    else if (v['intValue'] !== undefined && v['intValue'] !== '0') out[a.key] = Number(v['intValue']);
    else if (v['boolValue'] === true) out[a.key] = true;
    else out[a.key] = (v['stringValue'] as string | undefined) ?? Number(v['intValue'] ?? 0);
  }
  return out;
}

const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

/** The spans of a decoded request, flattened. */
export function flatten(decoded: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  type Decoded = {
    resourceSpans: Array<{
      resource: { attributes: Attr[] };
      scopeSpans: Array<{ scope: { name: string }; spans: Array<Record<string, unknown>> }>;
    }>;
  };
  for (const rs of (decoded as Decoded).resourceSpans) {
    const service = String(attrs(rs.resource.attributes)['service.name'] ?? '');
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        out.push({
          service,
          scope: ss.scope.name,
          traceId: hex(s['traceId'] as string),
          spanId: hex(s['spanId'] as string),
          parentSpanId: hex(s['parentSpanId'] as string),
          name: s['name'] as string,
          kind: s['kind'] as number,
          startNs: BigInt(s['startTimeUnixNano'] as string),
          endNs: BigInt(s['endTimeUnixNano'] as string),
          attributes: attrs(s['attributes'] as Attr[]),
          events: (s['events'] as Array<{ name: string; attributes: Attr[] }>).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
          statusCode: (s['status'] as { code: number } | null)?.code ?? 0,
        });
      }
    }
  }
  return out;
}

export async function startReceiver(): Promise<Receiver> {
  const spans: ReceivedSpan[] = [];
  const errors: string[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = req.headers['content-type'] ?? '';
      contentTypes.add(type);
      try {
        if (req.method !== 'POST' || req.url !== '/v1/traces') throw new Error(`unexpected ${req.method} ${req.url}`);
        spans.push(...flatten(decodeExport(Buffer.concat(chunks), type)));
        res.writeHead(200, { 'content-type': type.includes('protobuf') ? 'application/x-protobuf' : 'application/json' });
        res.end(type.includes('protobuf') ? '' : '{}');
      } catch (e) {
        errors.push((e as Error).message);
        res.writeHead(400);
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  track({ close });
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, errors, contentTypes, close };
}

// The standard gRPC health-checking protocol (grpc.health.v1.Health/Check) as the active health
// checker speaks it: the request body (a length-prefixed HealthCheckRequest) and the verdict on an
// answer (grpc-status, then HealthCheckResponse.status). The two messages are tiny, so their
// protobuf encoding is written out here instead of pulling in a protobuf library. Pure functions.

import { grpcMessageDecode } from '../grpc/wire.js';

/** HealthCheckResponse.ServingStatus: only SERVING passes. */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/** Protobuf wire types this decoder can skip over (groups, 3 and 4, are long gone from proto3). */
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

/** The gRPC request body of a check: one uncompressed message `HealthCheckRequest {string service = 1}`.
 *  An empty service (the server as a whole) is the empty message, as proto3 omits default values. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([(1 << 3) | LEN]), encodeVarint(name.length), name]);
  const frame = Buffer.alloc(5);
  frame.writeUInt8(0, 0); // not compressed
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

/** HealthCheckResponse.status (field 1, enum) of a gRPC response body holding one message;
 *  UNKNOWN (0) when the field is absent. Throws on a body that is not one well-formed message. */
export function decodeServingStatus(body: Buffer): number {
  if (body.length < 5) throw new Error(`response body of ${body.length} bytes is not a gRPC message`);
  if (body[0] !== 0) throw new Error('compressed response message (the check asks for none)');
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new Error(`response body of ${body.length} bytes does not hold one ${length}-byte message`);
  let status: number = ServingStatus.UNKNOWN;
  const r = { buf: body, at: 5 };
  while (r.at < body.length) {
    const key = readVarint(r);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 1 && wire === VARINT) status = readVarint(r);
    else skipField(r, wire);
  }
  return status;
}

/** Why an answer to a check fails it, or null when it passes: the call must end with grpc-status 0
 *  and carry a response whose status is SERVING. */
export function grpcCheckVerdict(grpcStatus: string | undefined, grpcMessage: string | undefined, body: Buffer): string | null {
  if (grpcStatus === undefined) return 'gRPC answer without grpc-status';
  if (grpcStatus !== '0') return `grpc-status ${grpcStatus}${grpcMessage ? `: ${grpcMessageDecode(grpcMessage)}` : ''}`;
  let status: number;
  try {
    status = decodeServingStatus(body);
  } catch (err) {
    return `bad HealthCheckResponse: ${(err as Error).message}`;
  }
  return status === ServingStatus.SERVING ? null : `serving status ${STATUS_NAMES[status] ?? status}`;
}

function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

interface Reader {
  readonly buf: Buffer;
  at: number;
}

/** A varint up to 2^53 (enough for keys, lengths and enum values; larger ones are refused). */
function readVarint(r: Reader): number {
  let value = 0;
  for (let shift = 0; shift < 53; shift += 7) {
    const b = r.buf[r.at++];
    if (b === undefined) throw new Error('truncated varint');
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return value;
  }
  throw new Error('varint too long');
}

function skipField(r: Reader, wire: number): void {
  switch (wire) {
    case VARINT:
      readVarint(r);
      return;
    case FIXED64:
      r.at += 8;
      break;
    case LEN: {
      const length = readVarint(r); // read before `r.at` is: the varint moves it
      r.at += length;
      break;
    }
    case FIXED32:
      r.at += 4;
      break;
    default:
      throw new Error(`unsupported wire type ${wire}`);
  }
  if (r.at > r.buf.length) throw new Error('truncated field');
}

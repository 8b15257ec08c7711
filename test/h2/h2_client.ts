// A small node:http2 client for the HTTP/2 listener tests: one session per call site, requests
// that collect status, headers, body bytes and trailers, every wait bounded; raw frames for the
// rest.

import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { track } from '../helpers/live.js';

export interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | null;
  /** The stream was reset or failed before its end (with node's error code). */
  error: string | null;
  rstCode: number;
}

/** Opens a session (tracked: closeAll() destroys it). */
export function h2connect(authority: string, opts: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(authority, opts);
    track({ close: () => Promise.resolve(s.destroy()) });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One request: `body` sent in one piece (or a list of pieces), `end` false leaves the stream open for the caller. */
export function h2request(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body: Buffer | string | null = null, timeoutMs = 20_000): Promise<H2Answer> {
  return new Promise((resolve) => {
    const req = s.request(headers, { endStream: body === null });
    const out: H2Answer = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: null, error: null, rstCode: 0 };
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      out.error = 'timeout';
      req.close();
    }, timeoutMs);
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      out.headers = h;
    });
    req.on('trailers', (h: IncomingHttpHeaders) => {
      out.trailers = h;
    });
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', (e: NodeJS.ErrnoException) => {
      out.error ??= e.code ?? e.message;
    });
    req.on('close', () => {
      clearTimeout(t);
      out.body = Buffer.concat(chunks);
      out.rstCode = req.rstCode ?? 0;
      resolve(out);
    });
    if (body !== null) req.end(body);
  });
}

/** One raw HTTP/2 frame, for what node:http2 will not send: the 9-byte header (length, type, flags, stream id), then the payload. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

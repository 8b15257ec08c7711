// The one place where a ProxyError becomes a response (DESIGN.md §6): status from the code,
// `x-outrigger-error: <code>`, a short JSON body. Malformed requests also close the connection
// (whatever the client sends next cannot be trusted to be framed right). Every downstream (uWS,
// node:http, the raw-socket engines) writes what `localReply` renders; none builds its own.

import { localReplyBody, type ProxyError } from '../errors.js';

const REASON: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  417: 'Expectation Failed',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A rendered local reply: what every engine writes for a ProxyError. */
export interface LocalReply {
  readonly status: number;
  readonly reason: string;
  /** Lower-case names, in order; Content-Length and Date are the engine's to add. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
  /** The connection closes after this reply (malformed requests and timeouts of the head). */
  readonly close: boolean;
}

export function localReply(err: ProxyError, requestId: string | null, detail: boolean): LocalReply {
  const status = err.status;
  const headers: Array<readonly [string, string]> = [
    ['x-outrigger-error', err.code],
    ['content-type', 'application/json'],
  ];
  if (requestId !== null && requestId !== '') headers.push(['x-request-id', requestId]);
  return {
    status,
    reason: REASON[status] ?? 'Error',
    headers,
    body: localReplyBody(err, requestId, detail),
    close: status === 400 || status === 408 || status === 431,
  };
}

/**
 * The reply as raw HTTP/1.1 bytes (Content-Length, and Connection: close when the connection
 * closes after it: `close`, by default when the reply itself demands it), for engines that write
 * to the socket.
 */
export function localReplyBytes(r: LocalReply, date: string | null, close = r.close): string {
  let head = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  for (const [name, value] of r.headers) head += `${name}: ${value}\r\n`;
  if (date !== null) head += `date: ${date}\r\n`;
  head += `content-length: ${Buffer.byteLength(r.body)}\r\n`;
  if (close) head += 'connection: close\r\n';
  return `${head}\r\n${r.body}`;
}

// The one place where a ProxyError becomes a response (DESIGN.md §6): status from the code,
// `x-outrigger-error: <code>`, a short JSON body. Malformed requests also close the connection
// (whatever the client sends next cannot be trusted to be framed right).

import type { HttpResponse } from 'uWebSockets.js';
import { localReplyBody, type ProxyError } from '../errors.js';

const REASON: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Writes the error response. Must run inside a uWS handler or a res.cork() callback. */
export function writeLocalReply(res: HttpResponse, err: ProxyError, requestId: string | null, detail: boolean): void {
  const status = err.status;
  const body = localReplyBody(err, requestId, detail);
  res.writeStatus(`${status} ${REASON[status] ?? 'Error'}`);
  res.writeHeader('x-outrigger-error', err.code);
  res.writeHeader('content-type', 'application/json');
  if (requestId !== null) res.writeHeader('x-request-id', requestId);
  res.end(body, status === 400 || status === 431);
}

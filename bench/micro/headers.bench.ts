// Request header handling on the hot path (src/dataplane/request_head.ts): the checks every
// request head passes and the upstream head we build (hop-by-hop removal, x-forwarded-*,
// x-request-id). Driven through readNodeRequestHead with a plain object standing in for the
// request (the uWS entry point needs a live uWS request; the checks are the same code).

import type { IncomingMessage } from 'node:http';
import type { Bench } from 'tinybench';
import { buildUpstreamHead, readNodeRequestHead } from '../../src/dataplane/request_head.js';

export const title = 'headers: check a request head, build the upstream head';

function request(extra: string[]): IncomingMessage {
  return {
    method: 'GET',
    url: '/api/v1/users?limit=10',
    rawHeaders: ['Host', 'api.internal', 'User-Agent', 'curl/8.0', 'Accept', '*/*', 'X-Request-Id', 'abc-123', ...extra],
  } as unknown as IncomingMessage;
}

/** The default underscore-header policy (nothing to drop in these heads). */
const DROP = { action: 'drop' as const, dropped: 0 };

export function register(bench: Bench): void {
  const small = request([]);
  const hop = request(['Connection', 'keep-alive, x-hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'X-Forwarded-For', '10.0.0.1']);
  const many = request(Array.from({ length: 40 }, (_, i) => [`X-Custom-${i}`, `value-${i}`]).flat());
  bench.add('4 headers: check + build', () => {
    buildUpstreamHead(readNodeRequestHead(small, 65536, DROP), '127.0.0.1', 'http');
  });
  bench.add('9 headers with hop-by-hop: check + build', () => {
    buildUpstreamHead(readNodeRequestHead(hop, 65536, DROP), '127.0.0.1', 'http');
  });
  bench.add('44 headers: check + build', () => {
    buildUpstreamHead(readNodeRequestHead(many, 65536, DROP), '127.0.0.1', 'http');
  });
}

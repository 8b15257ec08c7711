// What the DNS discovery tests share: the named HTTP servers their DNS records point at, and
// what a client through the sidecar gets from them.

import http from 'node:http';
import { httpGet, keepAlive, type Sidecar } from '../helpers/sidecar.js';

/** An HTTP server on host:port answering its name, counting the TCP connections it accepted. */
export interface Named {
  readonly name: string;
  readonly port: number;
  connections: number;
  close(): Promise<void>;
}

export async function named(name: string, host: string, port = 0): Promise<Named> {
  const server = http.createServer((_req, res) => res.end(name));
  // Longer than the test: a pooled connection is closed by the sidecar, never by the server.
  server.keepAliveTimeout = 120_000;
  const n = { name, port: 0, connections: 0, close: () => new Promise<void>((r) => server.close(() => r())) };
  server.on('connection', () => n.connections++);
  await new Promise<void>((r) => server.listen(port, host, r));
  n.port = (server.address() as { port: number }).port;
  server.unref();
  return n;
}

/** Bodies of `n` sequential requests to `/` through the sidecar (one keep-alive client connection); a refusal reads `<status> <x-outrigger-error>`. */
export async function bodies(sc: Sidecar, n: number): Promise<string[]> {
  const agent = keepAlive(1);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = await httpGet(sc.url('/'), { agent });
    out.push(a.status === 200 ? a.text : `${a.status} ${String(a.headers['x-outrigger-error'])}`);
  }
  return out;
}

// A Node `http` hello-world upstream, run as its own process: an app as most sidecars front it
// (Node's server takes pipelined requests and answers them in order). Same answers as server.ts
// for GET / ("hello world", text/plain). Used by cpu_split.ts --upstream node.
// Usage: node dist/bench/upstream/node_server.js [port]   (port 0 or absent: any free port)
// Prints one JSON line {"msg":"listening","port":N} when ready; exits 0 on SIGTERM.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

const hello = Buffer.from('hello world');

const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': hello.length });
  res.end(hello);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

// The gRPC upstream for the HTTP/2 benchmarks, run as its own process: a node:http2 h2c server
// that answers every POST with a well-formed unary gRPC response — HEADERS (200,
// content-type application/grpc), one length-prefixed message "hello", trailers grpc-status 0 —
// without a protobuf library, so the cost measured is the proxies', not a gRPC framework's.
// Usage: node dist/bench/upstream/grpc_server.js [port]   (0 or absent: any free port)
// Prints one JSON line {"msg":"listening","port":N} when ready; exits 0 on SIGTERM.

import http2 from 'node:http2';

const message = Buffer.from('hello');
/** gRPC length-prefixed message: compressed flag 0, 4-byte big-endian length, the bytes. */
const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => {}); // a client that goes away mid-stream is not this server's problem
  // Read the request to its end (flow control), then answer.
  stream.resume();
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(framed);
  });
});

const port = Number(process.argv[2] ?? 0);
server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof a === 'object' && a !== null ? a.port : port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

// The WebSocket upstream for the WebSocket benchmark, run as its own process: node:http with a
// `ws` server on every path that echoes each message back as it came (text as text, binary as
// binary), without compression, so the cost measured is the proxies' and not a deflate's.
// Usage: node dist/bench/upstream/ws_server.js [port]   (0 or absent: any free port)
// Prints one JSON line {"msg":"listening","port":N} when ready; exits 0 on SIGTERM.

import http from 'node:http';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

const server = http.createServer((_req, res) => res.end('websocket echo'));
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });

function echo(this: WebSocket, data: RawData, isBinary: boolean): void {
  this.send(data as Buffer, { binary: isBinary });
}

wss.on('connection', (ws) => {
  ws.on('error', () => {}); // a client that goes away mid-message is not this server's problem
  ws.on('message', echo);
});

const port = Number(process.argv[2] ?? 0);
server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof a === 'object' && a !== null ? a.port : port })}\n`);
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
});

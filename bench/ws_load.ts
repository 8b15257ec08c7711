// The WebSocket load client, run as its own process so its CPU is never counted as a proxy's:
// CONNECTIONS sockets, each keeping INFLIGHT binary messages of SIZE bytes in flight against an
// echo server for SECONDS (closed loop: each echo that comes back sends the next message). A
// round trip is timed from its send to its echo (a socket's echoes come back in order, so a FIFO
// of send times per socket pairs them). Only echoes inside the window count.
// Usage: node dist/bench/ws_load.js URL CONNECTIONS INFLIGHT SIZE SECONDS
// Prints one JSON line: {messages, perSecond, mismatched, lost, p50, p99, max} (latencies in µs;
// mismatched: echoes of another length; lost: sockets that closed or failed inside the window).

import hdr from 'hdr-histogram-js';
import WebSocket, { type RawData } from 'ws';

const [url, connArg, inflightArg, sizeArg, secondsArg] = process.argv.slice(2);
if (url === undefined || connArg === undefined || inflightArg === undefined || sizeArg === undefined || secondsArg === undefined) {
  process.stderr.write('usage: node dist/bench/ws_load.js URL CONNECTIONS INFLIGHT SIZE SECONDS\n');
  process.exit(2);
}
const connections = Number(connArg);
const inflight = Number(inflightArg);
const size = Number(sizeArg);
const seconds = Number(secondsArg);
const payload = Buffer.alloc(size, 'x');

const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
let running = false;
let messages = 0;
let mismatched = 0;
let lost = 0;

/** One socket of the load: its send times, oldest first. */
class Loop {
  private readonly sentAt: bigint[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => this.onEcho(data as Buffer));
    ws.on('close', () => {
      if (running) lost++;
    });
    ws.on('error', () => {}); // counted at close
  }

  send(): void {
    this.sentAt.push(process.hrtime.bigint());
    this.ws.send(payload, { binary: true });
  }

  private onEcho(data: Buffer): void {
    const sent = this.sentAt.shift();
    if (!running || sent === undefined) return;
    if (data.length !== size) mismatched++;
    messages++;
    histogram.recordValue(Number((process.hrtime.bigint() - sent) / 1000n));
    this.send();
  }
}

function open(): Promise<WebSocket> {
  const ws = new WebSocket(url!, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
}

// Every socket open first, so the handshakes are not in the first round trips.
const sockets = await Promise.all(Array.from({ length: connections }, open)).catch((e: unknown) => {
  process.stderr.write(`ws_load: ${(e as Error).message}\n`);
  process.exit(1);
});
const loops = sockets.map((ws) => new Loop(ws));
running = true;
const start = process.hrtime.bigint();
for (const loop of loops) for (let i = 0; i < inflight; i++) loop.send();
setTimeout(() => {
  running = false;
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  const p = (q: number): number => histogram.getValueAtPercentile(q);
  process.stdout.write(`${JSON.stringify({ messages, perSecond: messages / elapsedS, mismatched, lost, p50: p(50), p99: p(99), max: histogram.maxValue })}\n`);
  for (const loop of loops) loop.ws.terminate();
  process.exit(0);
}, seconds * 1000);

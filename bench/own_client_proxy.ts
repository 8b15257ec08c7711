// A minimal reverse proxy for comparison only: the same shape as bench/undici_proxy.ts (uWS
// server, no routing, no checks, no stats) but with outrigger's own HTTP/1.1 client (pool,
// connection, strict parser). Isolates the upstream client's cost. Used by client_compare.ts.
// Usage: node dist/bench/own_client_proxy.js LISTEN_PORT UPSTREAM_PORT

import uWS from 'uWebSockets.js';
import type { ProxyError } from '../src/errors.js';
import type { UpstreamConnection, UpstreamRequest } from '../src/upstream/connection.js';
import { EndpointPool } from '../src/upstream/pool.js';
import { Ticker } from '../src/upstream/ticker.js';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number) as [number, number];
const ticker = new Ticker(25);
const pool = new EndpointPool(
  '127.0.0.1',
  upstreamPort,
  {
    connectionsPerWorker: 64,
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 1000,
    keepaliveIntervalMs: 0,
    pipelineDepth: 1,
    pipelinePlaintext: 'off',
    maxPending: 1024,
  },
  { pending: 0, max: 1024 },
  ticker,
);

class Req implements UpstreamRequest {
  readonly isHead = false;
  readonly pipelinable = true;
  readonly movable = true;
  aborted = false;
  constructor(
    private readonly res: uWS.HttpResponse,
    readonly upstreamHead: string,
    readonly head: { method: string; target: string },
  ) {}
  onConnection(conn: UpstreamConnection): void {
    conn.sendHead(this, true);
  }
  onUpstreamError(_err: ProxyError): void {
    if (!this.aborted) this.res.cork(() => this.res.writeStatus('502').end());
  }
  onUpstreamWritable(): void {}
  runCorked(task: () => void): void {
    if (this.aborted) task();
    else this.res.cork(task);
  }
  onHead(status: number, reason: string, headers: string[]): void {
    if (this.aborted) return;
    this.res.writeStatus(`${status} ${reason}`);
    for (let i = 0; i < headers.length; i += 2) {
      const k = headers[i]!;
      if (k !== 'content-length' && k !== 'date' && k !== 'connection' && k !== 'keep-alive') this.res.writeHeader(k, headers[i + 1]!);
    }
  }
  onBody(chunk: Buffer): void {
    if (!this.aborted) this.res.end(chunk);
  }
  onEnd(): void {}
}

uWS
  .App()
  .any('/*', (res, req) => {
    const method = req.getCaseSensitiveMethod();
    const target = req.getUrl();
    const r = new Req(res, `${method} ${target} HTTP/1.1\r\nhost: ${req.getHeader('host')}\r\n\r\n`, { method, target });
    res.onAborted(() => (r.aborted = true));
    pool.dispatch(r);
  })
  .listen('127.0.0.1', listenPort, (s) => {
    if (s === false) process.exit(1);
    process.stdout.write(`{"msg":"listening","port":${listenPort}}\n`);
  });

// A minimal reverse proxy for comparison only: uWS server + undici 7 Pool.dispatch() with an
// old-style handler object (the fastest way to drive undici, per its own benchmarks). No
// routing, no checks, no stats: the floor of "uWS + undici". Used by bench/client_compare.ts.
// Usage: node dist/bench/undici_proxy.js LISTEN_PORT UPSTREAM_PORT

import uWS from 'uWebSockets.js';
import { Pool } from 'undici';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number) as [number, number];
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 64 });

uWS
  .App()
  .any('/*', (res, req) => {
    const method = req.getCaseSensitiveMethod();
    const path = req.getUrl();
    let aborted = false;
    res.onAborted(() => (aborted = true));
    let status = 200;
    let headers: string[] = [];
    pool.dispatch(
      { method, path, headers: { host: req.getHeader('host') } },
      {
        onConnect() {},
        onHeaders(statusCode: number, raw: Buffer[]) {
          status = statusCode;
          headers = raw.map((b) => b.toString('latin1'));
          return true;
        },
        onData(chunk: Buffer) {
          if (!aborted)
            res.cork(() => {
              res.writeStatus(String(status));
              for (let i = 0; i < headers.length; i += 2) {
                const k = headers[i]!.toLowerCase();
                if (k !== 'content-length' && k !== 'date' && k !== 'connection' && k !== 'keep-alive') res.writeHeader(k, headers[i + 1]!);
              }
              res.end(chunk);
            });
          return true;
        },
        onComplete() {},
        onError() {
          if (!aborted) res.cork(() => res.writeStatus('502').end());
        },
      },
    );
  })
  .listen('127.0.0.1', listenPort, (s) => {
    if (s === false) process.exit(1);
    process.stdout.write(`{"msg":"listening","port":${listenPort}}\n`);
  });

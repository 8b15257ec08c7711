// The fast upstream for benchmarks, run as its own process: a single-threaded uWS server.
//   GET  /        "hello world" (11 bytes)
//   GET  /1k      1 KiB body;  GET /64k  64 KiB body
//   POST /echo    answers with the request body
// Usage: node dist/bench/upstream/server.js [port]   (port 0 or absent: any free port)
// Prints one JSON line {"msg":"listening","port":N} when ready; exits 0 on SIGTERM.

import uWS from 'uWebSockets.js';

if (typeof uWS.getParts !== 'function') {
  process.stderr.write('bench upstream: the native uWebSockets.js binary did not load; refusing to run a slow fallback\n');
  process.exit(1);
}

const hello = Buffer.from('hello world');
const body1k = Buffer.alloc(1024, 'a');
const body64k = Buffer.alloc(64 * 1024, 'b');

function fixed(body: Buffer): (res: uWS.HttpResponse) => void {
  return (res) => {
    res.cork(() => {
      res.writeHeader('content-type', 'text/plain').end(body);
    });
  };
}

const app = uWS
  .App()
  .get('/1k', fixed(body1k))
  .get('/64k', fixed(body64k))
  .post('/echo', (res) => {
    const chunks: Buffer[] = [];
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    res.onData((ab, isLast) => {
      chunks.push(Buffer.from(Buffer.from(ab)));
      if (isLast && !aborted) {
        const body = Buffer.concat(chunks);
        res.cork(() => {
          res.writeHeader('content-type', 'application/octet-stream').end(body);
        });
      }
    });
  })
  .any('/*', fixed(hello));

const port = Number(process.argv[2] ?? 0);
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    process.stderr.write(`bench upstream: cannot listen on 127.0.0.1:${port}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: uWS.us_socket_local_port(token) })}\n`);
  const stop = (): void => {
    uWS.us_listen_socket_close(token);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
});

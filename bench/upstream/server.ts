// The fast upstream for benchmarks, run as its own process: a single-threaded uWS server.
//   GET  /        "hello world" (11 bytes)
//   GET  /1k      1 KiB body;  GET /64k  64 KiB body
//   POST /echo    answers with the request body
//   GET  /hol/fast, /hol/slow/<ms>   "hello world" at once / after <ms> ms, with the request's
//                 x-bench-id header echoed (the head-of-line scenario, bench/lib/hol.ts, tells its
//                 fast requests' latency from the slow ones' by it)
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

/** Answers "hello world" with the request's x-bench-id, after `delayMs` (0: in the handler). */
function echoId(res: uWS.HttpResponse, req: uWS.HttpRequest, delayMs: number): void {
  const id = req.getHeader('x-bench-id');
  const answer = (): void => {
    res.cork(() => {
      res.writeHeader('x-bench-id', id).end(hello);
    });
  };
  if (delayMs <= 0) {
    answer();
    return;
  }
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  setTimeout(() => {
    if (!aborted) answer();
  }, delayMs);
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
  .get('/hol/fast', (res, req) => {
    echoId(res, req, 0);
  })
  .get('/hol/slow/:ms', (res, req) => {
    echoId(res, req, Number(req.getParameter(0)));
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

// A paced HTTP/2 load client for fixed-rate latency (h2load reports min/mean/max, not
// percentiles): `connections` h2c sessions, unary gRPC POSTs started on a fixed schedule (rate
// req/s spread evenly over the sessions, not waiting for answers, so a slow proxy cannot slow the
// schedule — no coordinated omission), each latency recorded from its scheduled start to its
// trailers. Run as its own process so its CPU is never counted as a proxy's.
// Usage: node dist/bench/h2_paced.js URL RATE SECONDS [CONNECTIONS]
// Prints one JSON line: {requests, ok, failed, p50, p90, p99, p999, max} (latencies in µs).

import http2 from 'node:http2';
import hdr from 'hdr-histogram-js';

const [url, rateArg, secondsArg, connArg] = process.argv.slice(2);
if (url === undefined || rateArg === undefined || secondsArg === undefined) {
  process.stderr.write('usage: node dist/bench/h2_paced.js URL RATE SECONDS [CONNECTIONS]\n');
  process.exit(2);
}
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const connections = Number(connArg ?? 4);
const target = new URL(url);
const body = Buffer.from([0, 0, 0, 0, 5, 104, 101, 108, 108, 111]); // one gRPC message "hello"
const headers = { ':method': 'POST', ':path': target.pathname, 'content-type': 'application/grpc', te: 'trailers' };

const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
/** Sessions the server has sent GOAWAY on: no new streams go there. */
const goneAway = new WeakSet<http2.ClientHttp2Session>();
function connect(): http2.ClientHttp2Session {
  const s = http2.connect(target.origin);
  s.once('goaway', () => goneAway.add(s));
  return s;
}
const sessions = Array.from({ length: connections }, connect);
let ok = 0;
let failed = 0;
let outstanding = 0;
let started = 0;
const total = Math.round(rate * seconds);

/**
 * Session `i`, connected again when the server has closed it (a GOAWAY after its per-connection
 * request limit, as nginx sends after keepalive_requests): the schedule goes on, on a new one.
 */
function session(i: number): http2.ClientHttp2Session {
  const s = sessions[i]!;
  if (!s.closed && !s.destroyed && !goneAway.has(s)) return s;
  const fresh = connect();
  fresh.on('error', () => {}); // its streams fail and are counted
  sessions[i] = fresh;
  return fresh;
}

function send(session: http2.ClientHttp2Session, scheduledNs: bigint): void {
  outstanding++;
  let grpcStatus: string | undefined;
  let status = 0;
  const stream = session.request(headers);
  stream.on('response', (h) => (status = Number(h[':status'])));
  stream.on('trailers', (t: http2.IncomingHttpHeaders) => (grpcStatus = t['grpc-status'] as string | undefined));
  stream.on('data', () => {});
  const done = (good: boolean): void => {
    outstanding--;
    if (good) ok++;
    else failed++;
    histogram.recordValue(Number((process.hrtime.bigint() - scheduledNs) / 1000n));
    if (started === total && outstanding === 0) finish();
  };
  stream.on('close', () => done(status === 200 && grpcStatus === '0'));
  stream.on('error', () => {});
  stream.end(body);
}

function finish(): void {
  const p = (q: number): number => histogram.getValueAtPercentile(q);
  process.stdout.write(
    `${JSON.stringify({ requests: ok + failed, ok, failed, p50: p(50), p90: p(90), p99: p(99), p999: p(99.9), max: histogram.maxValue })}\n`,
  );
  for (const s of sessions) s.close();
  process.exit(0);
}

// Every session connected first, so connection set-up is not in the first requests' latency.
await Promise.all(sessions.map((s) => new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject))));
// The schedule: request i is due at start + i/rate; a 1 ms tick starts every request now due.
const start = process.hrtime.bigint();
const intervalNs = BigInt(Math.round(1e9 / rate));
const tick = setInterval(() => {
  const now = process.hrtime.bigint();
  while (started < total && start + BigInt(started) * intervalNs <= now) {
    send(session(started % connections), start + BigInt(started) * intervalNs);
    started++;
  }
  if (started === total) clearInterval(tick);
}, 1);
// A request that never ends would keep the run alive: give up 10 s after the schedule.
setTimeout(finish, (seconds + 10) * 1000).unref();

// `outrigger wait-ready --admin HOST:PORT [--timeout-ms N]`: blocks until the sidecar's admin API
// answers GET /ready with 200 (listeners bound, first config applied), so an app started after
// it never sends before the proxy it is redirected to listens. For setups without Kubernetes
// native sidecars (whose startupProbe does this). Exit 0 ready, 1 timed out, 2 bad flags.

import http from 'node:http';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { parseArgsOr } from './args.js';

const HELP = `outrigger wait-ready — wait until a sidecar is ready

Usage:
  outrigger wait-ready --admin HOST:PORT [--timeout-ms N]
      polls http://HOST:PORT/ready (open without the admin token) until it answers 200; exit 0,
      or exit 1 after --timeout-ms (default ${60_000})
`;

/** Time between two polls: short next to a sidecar's start-up, long enough not to load it. */
const POLL_INTERVAL_MS = 100;
/** One poll's own limit: an admin API that accepted the connection but hangs is "not ready yet". */
const REQUEST_TIMEOUT_MS = 2_000;

export interface WaitReadyIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

class UsageError extends Error {}

/** Runs `outrigger wait-ready <args>`; resolves with the exit code. */
export async function runWaitReady(args: string[], io: WaitReadyIo = process): Promise<number> {
  let target: { url: string; timeoutMs: number };
  try {
    target = parseTarget(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`outrigger: ${e.message}\n`);
    return 2;
  }
  if (target.url === '') {
    io.stdout.write(HELP);
    return 0;
  }
  const deadline = Date.now() + target.timeoutMs;
  let last = '';
  for (;;) {
    const answer = await poll(target.url, Math.min(REQUEST_TIMEOUT_MS, Math.max(1, deadline - Date.now())));
    if (answer.ready) {
      io.stdout.write(`ready: ${target.url}\n`);
      return 0;
    }
    // One line when the first poll fails, so a log shows what the start-up is waiting for.
    if (last === '') io.stdout.write(`waiting for ${target.url} (${answer.why})\n`);
    last = answer.why;
    if (Date.now() + POLL_INTERVAL_MS >= deadline) break;
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
  io.stderr.write(`outrigger: wait-ready: ${target.url} not ready after ${target.timeoutMs} ms (last: ${last})\n`);
  return 1;
}

/** The /ready URL and the time limit; url '' for --help. */
function parseTarget(args: string[]): { url: string; timeoutMs: number } {
  const { values } = parseArgsOr(
    { args, options: { admin: { type: 'string' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true },
    UsageError,
  );
  if (values.help === true) return { url: '', timeoutMs: 0 };
  if (values.admin === undefined) throw new UsageError('wait-ready needs --admin HOST:PORT (the sidecar admin API address)');
  const addr = parseHostPort(values.admin, false);
  if (!addr.ok) throw new UsageError(`--admin: ${addr.message}`);
  const raw = values['timeout-ms'] ?? '60000';
  if (!/^\d{1,9}$/.test(raw) || Number(raw) === 0) throw new UsageError(`--timeout-ms must be a positive number of milliseconds, got "${raw}"`);
  return { url: `http://${formatHostPort(addr.value)}/ready`, timeoutMs: Number(raw) };
}

/** One GET /ready: ready on a 200, else what came back (status and body, or the error). */
function poll(url: string, timeoutMs: number): Promise<{ ready: true } | { ready: false; why: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 512) body += chunk;
      });
      res.on('end', () => resolve(res.statusCode === 200 ? { ready: true } : { ready: false, why: `${res.statusCode} ${body.trim()}` }));
      res.on('error', (e) => resolve({ ready: false, why: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ ready: false, why: e.code ?? e.message }));
  });
}

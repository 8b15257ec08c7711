// What `outrigger stat` and `outrigger top` share: their options (--admin HOST:PORT,
// --token-file F), reading the token, and GET /stats from a sidecar's admin API (local or remote)
// with it. A failure is an AdminStatsError whose message is the one line the command prints, with
// its exit code: 2 for what the caller must fix (arguments, token file, a refused token), 1 for a
// sidecar that cannot be reached or answers wrongly.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { StatsJson } from '../stats/aggregate.js';

/** The admin address a sidecar listens on when its config does not say (DESIGN.md §5). */
export const DEFAULT_ADMIN = '127.0.0.1:15000';
/** The token a sidecar generates next to a config file in the current directory (admin.state_dir's default). */
export const DEFAULT_TOKEN_FILE = '.outrigger/admin.token';
const REQUEST_TIMEOUT_MS = 5000;

export class AdminStatsError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/** Where to read stats from: `http://HOST:PORT` and the bearer token. */
export interface AdminTarget {
  readonly base: string;
  readonly token: string;
}

/** The --admin value as a base URL (HOST:PORT, [IPv6]:PORT, or with http://). */
export function adminBase(admin: string): string {
  const base = /^https?:\/\//.test(admin) ? admin : `http://${admin}`;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new AdminStatsError(`--admin must be HOST:PORT, not "${admin}"`, 2);
  }
  if (url.port === '' || url.pathname !== '/') throw new AdminStatsError(`--admin must be HOST:PORT, not "${admin}"`, 2);
  return `${url.protocol}//${url.host}`;
}

/** The token in `file`, trimmed (as the sidecar reads its own). */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AdminStatsError(
      `cannot read the token file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (pass --token-file: the sidecar's ready line names it as admin_token_file)`,
      2,
    );
  }
  const token = text.trim();
  if (token === '') throw new AdminStatsError(`the token file ${file} is empty`, 2);
  return token;
}

/** GET /stats; throws AdminStatsError (one line) for an unreachable sidecar, a refused token or a wrong answer. */
export function fetchStats(target: AdminTarget): Promise<StatsJson> {
  const url = `${target.base}/stats`;
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${target.token}` }, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', (e) => reject(new AdminStatsError(`${url}: ${e.message}`, 1)));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status === 401) return reject(new AdminStatsError(`${url}: 401: the admin API refused the token (check --token-file)`, 2));
        const text = Buffer.concat(parts).toString('utf8');
        if (status !== 200) return reject(new AdminStatsError(`${url}: ${status}: ${errorOf(text)}`, 1));
        try {
          resolve(JSON.parse(text) as StatsJson);
        } catch {
          reject(new AdminStatsError(`${url}: the answer is not JSON`, 1));
        }
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new AdminStatsError(`cannot reach the admin API at ${target.base}: ${e.code ?? e.message}`, 1)));
  });
}

/** The admin API's `{"error": ...}` text, or the body's start. */
function errorOf(text: string): string {
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof e === 'string') return e;
  } catch {
    // not JSON: show the start of it
  }
  return text.slice(0, 200);
}

/** One GET /stats and when its answer arrived (ms, monotonic): rates are differences of two of these. */
export interface StatsSample {
  readonly stats: StatsJson;
  readonly atMs: number;
}

export async function sampleStats(target: AdminTarget): Promise<StatsSample> {
  const stats = await fetchStats(target);
  return { stats, atMs: performance.now() };
}

/** Resolves after `ms`, or at once when `signal` aborts (SIGINT while waiting). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

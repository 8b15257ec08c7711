// The admin API of an outrigger process under test: where it is (the address and token file of
// its `"msg":"ready"` log line) and one reading the report uses — GET /stats `connections`, the
// connections each worker accepted per listener since start, and `workers`, each worker's
// requests and accepted connections since start. The bearer token is sent when the ready line
// names a token file.

import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export interface AdminAccess {
  /** The process within its config (`server`, `client`, or the config's name). */
  readonly part: string;
  /** host:port of the admin listener. */
  readonly address: string;
  /** `admin_token_file` of the ready line (absolute), or null when the line has none. */
  readonly tokenFile: string | null;
}

/** One listener's accepted connections by worker id ("1", "2", …), as GET /stats reports them. */
export interface ListenerConnections {
  readonly listener: string;
  readonly accepted_by_worker: Readonly<Record<string, number>>;
}

/** One worker's row of GET /stats `workers` (connections null: none of its listeners counts them, uws). */
export interface WorkerCounts {
  readonly worker: number;
  readonly requests: number;
  readonly connections_accepted: number | null;
}

/** One process's reading, taken after the last round; `note` says why there is none. */
export interface ConnectionsReading {
  readonly config: string;
  readonly part: string;
  readonly listeners: readonly ListenerConnections[] | null;
  /** GET /stats `workers`; absent in results.json of earlier runs, null when the build has none. */
  readonly workers?: readonly WorkerCounts[] | null;
  readonly note?: string;
}

/** The admin access named by a ready line; null when the line is not JSON or has no admin address. */
export function adminFromReadyLine(part: string, line: string | null, cwd: string): AdminAccess | null {
  if (line === null) return null;
  let j: { admin?: unknown; admin_token_file?: unknown };
  try {
    j = JSON.parse(line) as typeof j;
  } catch {
    return null;
  }
  if (typeof j.admin !== 'string' || j.admin === '') return null;
  const file = typeof j.admin_token_file === 'string' && j.admin_token_file !== '' ? j.admin_token_file : null;
  return { part, address: j.admin, tokenFile: file === null || isAbsolute(file) ? file : join(cwd, file) };
}

/** `connections` of a GET /stats body; null when absent or not of the documented shape. */
export function parseConnections(body: unknown): ListenerConnections[] | null {
  const list = (body as { connections?: unknown } | null)?.connections;
  if (!Array.isArray(list)) return null;
  const out: ListenerConnections[] = [];
  for (const item of list) {
    const { listener, accepted_by_worker: by } = (item ?? {}) as { listener?: unknown; accepted_by_worker?: unknown };
    if (typeof listener !== 'string' || by === null || typeof by !== 'object') return null;
    const counts: Record<string, number> = {};
    for (const [worker, n] of Object.entries(by)) if (typeof n === 'number') counts[worker] = n;
    out.push({ listener, accepted_by_worker: counts });
  }
  return out;
}

/** `workers` of a GET /stats body; null when absent or not of the documented shape. */
export function parseWorkers(body: unknown): WorkerCounts[] | null {
  const list = (body as { workers?: unknown } | null)?.workers;
  if (!Array.isArray(list)) return null;
  const out: WorkerCounts[] = [];
  for (const item of list) {
    const { worker, requests, connections_accepted: c } = (item ?? {}) as Record<string, unknown>;
    if (typeof worker !== 'number' || typeof requests !== 'number' || (c !== null && typeof c !== 'number')) return null;
    out.push({ worker, requests, connections_accepted: c });
  }
  return out;
}

/**
 * "worker 1: 61,234 requests (51 %), 27 connections (50 %); worker 2: …" of one reading;
 * null when it has no `workers`. Since the process started: warm-ups, probes and every round.
 */
export function workerCountsText(workers: readonly WorkerCounts[] | null | undefined): string | null {
  if (workers == null || workers.length === 0) return null;
  const req = workers.reduce((a, w) => a + w.requests, 0);
  const conn = workers.reduce((a, w) => a + (w.connections_accepted ?? 0), 0);
  const pct = (n: number, total: number): string => (total > 0 ? ` (${Math.round((n / total) * 100)} %)` : '');
  return workers
    .map(
      (w) =>
        `worker ${w.worker}: ${w.requests.toLocaleString('en-US')} requests${pct(w.requests, req)}, ${
          w.connections_accepted === null ? 'connections not counted (uws)' : `${w.connections_accepted} connections${pct(w.connections_accepted, conn)}`
        }`,
    )
    .join('; ');
}

/** GET /stats with the bearer token when there is one. */
async function getStats(a: AdminAccess): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  if (a.tokenFile !== null) headers['authorization'] = `Bearer ${readFileSync(a.tokenFile, 'utf8').trim()}`;
  const res = await fetch(`http://${a.address}/stats`, { headers, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // reported through the status / missing field below
  }
  return { status: res.status, body };
}

/** The accepted-connections reading of one process of a config; never throws. */
export async function readConnections(config: string, a: AdminAccess): Promise<ConnectionsReading> {
  const base = { config, part: a.part };
  try {
    const { status, body } = await getStats(a);
    if (status !== 200)
      return { ...base, listeners: null, note: `GET /stats answered ${status}${a.tokenFile === null ? ' (the ready line named no admin_token_file)' : ''}` };
    const listeners = parseConnections(body);
    const workers = parseWorkers(body);
    if (listeners === null)
      return { ...base, listeners: null, workers, note: 'GET /stats has no `connections` field (this build does not report accepted connections per worker)' };
    return { ...base, listeners, workers };
  } catch (e) {
    return { ...base, listeners: null, note: `GET /stats failed: ${(e as Error).message}` };
  }
}

// The admin API of an outrigger process under test: where it is (the address and token file of
// its `"msg":"ready"` log line) and one reading the report uses — GET /stats `connections`, the
// connections each worker accepted per listener since start. The bearer token is sent when the
// ready line names a token file.

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

/** One process's reading, taken after the last round; `note` says why there is none. */
export interface ConnectionsReading {
  readonly config: string;
  readonly part: string;
  readonly listeners: readonly ListenerConnections[] | null;
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
    if (listeners === null)
      return { ...base, listeners: null, note: 'GET /stats has no `connections` field (this build does not report accepted connections per worker)' };
    return { ...base, listeners };
  } catch (e) {
    return { ...base, listeners: null, note: `GET /stats failed: ${(e as Error).message}` };
  }
}

// `outrigger top`: the busiest request paths of a sidecar, live in the terminal (like `linkerd viz
// top`). Polls GET /stats every second; the sidecar lists its busiest paths with counts since each
// entered its table (stats/top_paths.ts, bounded), and each refresh shows what grew since the one
// before: requests per second, success rate and mean latency per method and path. Keys: r, s, l,
// p sort by rate, success (worst first), latency (slowest first), path; q or Ctrl-C quits. Plain
// ANSI (alternate screen), no curses.

import type { PathJson, PathsJson } from '../stats/top_paths.js';
import { AdminStatsError, adminBase, DEFAULT_ADMIN, DEFAULT_TOKEN_FILE, pause, readToken, sampleStats, type StatsSample } from './admin_stats.js';
import { parseArgsOr } from './args.js';
import { latency, percent, SAMPLE_INTERVAL_MS } from './stat.js';

const HELP = `Usage: outrigger top [--admin HOST:PORT] [--token-file F]
  The busiest request paths of a sidecar (GET /stats), refreshed every second: requests per second,
  success rate and mean latency over the last second, per method and path.
  Keys: r rate, s success (worst first), l latency (slowest first), p path; q quits.
      --admin HOST:PORT   the sidecar's admin address (default ${DEFAULT_ADMIN}; remote ones too)
      --token-file F      the admin token (default ${DEFAULT_TOKEN_FILE}; the ready line's admin_token_file)
  Exit: 0, 1 when the admin API cannot be reached or fails, 2 for bad arguments or a refused token.
`;

export type SortKey = 'rps' | 'success' | 'latency' | 'path';
const KEYS: Readonly<Record<string, SortKey>> = { r: 'rps', s: 'success', l: 'latency', p: 'path' };

/** One path over the last interval. */
export interface TopRow {
  readonly method: string;
  readonly path: string;
  readonly listener: string;
  /** '' = no route matched. */
  readonly route: string;
  readonly rps: number;
  /** null: no request in the interval. */
  readonly success_rate: number | null;
  readonly mean_ms: number | null;
  /** Requests since the path entered the sidecar's table. */
  readonly requests: number;
}

export interface TopFrame {
  readonly rows: readonly TopRow[];
  /** Requests per second counted under no listed path. */
  readonly untracked_rps: number;
  readonly interval_s: number;
}

const pathKey = (p: PathJson): string => `${p.listener}\u0000${p.route}\u0000${p.method}\u0000${p.path}`;

/**
 * The paths that grew between two samples. A path not in `prev` entered the sidecar's table since
 * then, so all its count is new; one whose count went down was evicted and entered again, likewise.
 */
export function topFrame(prev: StatsSample, cur: StatsSample): TopFrame {
  const seconds = (cur.atMs - prev.atMs) / 1000;
  const before = new Map(pathsOf(prev).paths.map((p) => [pathKey(p), p]));
  const rows: TopRow[] = [];
  for (const p of pathsOf(cur).paths) {
    let b = before.get(pathKey(p));
    if (b !== undefined && b.requests > p.requests) b = undefined;
    const n = p.requests - (b?.requests ?? 0);
    if (n <= 0) continue;
    const ok = p.success_count - (b?.success_count ?? 0);
    rows.push({
      method: p.method,
      path: p.path,
      listener: p.listener,
      route: p.route,
      rps: n / seconds,
      success_rate: ok / n,
      mean_ms: (p.duration_sum_ms - (b?.duration_sum_ms ?? 0)) / n,
      requests: p.requests,
    });
  }
  const untracked = pathsOf(cur).untracked_requests - pathsOf(prev).untracked_requests;
  return { rows, untracked_rps: Math.max(0, untracked) / seconds, interval_s: seconds };
}

/** A sidecar older than the paths table has none: nothing to show rather than a crash. */
function pathsOf(s: StatsSample): PathsJson {
  return (s.stats as { paths?: PathsJson }).paths ?? { max_tracked: 0, untracked_requests: 0, paths: [] };
}

export function sortRows(rows: readonly TopRow[], key: SortKey): TopRow[] {
  const byPath = (a: TopRow, b: TopRow): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.method < b.method ? -1 : a.method > b.method ? 1 : 0);
  const compare: Record<SortKey, (a: TopRow, b: TopRow) => number> = {
    rps: (a, b) => b.rps - a.rps || byPath(a, b),
    success: (a, b) => (a.success_rate ?? 1) - (b.success_rate ?? 1) || b.rps - a.rps || byPath(a, b),
    latency: (a, b) => (b.mean_ms ?? 0) - (a.mean_ms ?? 0) || byPath(a, b),
    path: byPath,
  };
  return [...rows].sort(compare[key]);
}

/** The screen: a title line, the key help, then the rows that fit in `height` lines of `width` columns. */
export function renderTop(
  frame: TopFrame | null,
  o: { readonly admin: string; readonly sort: SortKey; readonly width: number; readonly height: number },
): string {
  const title = `outrigger top ${o.admin}  sorted by ${o.sort}  (keys: r rate, s success, l latency, p path, q quit)`;
  const lines = [title.slice(0, o.width).trimEnd(), ''];
  if (frame === null) {
    lines.push('waiting for a second sample…');
    return lines.join('\n');
  }
  const total = frame.rows.reduce((n, r) => n + r.rps, 0) + frame.untracked_rps;
  lines.push(`${frame.rows.length} paths, ${total.toFixed(1)} req/s over ${frame.interval_s.toFixed(1)} s`.slice(0, o.width), '');
  const fixed = [
    { name: 'RPS', width: 9, cell: (r: TopRow) => r.rps.toFixed(1) },
    { name: 'SUCCESS', width: 8, cell: (r: TopRow) => percent(r.success_rate) },
    { name: 'MEAN', width: 9, cell: (r: TopRow) => latency(r.mean_ms) },
    { name: 'COUNT', width: 9, cell: (r: TopRow) => String(r.requests) },
  ];
  const routeWidth = 12;
  const methodWidth = 7;
  const fixedWidth = fixed.reduce((n, c) => n + c.width + 2, 0) + routeWidth + 2 + methodWidth + 2;
  const pathWidth = Math.max(8, o.width - fixedWidth);
  const row = (method: string, path: string, route: string, cells: string[]): string =>
    `${fit(method, methodWidth)}  ${fit(path, pathWidth)}  ${fit(route, routeWidth)}  ${cells.map((c, i) => c.padStart(fixed[i]!.width)).join('  ')}`
      .slice(0, o.width)
      .trimEnd();
  lines.push(
    row(
      'METHOD',
      'PATH',
      'ROUTE',
      fixed.map((c) => c.name),
    ),
  );
  const room = Math.max(0, o.height - lines.length - (frame.untracked_rps > 0 ? 1 : 0));
  for (const r of sortRows(frame.rows, o.sort).slice(0, room)) {
    lines.push(
      row(
        r.method,
        r.path,
        r.route === '' ? '(no route)' : r.route,
        fixed.map((c) => c.cell(r)),
      ),
    );
  }
  if (frame.untracked_rps > 0) lines.push(row('', '(other paths)', '', [frame.untracked_rps.toFixed(1), '', '', '']));
  return lines.join('\n');
}

/**
 * `s` made printable, then cut or padded to `width` (a cut ends in …). Paths come from clients:
 * a control character (an escape sequence could rewrite the terminal) shows as `?`.
 */
function fit(s: string, width: number): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  const printable = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return printable.length > width ? `${printable.slice(0, width - 1)}…` : printable.padEnd(width);
}

interface TopOptions {
  readonly base: string;
  readonly tokenFile: string;
}

class UsageError extends AdminStatsError {
  constructor(message: string) {
    super(message, 2);
  }
}

function topOptions(argv: string[]): TopOptions | null {
  const { values, positionals } = parseArgsOr(
    {
      args: argv,
      allowPositionals: true,
      options: { admin: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    },
    UsageError,
  );
  if (values.help === true) return null;
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see outrigger top --help`);
  return { base: adminBase(values.admin ?? DEFAULT_ADMIN), tokenFile: values['token-file'] ?? DEFAULT_TOKEN_FILE };
}

/** Alternate screen and hidden cursor while top runs; both restored on the way out. */
const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l';
const HOME_CLEAR = '\x1b[H\x1b[2J';

/** The terminal while top runs: keys from stdin in raw mode, frames on stdout; close() restores both. */
class Screen {
  private readonly stdin = process.stdin;
  private readonly stdout = process.stdout;

  constructor(onKey: (key: string) => void) {
    if (this.stdin.isTTY) this.stdin.setRawMode(true);
    this.stdin.setEncoding('utf8');
    this.stdin.on('data', (chunk: string) => {
      for (const ch of chunk) onKey(ch);
    });
    this.stdout.write(ENTER_SCREEN);
  }

  get width(): number {
    return this.stdout.columns > 0 ? this.stdout.columns : 120;
  }

  get height(): number {
    return this.stdout.rows > 0 ? this.stdout.rows : 30;
  }

  draw(text: string): void {
    this.stdout.write(`${HOME_CLEAR}${text}`);
  }

  close(): void {
    this.stdout.write(LEAVE_SCREEN);
    if (this.stdin.isTTY) this.stdin.setRawMode(false);
    this.stdin.pause();
  }
}

export async function runTop(argv: string[]): Promise<number> {
  let opts: TopOptions | null;
  let token: string;
  try {
    opts = topOptions(argv);
    if (opts === null) {
      process.stdout.write(HELP);
      return 0;
    }
    token = readToken(opts.tokenFile);
  } catch (e) {
    return failed(e);
  }
  const target = { base: opts.base, token };
  const admin = opts.base;
  const stop = new AbortController();
  let sort: SortKey = 'rps';
  let frame: TopFrame | null = null;
  const screen = new Screen((key) => {
    // Ctrl-C arrives as a byte in raw mode, not as SIGINT.
    if (key === 'q' || key === '\u0003') stop.abort();
    const k = KEYS[key];
    if (k !== undefined && k !== sort) {
      sort = k;
      redraw();
    }
  });
  const redraw = (): void => screen.draw(renderTop(frame, { admin, sort, width: screen.width, height: screen.height }));
  const onSigint = (): void => stop.abort();
  process.on('SIGINT', onSigint);
  process.stdout.on('resize', redraw);
  let error: unknown = null;
  try {
    redraw();
    let prev = await sampleStats(target);
    while (!stop.signal.aborted) {
      await pause(SAMPLE_INTERVAL_MS, stop.signal);
      if (stop.signal.aborted) break;
      const cur = await sampleStats(target);
      frame = topFrame(prev, cur);
      prev = cur;
      redraw();
    }
  } catch (e) {
    error = e;
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('resize', redraw);
    screen.close();
  }
  // After the alternate screen is gone, so the message stays on the terminal.
  return error === null ? 0 : failed(error);
}

function failed(e: unknown): number {
  if (!(e instanceof AdminStatsError)) throw e;
  process.stderr.write(`outrigger top: ${e.message}\n`);
  return e.exitCode;
}

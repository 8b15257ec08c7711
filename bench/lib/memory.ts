// Memory and event-loop delay in the bench reports: resident memory per config (idle, loaded,
// and for outrigger's N-worker configs what each extra worker adds over outrigger-1w, idle), and
// each outrigger process's event-loop delay per thread as GET /stats reports it after the last
// round (since the sidecar started: every warm-up, throughput and fixed-rate run). Pure except
// readLoopDelay, which asks one admin API.

import { readFileSync } from 'node:fs';
import type { AdminAccess } from './admin.js';
import type { Table } from './report.js';
import type { BenchResults } from './results.js';
import { IDLE_CPU_UNTIL_MS, IDLE_RSS_AT_MS, STARTUP_RSS_AT_MS, type KeptIdleReading } from './rss.js';
import type { ConfigSummary } from './summary.js';

/** One thread's row of GET /stats `event_loop_delay` (ms; null when no sample). */
export interface ThreadLoopDelay {
  readonly thread: string;
  readonly samples: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly p99_9_ms: number | null;
  readonly max_ms: number | null;
}

/** One outrigger process's reading; `note` says why there is none. */
export interface LoopDelayReading {
  readonly config: string;
  readonly part: string;
  readonly threads: readonly ThreadLoopDelay[] | null;
  readonly note?: string;
}

/** `event_loop_delay[].since_start` of a GET /stats body; null when absent (an older build). */
export function parseLoopDelay(body: unknown): ThreadLoopDelay[] | null {
  const list = (body as { event_loop_delay?: unknown } | null)?.event_loop_delay;
  if (!Array.isArray(list)) return null;
  const n = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  return list.map((row: { thread?: unknown; since_start?: Record<string, unknown> }) => {
    const s = row.since_start ?? {};
    return {
      thread: String(row.thread),
      samples: n(s['samples']) ?? 0,
      p50_ms: n(s['p50_ms']),
      p99_ms: n(s['p99_ms']),
      p99_9_ms: n(s['p99_9_ms']),
      max_ms: n(s['max_ms']),
    };
  });
}

/** GET /stats of one outrigger process, its event-loop delay per thread; never throws. */
export async function readLoopDelay(config: string, a: AdminAccess): Promise<LoopDelayReading> {
  const base = { config, part: a.part };
  try {
    const headers: Record<string, string> = {};
    if (a.tokenFile !== null) headers['authorization'] = `Bearer ${readFileSync(a.tokenFile, 'utf8').trim()}`;
    const res = await fetch(`http://${a.address}/stats`, { headers, signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) return { ...base, threads: null, note: `GET /stats answered ${res.status}` };
    const threads = parseLoopDelay(await res.json());
    return threads === null ? { ...base, threads: null, note: 'GET /stats has no `event_loop_delay` (an older build)' } : { ...base, threads };
  } catch (e) {
    return { ...base, threads: null, note: `GET /stats failed: ${(e as Error).message}` };
  }
}

/** Workers of an outrigger config by its name (outrigger-1w, outrigger-2w, outrigger-node-1w…); null otherwise. */
function workersOf(config: string): number | null {
  const m = /^outrigger-(?:[a-z]+-)?(\d+)w$/.exec(config);
  return m === null ? null : Number(m[1]);
}

/**
 * Idle RSS each extra worker adds, KiB: (idle of outrigger-[ENGINE-]Nw − idle of
 * outrigger-[ENGINE-]1w) / (N − 1), for every N-worker plaintext config of the run with its
 * 1-worker partner on the same engine (outrigger-2w with outrigger-1w, outrigger-strict-2w with
 * outrigger-strict-1w).
 */
export function perExtraWorkerKb(r: Pick<BenchResults, 'idleRssKb'>): Array<{ config: string; workers: number; kb: number }> {
  const out: Array<{ config: string; workers: number; kb: number }> = [];
  for (const [config, kb] of Object.entries(r.idleRssKb)) {
    const m = /^outrigger-((?:uws-|node-|strict-)?)(\d+)w$/.exec(config);
    const n = Number(m?.[2]);
    const one = m === null ? undefined : r.idleRssKb[`outrigger-${m[1] ?? ''}1w`];
    if (one === undefined || n < 2) continue;
    out.push({ config, workers: n, kb: (kb - one) / (n - 1) });
  }
  return out;
}

type Cell = string;

const mib = (kb: number | null | undefined): Cell => (kb === null || kb === undefined ? '–' : (kb / 1024).toFixed(1));
const cpuMs = (ms: number | undefined): Cell => (ms === undefined ? '–' : ms.toFixed(2));

/** Resident memory of every config, with what each extra outrigger worker adds. */
export function memoryTable(r: BenchResults): Table {
  const extra = new Map(perExtraWorkerKb(r).map((x) => [x.config, x]));
  return {
    title: 'Memory',
    note: `RSS of each config’s process tree (VmRSS summed; threads count once), each read at the same age counted from that config’s own start, before any load: at start-up (${STARTUP_RSS_AT_MS / 1000} s) and idle (${IDLE_RSS_AT_MS / 1000} s, once V8’s memory reducer has first run, ~8 s after start); loaded = the peak sampled every 250 ms during the wrk -c50 throughput runs (median over rounds). “per extra worker” = (idle of outrigger-[engine-]Nw − idle of the same engine’s 1-worker config) ÷ (N − 1). Targets (issue 13): a 1-worker sidecar ≤ 60 MiB idle, ≤ 80 MiB loaded, ≤ +15 MiB per extra worker. Idle CPU: ms of CPU per second the tree used from ${IDLE_RSS_AT_MS / 1000} s to ${IDLE_CPU_UNTIL_MS / 1000} s after its start, with no request (every thread, /proc schedstat).${r.keptIdle === undefined ? '' : ` Long idle: ${keptIdleText(r.keptIdle)}.`}`,
    head: ['config', `RSS at ${STARTUP_RSS_AT_MS / 1000} s MiB`, 'RSS idle MiB', 'RSS loaded MiB (median, range)', 'per extra worker MiB', 'idle CPU ms/s'],
    rows: r.summary.map((s: ConfigSummary) => {
      const l = s.loadedRssKb;
      const x = extra.get(s.config);
      return [
        s.config,
        mib(r.startupRssKb?.[s.config]),
        mib(s.idleRssKb),
        l === null ? '–' : l.n < 2 || l.min === l.max ? mib(l.median) : `${mib(l.median)} (${mib(l.min)}–${mib(l.max)})`,
        x === undefined ? (workersOf(s.config) === 1 ? '(base)' : '') : `${x.kb >= 0 ? '+' : ''}${mib(x.kb)}`,
        cpuMs(r.idleCpuMsPerS?.[s.config]),
      ];
    }),
  };
}

/** Event-loop delay per outrigger process and thread (GET /stats after the last round). */
export function loopDelayTable(readings: readonly LoopDelayReading[]): Table {
  const rows: Cell[][] = [];
  const ms = (v: number | null): Cell => (v === null ? '–' : v.toFixed(2));
  for (const c of readings) {
    const who = c.part === c.config ? c.config : `${c.config} · ${c.part}`;
    if (c.threads === null) rows.push([who, '–', '–', '–', '–', '–', c.note ?? 'no reading']);
    else for (const t of c.threads) rows.push([who, t.thread, String(t.samples), ms(t.p50_ms), ms(t.p99_ms), ms(t.p99_9_ms), ms(t.max_ms)]);
  }
  return {
    title: 'Event-loop delay',
    note: 'GET /stats `event_loop_delay` of each outrigger process after the last round, since it started (warm-ups, throughput and fixed-rate runs, idle gaps): how late a sampling timer ran on each thread, ms (due every 10 ms while the thread is busy, up to every 1 s at rest). A worker’s max is its longest stall; on a loaded machine it includes time the thread waited for a CPU.',
    head: ['config · process', 'thread', 'samples', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms'],
    rows,
  };
}

/** One line per config for bench:ci's output: RSS idle / loaded, MiB, and the worst event-loop delay per outrigger thread. */
export function memoryLines(r: BenchResults): string[] {
  const startup = (config: string): string => (r.startupRssKb?.[config] === undefined ? '' : ` (${mib(r.startupRssKb[config])} at start-up)`);
  const idleCpu = (config: string): string => (r.idleCpuMsPerS?.[config] === undefined ? '' : `, idle CPU ${cpuMs(r.idleCpuMsPerS[config])} ms/s`);
  const lines = r.summary.map(
    (s) => `- ${s.config}: RSS idle ${mib(s.idleRssKb)} MiB${startup(s.config)}, loaded ${mib(s.loadedRssKb?.median)} MiB${idleCpu(s.config)}`,
  );
  for (const x of perExtraWorkerKb(r)) lines.push(`- ${x.config}: ${mib(x.kb)} MiB per extra worker (idle)`);
  if (r.keptIdle !== undefined) lines.push(`- ${keptIdleText(r.keptIdle)}`);
  for (const c of r.loopDelay ?? []) {
    if (c.threads === null) continue;
    const who = c.part === c.config ? c.config : `${c.config} · ${c.part}`;
    lines.push(`- ${who} event-loop delay since start: ${c.threads.map((t) => `${t.thread} p99 ${t.p99_ms ?? '–'} ms, max ${t.max_ms ?? '–'} ms`).join('; ')}`);
  }
  return lines;
}

/** The kept-idle reading as one sentence (bench:ci's lines, the report's memory note). */
export function keptIdleText(k: KeptIdleReading): string {
  return `${k.config} kept idle (a second copy, no traffic), ${k.fromS}–${k.toS} s after its start: RSS median ${mib(k.medianKb)} MiB, ${mib(k.minKb)}–${mib(k.maxKb)} over ${k.samples} readings`;
}

// Event-loop delay, main-thread side: each thread's last interval and its since-start histogram
// (exact merges of the intervals' slot counts), as /stats JSON and /metrics text.

import { SlotHistogram } from './histogram.js';
import { LOOP_DELAY_IDLE_MS, LOOP_DELAY_RESOLUTION_MS, type LoopDelaySample } from './loop_delay.js';

/** Delay summary in ms, as /stats shows it. */
export interface LoopDelayJson {
  readonly samples: number;
  readonly p50_ms: number | null;
  readonly p90_ms: number | null;
  readonly p99_ms: number | null;
  readonly p99_9_ms: number | null;
  readonly max_ms: number | null;
  readonly mean_ms: number | null;
}

/**
 * The Prometheus labels and the fields they report: the summary's quantiles since start, and the
 * last interval's gauges by `stat` (a gauge may not carry a `quantile` label: promtool lint).
 */
const SINCE_START_QUANTILES = [
  ['0.5', 'p50_ms'],
  ['0.9', 'p90_ms'],
  ['0.99', 'p99_ms'],
  ['0.999', 'p99_9_ms'],
  ['1', 'max_ms'],
] as const satisfies ReadonlyArray<readonly [string, keyof LoopDelayJson]>;
const LAST_INTERVAL_STATS = [
  ['p50', 'p50_ms'],
  ['p99', 'p99_ms'],
  ['max', 'max_ms'],
] as const satisfies ReadonlyArray<readonly [string, keyof LoopDelayJson]>;

export interface ThreadLoopDelayJson {
  readonly thread: string;
  /** Since the sidecar started (a restarted worker continues its slot's numbers). */
  readonly since_start: LoopDelayJson;
  /** The last stats interval (about 1 s). */
  readonly last_interval: LoopDelayJson & { readonly interval_ms: number };
}

interface Window {
  hist: SlotHistogram | null;
  count: number;
  sumMicros: number;
  maxMicros: number;
}

class ThreadTotals {
  readonly total: Window = { hist: null, count: 0, sumMicros: 0, maxMicros: 0 };
  last: Window & { intervalMs: number } = { hist: null, count: 0, sumMicros: 0, maxMicros: 0, intervalMs: 0 };
  constructor(readonly thread: string) {}
}

const ms = (micros: number): number => Math.round(micros) / 1000;

export class LoopDelayTotals {
  private readonly threads = new Map<string, ThreadTotals>();

  add(s: LoopDelaySample): void {
    let t = this.threads.get(s.thread);
    if (t === undefined) {
      t = new ThreadTotals(s.thread);
      this.threads.set(s.thread, t);
    }
    // The last interval's histogram is refilled in place (its chunks stay), not made anew each second.
    const interval = t.last.hist ?? new SlotHistogram();
    interval.reset();
    interval.addSparse(s.delays);
    t.last = { hist: interval, count: s.count, sumMicros: s.sumMicros, maxMicros: s.maxMicros, intervalMs: s.intervalMs };
    const total = t.total;
    total.hist ??= new SlotHistogram();
    total.hist.addSparse(s.delays);
    total.count += s.count;
    total.sumMicros += s.sumMicros;
    if (s.maxMicros > total.maxMicros) total.maxMicros = s.maxMicros;
  }

  json(): ThreadLoopDelayJson[] {
    return [...this.threads.values()].sort(byThread).map((t) => ({
      thread: t.thread,
      since_start: summary(t.total),
      last_interval: { interval_ms: Math.round(t.last.intervalMs), ...summary(t.last) },
    }));
  }

  /** Prometheus text: a summary per thread since start, and the last interval's p50, p99 and max as gauges. */
  prometheus(): string {
    const rows = this.json();
    if (rows.length === 0) return '';
    const sec = (v: number | null): string => (v === null ? 'NaN' : String(Number((v / 1000).toFixed(6))));
    const lbl = (thread: string, name?: string, value?: string): string => `{thread="${thread}"${name === undefined ? '' : `,${name}="${value}"`}}`;
    let out =
      `# HELP outrigger_event_loop_delay_seconds Event-loop delay per thread since start: how late a sampling timer ran (due every ${LOOP_DELAY_RESOLUTION_MS} ms while the thread is busy, up to every ${LOOP_DELAY_IDLE_MS} ms at rest).\n` +
      '# TYPE outrigger_event_loop_delay_seconds summary\n';
    for (const r of rows) {
      const q = r.since_start;
      for (const [quantile, key] of SINCE_START_QUANTILES) out += `outrigger_event_loop_delay_seconds${lbl(r.thread, 'quantile', quantile)} ${sec(q[key])}\n`;
      const t = this.threads.get(r.thread)!.total;
      out += `outrigger_event_loop_delay_seconds_sum${lbl(r.thread)} ${Number((t.sumMicros / 1e6).toFixed(6))}\n`;
      out += `outrigger_event_loop_delay_seconds_count${lbl(r.thread)} ${t.count}\n`;
    }
    out +=
      '# HELP outrigger_event_loop_delay_last_interval_seconds Event-loop delay per thread over the last stats interval (about 1 s), by stat (p50, p99, max).\n' +
      '# TYPE outrigger_event_loop_delay_last_interval_seconds gauge\n';
    for (const r of rows) {
      const q = r.last_interval;
      for (const [stat, key] of LAST_INTERVAL_STATS) out += `outrigger_event_loop_delay_last_interval_seconds${lbl(r.thread, 'stat', stat)} ${sec(q[key])}\n`;
    }
    return out;
  }
}

function summary(w: Window): LoopDelayJson {
  const h = w.hist;
  const at = (p: number): number | null => (h === null || h.totalCount === 0 ? null : ms(h.getValueAtPercentile(p)));
  return {
    samples: w.count,
    p50_ms: at(50),
    p90_ms: at(90),
    p99_ms: at(99),
    p99_9_ms: at(99.9),
    max_ms: w.count === 0 ? null : ms(w.maxMicros),
    mean_ms: w.count === 0 ? null : ms(w.sumMicros / w.count),
  };
}

/** main first, then workers by number. */
function byThread(a: { thread: string }, b: { thread: string }): number {
  const key = (t: string): number => (t === 'main' ? -1 : Number(t.replace(/^worker-/, '')) || 0);
  return key(a.thread) - key(b.thread);
}

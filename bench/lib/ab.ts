// The pure part of `npm run bench:ab` (bench/ab.ts): the order of the two builds in each round
// (ABBA…: base first in odd rounds, head first in even ones, so a drift of the machine during a
// round does not always favour the one measured first), one round's numbers per build from the
// raw run records, the medians and ranges across rounds, the head ÷ base ratios paired round by
// round, and the tables printed on stdout and written to report.md.

import type { RateRecord, RunRecord, ThroughputRecord } from './measure.js';
import { summarize, type Summary } from './stats.js';
import { totalWrkErrors } from './wrk.js';

export type Side = 'base' | 'head';

/** Which build goes first in round `round` (1-based): ABBA… */
export function abOrder(round: number): readonly [Side, Side] {
  if (!Number.isInteger(round) || round < 1) throw new Error(`round must be an integer ≥ 1: ${round}`);
  return round % 2 === 1 ? ['base', 'head'] : ['head', 'base'];
}

/** One build's numbers in one round; null where the run failed or did not measure it. */
export interface SideRound {
  readonly rps: number | null;
  readonly cpuUsPerReq: number | null;
  readonly upstreamCpuUsPerReq: number | null;
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly p999Us: number | null;
  /** Paced run: send slots that went out late (coordinated omission, see bench/README.md). */
  readonly late: number | null;
  /** wrk socket errors + status ≥ 400 of both runs. */
  readonly errors: number;
  /** Error texts of failed runs. */
  readonly failures: readonly string[];
}

export interface AbRound {
  readonly round: number;
  readonly order: readonly Side[];
  readonly base: SideRound;
  readonly head: SideRound;
  /** 1-minute load average when the round started (null: not recorded). */
  readonly loadAvg1: number | null;
}

/** The GET / throughput run and the paced run at `rate` of `side` in `round`, as numbers. */
export function sideRound(runs: readonly RunRecord[], side: Side, round: number, rate: number): SideRound {
  const tp = runs.find((r): r is ThroughputRecord => r.kind === 'throughput' && r.config === side && r.round === round && r.variant === 'GET /');
  const paced = runs.find((r): r is RateRecord => r.kind === 'rate' && r.config === side && r.round === round && r.rate === rate);
  const failures = [tp, paced].flatMap((r) => (r?.error !== undefined ? [`${r.kind}: ${r.error}`] : []));
  const ok = <T>(v: T | undefined | null): T | null => (v === undefined ? null : v);
  return {
    rps: ok(tp?.wrk?.requestsPerSec),
    cpuUsPerReq: ok(tp?.cpuUsPerReq),
    upstreamCpuUsPerReq: ok(tp?.upstreamCpuUsPerReq),
    p50Us: ok(paced?.wrk?.latency.p50Us),
    p99Us: ok(paced?.wrk?.latency.p99Us),
    p999Us: ok(paced?.wrk?.latency.p999Us),
    late: ok(paced?.wrk?.late),
    errors: (tp?.wrk !== undefined ? totalWrkErrors(tp.wrk) : 0) + (paced?.wrk !== undefined ? totalWrkErrors(paced.wrk) : 0),
    failures,
  };
}

/** Every round of a run, in order. */
export function abRounds(runs: readonly RunRecord[], rounds: number, rate: number, loadAvg1: readonly number[] = []): AbRound[] {
  const out: AbRound[] = [];
  for (let round = 1; round <= rounds; round++) {
    out.push({
      round,
      order: abOrder(round),
      base: sideRound(runs, 'base', round, rate),
      head: sideRound(runs, 'head', round, rate),
      loadAvg1: loadAvg1[round - 1] ?? null,
    });
  }
  return out;
}

export type MetricKey = 'cpuUsPerReq' | 'rps' | 'p50Us' | 'p99Us' | 'p999Us' | 'upstreamCpuUsPerReq';

export interface MetricSpec {
  readonly key: MetricKey;
  readonly label: string;
  readonly better: 'lower' | 'higher';
  readonly digits: number;
}

/** The compared numbers, headline first. */
export function abMetrics(rate: number): readonly MetricSpec[] {
  return [
    { key: 'cpuUsPerReq', label: 'CPU µs/req (sidecar process tree)', better: 'lower', digits: 1 },
    { key: 'rps', label: 'req/s (wrk -t1 -c50)', better: 'higher', digits: 0 },
    { key: 'p50Us', label: `p50 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'p99Us', label: `p99 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'p999Us', label: `p99.9 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'upstreamCpuUsPerReq', label: 'upstream CPU µs/req (context)', better: 'lower', digits: 1 },
  ];
}

export interface MetricSummary {
  readonly key: MetricKey;
  readonly label: string;
  readonly better: 'lower' | 'higher';
  readonly base: Summary | null;
  readonly head: Summary | null;
  /** head ÷ base of each round where both were measured (and base ≠ 0), by round. */
  readonly ratios: readonly { readonly round: number; readonly ratio: number }[];
  /** Median and range of `ratios`. */
  readonly ratio: Summary | null;
  /** Rounds in which head was strictly better than base on this metric. */
  readonly headBetter: number;
}

/** Medians and ranges of both builds, and head ÷ base paired round by round, per metric. */
export function summarizeAb(rounds: readonly AbRound[], metrics: readonly MetricSpec[]): MetricSummary[] {
  return metrics.map((m) => {
    const ratios: { round: number; ratio: number }[] = [];
    let headBetter = 0;
    for (const r of rounds) {
      const a = r.base[m.key];
      const b = r.head[m.key];
      if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) continue;
      ratios.push({ round: r.round, ratio: b / a });
      if (m.better === 'lower' ? b < a : b > a) headBetter++;
    }
    return {
      key: m.key,
      label: m.label,
      better: m.better,
      base: summarize(rounds.map((r) => r.base[m.key])),
      head: summarize(rounds.map((r) => r.head[m.key])),
      ratios,
      ratio: summarize(ratios.map((x) => x.ratio)),
      headBetter,
    };
  });
}

function num(v: number | null, digits: number): string {
  return v === null ? '–' : v.toFixed(digits);
}

function medRange(s: Summary | null, digits: number): string {
  if (s === null) return '–';
  return s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** The per-round table: one row per build per round, in the order they ran. */
export function roundsTable(rounds: readonly AbRound[], rate: number): string {
  const lines = [
    `| round | build | req/s | CPU µs/req | upstream µs/req | p50 µs @${rate}/s | p99 µs | p99.9 µs | late | errors | load avg at round start |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rounds) {
    r.order.forEach((side, i) => {
      const s = r[side];
      const failed = s.failures.length > 0 ? ` ⚠ ${s.failures.join('; ').replace(/\|/g, '/').replace(/\s+/g, ' ').slice(0, 160)}` : '';
      lines.push(
        `| ${i === 0 ? r.round : ''} | ${side}${failed} | ${num(s.rps, 0)} | ${num(s.cpuUsPerReq, 1)} | ${num(s.upstreamCpuUsPerReq, 1)} | ${num(s.p50Us, 0)} | ${num(s.p99Us, 0)} | ${num(s.p999Us, 0)} | ${num(s.late, 0)} | ${s.errors} | ${i === 0 ? num(r.loadAvg1, 1) : ''} |`,
      );
    });
  }
  return lines.join('\n');
}

/** The summary table: median (range) of each build, and head ÷ base paired by round. */
export function summaryTable(summary: readonly MetricSummary[]): string {
  const lines = [
    '| metric | base median (range) | head median (range) | head ÷ base, paired per round: median (range) | per round | head better in |',
    '|---|---:|---:|---:|---|---:|',
  ];
  const digitsOf = (k: MetricKey): number => (k === 'cpuUsPerReq' || k === 'upstreamCpuUsPerReq' ? 1 : 0);
  for (const m of summary) {
    const d = digitsOf(m.key);
    lines.push(
      `| ${m.label} (${m.better} is better) | ${medRange(m.base, d)} | ${medRange(m.head, d)} | **${medRange(m.ratio, 3)}** | ${m.ratios.map((x) => x.ratio.toFixed(3)).join(' ') || '–'} | ${m.ratios.length > 0 ? `${m.headBetter} of ${m.ratios.length}` : '–'} |`,
    );
  }
  return lines.join('\n');
}

/** One line on the headline (CPU/request): how far head moved and whether every round agrees. */
export function headline(summary: readonly MetricSummary[]): string {
  const cpu = summary.find((m) => m.key === 'cpuUsPerReq');
  if (cpu?.ratio == null) return 'CPU µs/req: no round measured both builds.';
  const pct = (cpu.ratio.median - 1) * 100;
  const n = cpu.ratios.length;
  const chance = `${(chanceAllAgree(n) * 100).toFixed(n > 7 ? 1 : 0)} %`;
  const agree =
    cpu.ratio.max < 1 || cpu.ratio.min > 1
      ? `head ${cpu.ratio.max < 1 ? 'lower' : 'higher'} in all ${n} rounds (with no difference at all, ${n} rounds agree by chance ${chance} of the time${n < 5 ? ': run more rounds' : ''})`
      : `the rounds disagree (head lower in ${cpu.headBetter} of ${n}): within this run's noise`;
  return `CPU µs/req: head ÷ base ${cpu.ratio.median.toFixed(3)} (${pct >= 0 ? '+' : ''}${pct.toFixed(1)} %), range ${cpu.ratio.min.toFixed(3)}–${cpu.ratio.max.toFixed(3)}; ${agree}.`;
}

/** Chance that n paired rounds all fall on one side of 1 when the builds do not differ: 2 × 0.5ⁿ (two-sided sign test). */
export function chanceAllAgree(n: number): number {
  return n <= 0 ? 1 : Math.min(1, 2 * 0.5 ** n);
}

/**
 * A warning when the 1-minute load average exceeded the CPU count at the start or the end: other
 * processes then compete for the cores, and a Node sidecar's CPU per request inflates under
 * contention, unevenly from one run to the next (an A/B of two builds without any request-path
 * change read 2.4× at load 20 on 2 CPUs).
 */
export function loadWarning(loadStart: readonly number[], loadEnd: readonly number[], cpuCount: number): string | null {
  const worst = Math.max(loadStart[0] ?? 0, loadEnd[0] ?? 0);
  if (worst <= cpuCount) return null;
  return `load average up to ${worst.toFixed(1)} on ${cpuCount} CPUs: other processes competed for the cores, and CPU µs/req inflates under contention, unevenly between runs — rerun on a quieter machine before trusting a difference`;
}

/** Any errors or failed runs, one line per build; empty when clean. */
export function problems(rounds: readonly AbRound[]): string[] {
  const out: string[] = [];
  for (const side of ['base', 'head'] as const) {
    const errors = rounds.reduce((n, r) => n + r[side].errors, 0);
    const failed = rounds.flatMap((r) => r[side].failures.map((f) => `round ${r.round} ${f}`));
    if (errors > 0) out.push(`${side}: ${errors} wrk errors / non-2xx responses — not a fair comparison`);
    for (const f of failed) out.push(`${side}: ${f}`);
  }
  return out;
}

// The CI latency/CPU gate: compares one run's paired medians (outrigger vs nginx CPU/request,
// outrigger's p99 added over direct at a fixed rate) with bench/baseline.json. A value fails
// when it exceeds threshold × (1 + margin_percent/100) + margin_abs (margin_abs is for small
// absolute latencies, where a few µs of noise are many percent). For the latency gate the
// allowance also grows by the noise this run itself showed: 3 × 1.4826 × MAD of direct's p99
// across rounds (a robust 3σ of how much p99 moves for a config that did not change), and the
// verdict prints it, so a noisy machine widens the gate visibly instead of failing at random.

import type { RateRecord } from './measure.js';
import type { BenchResults } from './results.js';
import { median } from './stats.js';

export interface Gate {
  readonly threshold: number;
  readonly margin_percent: number;
  readonly margin_abs: number;
}

export interface Baseline {
  readonly config: string;
  readonly cpu_ratio_to_nginx: Gate;
  readonly added_p99_us: Gate & { readonly rate: number };
  readonly provisional?: boolean;
  readonly measured_at?: string;
  readonly note?: string;
}

export interface Verdict {
  readonly exitCode: 0 | 1 | 2;
  readonly text: string;
  readonly measured: { readonly cpuRatio: number; readonly addedP99Us: number } | null;
}

export function allowed(g: Gate): number {
  return g.threshold * (1 + g.margin_percent / 100) + g.margin_abs;
}

/** Robust 3σ (3 × 1.4826 × MAD) of the config's p99 across rounds at `rate`; 0 with < 3 rounds. */
export function p99NoiseUs(r: BenchResults, config: string, rate: number): number {
  const xs = r.runs
    .filter((x): x is RateRecord => x.kind === 'rate' && x.config === config && x.rate === rate && x.wrk !== undefined)
    .map((x) => x.wrk?.latency.p99Us ?? 0);
  if (xs.length < 3) return 0;
  const m = median(xs);
  return 3 * 1.4826 * median(xs.map((x) => Math.abs(x - m)));
}

export function checkBaseline(r: BenchResults, b: Baseline): Verdict {
  const skipped = r.skipped.filter((s) => s.name === b.config || s.name === 'nginx' || s.name === 'direct');
  if (skipped.length > 0) {
    return {
      exitCode: 2,
      measured: null,
      text: `bench:ci cannot check: ${skipped.map((s) => `${s.name} skipped (${s.reason})`).join('; ')}`,
    };
  }
  const s = r.summary.find((x) => x.config === b.config);
  const cpu = s?.cpuRatioToNginx ?? null;
  const added = s?.rates.find((q) => q.rate === b.added_p99_us.rate)?.addedP99Us ?? null;
  if (cpu === null || added === null) {
    return { exitCode: 2, measured: null, text: `bench:ci cannot check: no paired measurements for ${b.config} (see failed runs in results.json)` };
  }
  const noise = p99NoiseUs(r, 'direct', b.added_p99_us.rate);
  const latencyGate: Gate = { ...b.added_p99_us, margin_abs: Math.max(b.added_p99_us.margin_abs, Math.round(noise)) };
  const rows: [string, number, string, Gate][] = [
    ['CPU µs/req ÷ nginx', cpu.median, `${cpu.min.toFixed(2)}–${cpu.max.toFixed(2)}`, b.cpu_ratio_to_nginx],
    [`p99 added over direct @${b.added_p99_us.rate}/s (µs)`, added.median, `${added.min.toFixed(0)}–${added.max.toFixed(0)}`, latencyGate],
  ];
  let failed = false;
  const lines = [`bench:ci ${b.config} vs nginx and direct, ${r.meta.rounds} interleaved rounds (medians of paired values)`, ''];
  lines.push('| check | measured (median) | range | threshold | allowed (with margin) | result |', '|---|---:|---:|---:|---:|---|');
  for (const [name, v, range, g] of rows) {
    const ok = v <= allowed(g);
    if (!ok) failed = true;
    lines.push(`| ${name} | ${v.toFixed(2)} | ${range} | ${g.threshold} | ${allowed(g).toFixed(2)} | ${ok ? 'ok' : 'FAIL'} |`);
  }
  lines.push(
    '',
    `latency margin: max(margin_abs ${b.added_p99_us.margin_abs} µs, this run's p99 noise ${noise.toFixed(0)} µs = 3 × 1.4826 × MAD of direct's p99 over rounds)`,
  );
  if (b.provisional === true) lines.push('', 'note: baseline.json is provisional (not yet measured on this machine class); refresh it with --write-baseline.');
  return { exitCode: failed ? 1 : 0, text: lines.join('\n'), measured: { cpuRatio: cpu.median, addedP99Us: added.median } };
}

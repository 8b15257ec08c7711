// The CI latency/CPU/memory gate: compares one run's paired medians with bench/baseline.json.
// `config` (the default engine, 1 worker) is gated on its CPU µs/request ÷ nginx's, on the p99
// and the p99.9 it adds over direct at a fixed rate, and (with `rss`) on its resident memory.
// A value fails when it exceeds threshold × (1 + margin_percent/100) + margin_abs (margin_abs is
// for small absolute latencies, where a few µs of noise are many percent). For each latency gate
// the allowance also grows by the noise this run itself showed, the larger of two robust 3σ
// (3 × 1.4826 × MAD across rounds) of configs that did not change: direct's same percentile, and
// nginx's same percentile added over direct (paired by round). direct alone under-reads it: the
// hiccups of a loaded 2-core machine hit a path through a proxy (one process more to schedule)
// far more than direct (2026-12-06 08:00: direct's p99 389–468 µs over 5 rounds, nginx's added
// p99 +54…+6038 µs). The verdict prints both, so a noisy machine widens the gate visibly instead
// of failing at random.
// The CPU ratio gates widen the same way, relatively: margin_percent grows to this run's robust
// 3σ of the node relay's CPU ÷ nginx's, paired by round, as a share of its median. The relay is a
// Node process that never changes (bench/node_relay.ts), so how far its ratio to nginx moves is
// how far a Node proxy's does on this machine this hour (07:52 run: 0.94–2.65 over 5 rounds,
// against 1.28–1.43 at 05:30).
// `more_configs` gates further configs of the same run on their CPU ratio to nginx alone
// (the other listener engines: uws, and node, which `engine: node` TLS listeners use).
// `rss` gates `config`'s resident memory, idle (before any load) and loaded (peak during the
// throughput runs, median over rounds), in MiB, with the same threshold + margins rule; with
// `kept_idle_mib`, also the median RSS of a second copy of `config` sent no traffic for the whole
// run (results `keptIdle`): an idle sidecar that grows after the 15 s reading fails there.
// `idle_cpu_ms_per_s` gates `config`'s CPU while idle (ms of CPU per second, before any load):
// a timer that wakes every thread of every sidecar all the time costs a fleet cores for nothing.

import type { RateRecord, ThroughputRecord } from './measure.js';
import type { BenchResults } from './results.js';
import { byRound, median, paired, robust3Sigma } from './stats.js';

export interface Gate {
  readonly threshold: number;
  readonly margin_percent: number;
  readonly margin_abs: number;
}

/** A further config gated on its CPU µs/request ÷ nginx's (paired by round), like `config`. */
export interface ConfigCpuGate {
  readonly config: string;
  readonly cpu_ratio_to_nginx: Gate;
  /** How the threshold was set. */
  readonly note?: string;
}

/** A latency percentile added over direct at a fixed rate, µs. */
export type LatencyGate = Gate & { readonly rate: number; /** How the threshold was set. */ readonly note?: string };

export interface Baseline {
  readonly config: string;
  readonly cpu_ratio_to_nginx: Gate & { /** How the threshold was set. */ readonly note?: string };
  readonly added_p99_us: LatencyGate;
  /** p99.9 added over direct (absent: not gated). */
  readonly added_p999_us?: LatencyGate;
  readonly more_configs?: readonly ConfigCpuGate[];
  /** `config`'s RSS in MiB: idle, and the peak under load (median over rounds). */
  readonly rss?: { readonly idle_mib: Gate; readonly loaded_mib: Gate; readonly kept_idle_mib?: Gate; readonly note?: string };
  /** `config`'s CPU while idle, ms per second (absent: not gated). */
  readonly idle_cpu_ms_per_s?: Gate & { readonly note?: string };
  readonly provisional?: boolean;
  readonly measured_at?: string;
  readonly note?: string;
}

export interface Verdict {
  readonly exitCode: 0 | 1 | 2;
  readonly text: string;
  readonly measured: {
    readonly cpuRatio: number;
    readonly addedP99Us: number;
    /** When the baseline gates p99.9. */
    readonly addedP999Us?: number;
    /** Median CPU ratio to nginx of each of `more_configs`, by config. */
    readonly moreCpuRatios: Readonly<Record<string, number>>;
    /** `config`'s RSS, MiB (when the baseline gates it); keptIdleMib when it gates kept_idle_mib. */
    readonly rss?: { readonly idleMib: number; readonly loadedMib: number; readonly keptIdleMib?: number };
    /** `config`'s idle CPU, ms/s (when the baseline gates it). */
    readonly idleCpuMsPerS?: number;
  } | null;
}

export function allowed(g: Gate): number {
  return g.threshold * (1 + g.margin_percent / 100) + g.margin_abs;
}

/** The latency percentiles the gate knows: wrk's field, the baseline key, the row label. */
export const PERCENTILES = {
  p99: { wrk: 'p99Us', summary: 'addedP99Us', label: 'p99' },
  p999: { wrk: 'p999Us', summary: 'addedP999Us', label: 'p99.9' },
} as const;
export type Percentile = keyof typeof PERCENTILES;

/** The config's `percentile` at `rate`, µs, by round. */
function latencyByRound(r: BenchResults, config: string, rate: number, percentile: Percentile): Map<number, number> {
  const k = PERCENTILES[percentile].wrk;
  return byRound(
    r.runs.filter((x): x is RateRecord => x.kind === 'rate' && x.config === config && x.rate === rate),
    (x) => x.wrk?.latency[k],
  );
}

/** Robust 3σ (3 × 1.4826 × MAD) of the config's `percentile` across rounds at `rate`, µs; 0 with < 3 rounds. */
export function latencyNoiseUs(r: BenchResults, config: string, rate: number, percentile: Percentile): number {
  return robust3Sigma([...latencyByRound(r, config, rate, percentile).values()]);
}

/** The config whose CPU ÷ nginx's, paired by round, measures how much the CPU ratios move in a run. */
export const CPU_NOISE_WITNESS = 'node-relay';

/** CPU noise (a fraction) beyond which a run cannot judge CPU ratios: it would let a regression this large pass. Exit 2 unless a check failed anyway. */
export const CPU_NOISE_LIMIT = 0.5;

/**
 * Robust 3σ (3 × 1.4826 × MAD) over rounds of `config`'s CPU µs/request ÷ nginx's (GET / throughput
 * runs, paired by round), as a fraction of its median; 0 with < 3 paired rounds.
 */
export function cpuRatioNoise(r: BenchResults, config: string = CPU_NOISE_WITNESS): number {
  const cpu = (c: string): Map<number, number> =>
    byRound(
      r.runs.filter((x): x is ThroughputRecord => x.kind === 'throughput' && x.variant === 'GET /' && x.config === c),
      (x) => ((x.cpuUsPerReq ?? 0) > 0 ? x.cpuUsPerReq : null),
    );
  const ratios = paired(cpu(config), cpu('nginx')).map(([x, y]) => x / y);
  return ratios.length < 3 ? 0 : robust3Sigma(ratios) / median(ratios);
}

/** Robust 3σ (3 × 1.4826 × MAD) over rounds of the `percentile` `config` adds over direct at `rate` (paired by round), µs; 0 with < 3 rounds. */
export function addedNoiseUs(r: BenchResults, config: string, rate: number, percentile: Percentile): number {
  const added = paired(latencyByRound(r, config, rate, percentile), latencyByRound(r, 'direct', rate, percentile)).map(([x, y]) => x - y);
  return robust3Sigma(added);
}

type Row = readonly [name: string, median: number, range: string, gate: Gate];

/** The CPU-ratio rows of `more_configs`; a string naming the config when one has no paired value. */
function moreRows(r: BenchResults, b: Baseline, noise: number): Row[] | string {
  const rows: Row[] = [];
  for (const g of b.more_configs ?? []) {
    const cpu = r.summary.find((x) => x.config === g.config)?.cpuRatioToNginx ?? null;
    if (cpu === null) return g.config;
    rows.push([`${g.config}: CPU µs/req ÷ nginx`, cpu.median, `${cpu.min.toFixed(2)}–${cpu.max.toFixed(2)}`, widenCpu(g.cpu_ratio_to_nginx, noise)]);
  }
  return rows;
}

/** A CPU-ratio gate with margin_percent widened to `noise` (a fraction, cpuRatioNoise) when that is larger. */
function widenCpu(g: Gate, noise: number): Gate {
  return { ...g, margin_percent: Math.max(g.margin_percent, Math.round(noise * 100)) };
}

/** The RSS rows of `config` (none when the baseline has no `rss`); a string saying what is missing. */
function rssRows(
  s: BenchResults['summary'][number] | undefined,
  b: Baseline,
  kept: BenchResults['keptIdle'],
): { rows: Row[]; measured: NonNullable<NonNullable<Verdict['measured']>['rss']> | null } | string {
  if (b.rss === undefined) return { rows: [], measured: null };
  const idle = s?.idleRssKb ?? null;
  const loaded = s?.loadedRssKb ?? null;
  if (idle === null || loaded === null) return `no RSS reading for ${b.config}`;
  const idleMib = idle / 1024;
  const loadedMib = loaded.median / 1024;
  const keptGate = b.rss.kept_idle_mib;
  if (keptGate !== undefined && kept?.config !== b.config) return `no kept-idle RSS reading for ${b.config}`;
  const keptRows: Row[] =
    keptGate !== undefined && kept !== undefined
      ? [
          [
            `${b.config}: RSS kept idle ${kept.fromS}–${kept.toS} s, median (MiB)`,
            kept.medianKb / 1024,
            `${(kept.minKb / 1024).toFixed(1)}–${(kept.maxKb / 1024).toFixed(1)}`,
            keptGate,
          ],
        ]
      : [];
  return {
    rows: [
      [`${b.config}: RSS idle (MiB)`, idleMib, '–', b.rss.idle_mib],
      [
        `${b.config}: RSS loaded, peak under wrk -c50 (MiB)`,
        loadedMib,
        `${(loaded.min / 1024).toFixed(1)}–${(loaded.max / 1024).toFixed(1)}`,
        b.rss.loaded_mib,
      ],
      ...keptRows,
    ],
    measured: { idleMib, loadedMib, ...(keptRows.length > 0 && kept !== undefined ? { keptIdleMib: kept.medianKb / 1024 } : {}) },
  };
}

/** One latency gate's row: its gate widened by this run's noise; null when `config` has no paired value. */
function latencyRow(
  r: BenchResults,
  s: BenchResults['summary'][number] | undefined,
  config: string,
  g: LatencyGate,
  p: Percentile,
): { row: Row; median: number; noise: string } | null {
  const added = s?.rates.find((q) => q.rate === g.rate)?.[PERCENTILES[p].summary] ?? null;
  if (added === null) return null;
  const direct = latencyNoiseUs(r, 'direct', g.rate, p);
  const nginx = addedNoiseUs(r, 'nginx', g.rate, p);
  const noise = Math.max(direct, nginx);
  const gate: Gate = { ...g, margin_abs: Math.max(g.margin_abs, Math.round(noise)) };
  const label = PERCENTILES[p].label;
  return {
    row: [`${config}: ${label} added over direct @${g.rate}/s (µs)`, added.median, `${added.min.toFixed(0)}–${added.max.toFixed(0)}`, gate],
    median: added.median,
    noise: `${label} latency margin: max(margin_abs ${g.margin_abs} µs, this run's ${label} noise ${noise.toFixed(0)} µs = 3 × 1.4826 × MAD over rounds, the larger of direct's ${label} (${direct.toFixed(0)} µs) and nginx's ${label} added over direct (${nginx.toFixed(0)} µs))`,
  };
}

export function checkBaseline(r: BenchResults, b: Baseline): Verdict {
  const needed = new Set([b.config, 'nginx', 'direct', ...(b.more_configs ?? []).map((g) => g.config)]);
  const skipped = r.skipped.filter((s) => needed.has(s.name));
  if (skipped.length > 0) {
    return {
      exitCode: 2,
      measured: null,
      text: `bench:ci cannot check: ${skipped.map((s) => `${s.name} skipped (${s.reason})`).join('; ')}`,
    };
  }
  const s = r.summary.find((x) => x.config === b.config);
  const cpu = s?.cpuRatioToNginx ?? null;
  const p99 = latencyRow(r, s, b.config, b.added_p99_us, 'p99');
  const p999 = b.added_p999_us === undefined ? undefined : latencyRow(r, s, b.config, b.added_p999_us, 'p999');
  const cpuNoise = cpuRatioNoise(r);
  const more = moreRows(r, b, cpuNoise);
  if (cpu === null || p99 === null || p999 === null || typeof more === 'string') {
    const which =
      typeof more === 'string'
        ? `${more} (CPU ratio to nginx)`
        : cpu === null
          ? `${b.config} (CPU ratio to nginx)`
          : p99 === null
            ? `${b.config} (p99 added @${b.added_p99_us.rate}/s)`
            : `${b.config} (p99.9 added @${b.added_p999_us?.rate ?? '?'}/s)`;
    return { exitCode: 2, measured: null, text: `bench:ci cannot check: no paired measurements for ${which}; see failed runs in results.json` };
  }
  const rss = rssRows(s, b, r.keptIdle);
  if (typeof rss === 'string') return { exitCode: 2, measured: null, text: `bench:ci cannot check: ${rss}` };
  const idleCpu = b.idle_cpu_ms_per_s === undefined ? undefined : r.idleCpuMsPerS?.[b.config];
  if (b.idle_cpu_ms_per_s !== undefined && idleCpu === undefined) {
    return { exitCode: 2, measured: null, text: `bench:ci cannot check: no idle CPU reading for ${b.config}` };
  }
  const rows: Row[] = [
    [`${b.config}: CPU µs/req ÷ nginx`, cpu.median, `${cpu.min.toFixed(2)}–${cpu.max.toFixed(2)}`, widenCpu(b.cpu_ratio_to_nginx, cpuNoise)],
    p99.row,
    ...(p999 !== undefined ? [p999.row] : []),
    ...more,
    ...rss.rows,
    ...(b.idle_cpu_ms_per_s !== undefined && idleCpu !== undefined ? [[`${b.config}: idle CPU (ms/s)`, idleCpu, '–', b.idle_cpu_ms_per_s] as const] : []),
  ];
  let failed = false;
  const gated = [b.config, ...(b.more_configs ?? []).map((g) => g.config)].join(', ');
  const lines = [`bench:ci ${gated} vs nginx and direct, ${r.meta.rounds} interleaved rounds (medians of paired values)`, ''];
  lines.push('| check | measured (median) | range | threshold | allowed (with margin) | result |', '|---|---:|---:|---:|---:|---|');
  for (const [name, v, range, g] of rows) {
    const ok = v <= allowed(g);
    if (!ok) failed = true;
    lines.push(`| ${name} | ${v.toFixed(2)} | ${range} | ${g.threshold} | ${allowed(g).toFixed(2)} | ${ok ? 'ok' : 'FAIL'} |`);
  }
  lines.push(
    '',
    `CPU margin: max(margin_percent, this run's CPU noise ${(cpuNoise * 100).toFixed(0)} % = 3 × 1.4826 × MAD over rounds of ${CPU_NOISE_WITNESS} ÷ nginx CPU µs/req, relative to its median)`,
    p99.noise,
    ...(p999 !== undefined ? [p999.noise] : []),
  );
  const tooNoisy = cpuNoise > CPU_NOISE_LIMIT;
  if (tooNoisy)
    lines.push(
      '',
      `bench:ci cannot judge the CPU ratios of this run: ${CPU_NOISE_WITNESS} ÷ nginx moved ${(cpuNoise * 100).toFixed(0)} % (robust 3σ) over its rounds, more than ${CPU_NOISE_LIMIT * 100} %, so a regression that large would pass; rerun on a quieter machine (exit 2 unless a check failed anyway).`,
    );
  if (b.provisional === true) lines.push('', 'note: baseline.json is provisional (not yet measured on this machine class); refresh it with --write-baseline.');
  const moreCpuRatios = Object.fromEntries((b.more_configs ?? []).map((g, i) => [g.config, more[i]?.[1] ?? NaN]));
  return {
    exitCode: failed ? 1 : tooNoisy ? 2 : 0,
    text: lines.join('\n'),
    measured: {
      cpuRatio: cpu.median,
      addedP99Us: p99.median,
      ...(p999 !== undefined ? { addedP999Us: p999.median } : {}),
      moreCpuRatios,
      ...(rss.measured !== null ? { rss: rss.measured } : {}),
      ...(idleCpu !== undefined ? { idleCpuMsPerS: idleCpu } : {}),
    },
  };
}

/** The baseline with a run's medians as the thresholds (margins and notes kept): --write-baseline. */
export function rebaseline(b: Baseline, measured: NonNullable<Verdict['measured']>, at: string): Baseline {
  const gate = (g: Gate, v: number | undefined, digits: number): Gate => ({ ...g, threshold: v === undefined ? g.threshold : Number(v.toFixed(digits)) });
  return {
    ...b,
    cpu_ratio_to_nginx: gate(b.cpu_ratio_to_nginx, measured.cpuRatio, 3),
    added_p99_us: { ...b.added_p99_us, threshold: Math.round(measured.addedP99Us) },
    ...(b.added_p999_us !== undefined && measured.addedP999Us !== undefined
      ? { added_p999_us: { ...b.added_p999_us, threshold: Math.round(measured.addedP999Us) } }
      : {}),
    ...(b.more_configs !== undefined
      ? { more_configs: b.more_configs.map((g) => ({ ...g, cpu_ratio_to_nginx: gate(g.cpu_ratio_to_nginx, measured.moreCpuRatios[g.config], 3) })) }
      : {}),
    ...(b.rss !== undefined && measured.rss !== undefined
      ? {
          rss: {
            ...b.rss,
            idle_mib: gate(b.rss.idle_mib, measured.rss.idleMib, 1),
            loaded_mib: gate(b.rss.loaded_mib, measured.rss.loadedMib, 1),
            ...(b.rss.kept_idle_mib !== undefined ? { kept_idle_mib: gate(b.rss.kept_idle_mib, measured.rss.keptIdleMib, 1) } : {}),
          },
        }
      : {}),
    ...(b.idle_cpu_ms_per_s !== undefined ? { idle_cpu_ms_per_s: gate(b.idle_cpu_ms_per_s, measured.idleCpuMsPerS, 2) } : {}),
    measured_at: at,
    provisional: false,
  };
}

// The p99.9 gate of bench/baseline.json (`added_p999_us`): outrigger's p99.9 added over direct at
// a fixed rate, median over rounds, against threshold × (1 + margin_percent/100) + margin_abs,
// with margin_abs widened to this run's own noise (3 × 1.4826 × MAD of direct's p99.9 over
// rounds) exactly as the p99 gate is. Results are the stored CI run with fabricated per-round
// p99.9 values (summaries recomputed from the runs); no wrk, no timing.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addedNoiseUs, checkBaseline, cpuRatioNoise, latencyNoiseUs, rebaseline, type Baseline } from '../../bench/lib/baseline.js';
import type { RateRecord, ThroughputRecord } from '../../bench/lib/measure.js';
import type { BenchResults } from '../../bench/lib/results.js';
import { summarizeRuns } from '../../bench/lib/summary.js';
import { UNPIPELINED_TARGET } from '../../bench/lib/targets.js';

const stored = JSON.parse(readFileSync(new URL('./fixtures/results-ci.json', import.meta.url), 'utf8')) as BenchResults;

/**
 * The stored run with p99.9 at 1000/s per round (1..5) set for direct, outrigger-1w and nginx
 * (by default direct's + 500 µs each round: nginx's added p99.9 does not move), summaries recomputed.
 */
function withP999(direct: readonly number[], outrigger: readonly number[], nginx: readonly number[] = direct.map((d) => d + 500)): BenchResults {
  const runs = stored.runs.map((r) => {
    if (r.kind !== 'rate' || r.wrk === undefined) return r;
    const v =
      r.config === 'direct'
        ? direct[r.round - 1]
        : r.config === 'outrigger-1w'
          ? outrigger[r.round - 1]
          : r.config === 'nginx'
            ? nginx[r.round - 1]
            : undefined;
    return v === undefined ? r : ({ ...r, wrk: { ...r.wrk, latency: { ...r.wrk.latency, p999Us: v } } } satisfies RateRecord);
  });
  const summary = summarizeRuns(
    stored.configs.map((c) => c.name),
    runs,
    stored.idleRssKb,
    { rates: [1000], variants: [] },
  );
  return { ...stored, runs, summary };
}

const FLAT_DIRECT = [1000, 1000, 1000, 1000, 1000];
// Added per round 2000, 2200, 2400, 2600, 2800: median 2400.
const OUTRIGGER = [3000, 3200, 3400, 3600, 3800];

const base: Baseline = {
  config: 'outrigger-1w',
  cpu_ratio_to_nginx: { threshold: 100, margin_percent: 0, margin_abs: 0 },
  added_p99_us: { rate: 1000, threshold: 1_000_000, margin_percent: 0, margin_abs: 0 },
};
const p999 = (threshold: number, margin_percent = 25, margin_abs = 0): Baseline => ({
  ...base,
  added_p999_us: { rate: 1000, threshold, margin_percent, margin_abs, note: 'how it was set' },
});
const row = (text: string): string | undefined => text.split('\n').find((l) => l.startsWith('| outrigger-1w: p99.9 added over direct @1000/s'));

describe('p99.9 gate (baseline.json `added_p999_us`)', () => {
  it('passes within threshold plus margin, prints its row and its noise line, and reports the median', () => {
    const r = withP999(FLAT_DIRECT, OUTRIGGER);
    const v = checkBaseline(r, p999(2400, 0, 0));
    expect(v.exitCode).toBe(0);
    expect(row(v.text)).toBe('| outrigger-1w: p99.9 added over direct @1000/s (µs) | 2400.00 | 2000–2800 | 2400 | 2400.00 | ok |');
    expect(v.text).toContain(
      "p99.9 latency margin: max(margin_abs 0 µs, this run's p99.9 noise 0 µs = 3 × 1.4826 × MAD over rounds, the larger of direct's p99.9 (0 µs) and nginx's p99.9 added over direct (0 µs))",
    );
    expect(v.measured?.addedP999Us).toBe(2400);
  });

  it('fails when the median exceeds threshold × (1 + margin_percent) + margin_abs', () => {
    const r = withP999(FLAT_DIRECT, OUTRIGGER);
    // 1900 × 1.25 + 0 = 2375 < 2400
    const v = checkBaseline(r, p999(1900));
    expect(v.exitCode).toBe(1);
    expect(row(v.text)).toMatch(/\| 1900 \| 2375\.00 \| FAIL \|$/);
    // margin_abs lifts it back: 2375 + 100 = 2475
    expect(checkBaseline(r, p999(1900, 25, 100)).exitCode).toBe(0);
  });

  it("widens margin_abs to this run's p99.9 noise: 3 × 1.4826 × MAD of direct's p99.9 over rounds", () => {
    // direct 600..1400: median 1000, absolute deviations 400 200 0 200 400 → MAD 200 → 889.56 µs.
    const noisyDirect = [600, 800, 1000, 1200, 1400];
    const r = withP999(noisyDirect, OUTRIGGER);
    expect(latencyNoiseUs(r, 'direct', 1000, 'p999')).toBeCloseTo(3 * 1.4826 * 200, 6);
    const added = r.summary.find((s) => s.config === 'outrigger-1w')?.rates[0]?.addedP999Us?.median ?? NaN;
    expect(added).toBe(2400);
    // Without the noise, threshold 2000 and no margin fails; with it the allowance is 2000 + 890.
    expect(checkBaseline(withP999(FLAT_DIRECT, OUTRIGGER), p999(2000, 0, 0)).exitCode).toBe(1);
    const v = checkBaseline(r, p999(2000, 0, 0));
    expect(v.exitCode).toBe(0);
    expect(row(v.text)).toMatch(/\| 2000 \| 2890\.00 \| ok \|$/);
    expect(v.text).toContain("this run's p99.9 noise 890 µs");
    // A margin_abs above the noise is kept.
    expect(row(checkBaseline(r, p999(2000, 0, 1200)).text)).toMatch(/\| 3200\.00 \| ok \|$/);
    // The p99 gate's noise is computed from direct's p99, not its p99.9.
    expect(latencyNoiseUs(r, 'direct', 1000, 'p99')).toBe(latencyNoiseUs(stored, 'direct', 1000, 'p99'));
  });

  it("widens it also to the noise of nginx's p99.9 added over direct, paired by round, when that is larger than direct's", () => {
    // direct flat; nginx adds 500, 500, 500, 2500, 4500 µs: median 500, deviations 0 0 0 2000 4000 → MAD 0.
    expect(addedNoiseUs(withP999(FLAT_DIRECT, OUTRIGGER, [1500, 1500, 1500, 3500, 5500]), 'nginx', 1000, 'p999')).toBe(0);
    // adds 100, 300, 500, 700, 900: median 500, deviations 400 200 0 200 400 → MAD 200 → 889.56 µs.
    const r = withP999(FLAT_DIRECT, OUTRIGGER, [1100, 1300, 1500, 1700, 1900]);
    expect(addedNoiseUs(r, 'nginx', 1000, 'p999')).toBeCloseTo(3 * 1.4826 * 200, 6);
    expect(latencyNoiseUs(r, 'direct', 1000, 'p999')).toBe(0);
    // Paired by round: direct moving with nginx (the same hiccup in both) adds no noise.
    expect(addedNoiseUs(withP999([600, 800, 1000, 1200, 1400], OUTRIGGER, [1100, 1300, 1500, 1700, 1900]), 'nginx', 1000, 'p999')).toBe(0);
    const v = checkBaseline(r, p999(2000, 0, 0));
    expect(v.exitCode).toBe(0);
    expect(row(v.text)).toMatch(/\| 2000 \| 2890\.00 \| ok \|$/);
    expect(v.text).toContain(
      "this run's p99.9 noise 890 µs = 3 × 1.4826 × MAD over rounds, the larger of direct's p99.9 (0 µs) and nginx's p99.9 added over direct (890 µs)",
    );
  });

  it('cannot check (exit 2) when the run has no p99.9 added for the config at the gate’s rate', () => {
    const r = withP999(FLAT_DIRECT, OUTRIGGER);
    const noValue: BenchResults = {
      ...r,
      summary: r.summary.map((s) => (s.config === 'outrigger-1w' ? { ...s, rates: s.rates.map((q) => ({ ...q, addedP999Us: null })) } : s)),
    };
    const v = checkBaseline(noValue, p999(2400));
    expect(v.exitCode).toBe(2);
    expect(v.measured).toBeNull();
    expect(v.text).toContain('no paired measurements for outrigger-1w (p99.9 added @1000/s)');
    const otherRate = checkBaseline(r, { ...base, added_p999_us: { rate: 2000, threshold: 1, margin_percent: 0, margin_abs: 0 } });
    expect(otherRate.exitCode).toBe(2);
    expect(otherRate.text).toContain('p99.9 added @2000/s');
  });

  it('a baseline without `added_p999_us` gates no p99.9', () => {
    const v = checkBaseline(withP999(FLAT_DIRECT, OUTRIGGER), base);
    expect(row(v.text)).toBeUndefined();
    expect(v.measured?.addedP999Us).toBeUndefined();
  });

  it('--write-baseline takes the p99.9 median as its threshold, keeping rate, margins and note', () => {
    const b = p999(9999, 25, 1000);
    const v = checkBaseline(withP999(FLAT_DIRECT, OUTRIGGER), b);
    const next = rebaseline(b, v.measured!, 'at');
    expect(next.added_p999_us).toEqual({ rate: 1000, threshold: 2400, margin_percent: 25, margin_abs: 1000, note: 'how it was set' });
    expect(rebaseline(base, v.measured!, 'at').added_p999_us).toBeUndefined();
  });
});

describe('CPU gates widened by the node relay ÷ nginx noise', () => {
  /** The stored run plus a node-relay throughput run per round with this CPU µs/req ÷ nginx's of that round. */
  function withRelay(ratios: readonly number[]): BenchResults {
    const nginx = new Map(
      stored.runs.flatMap((x) => (x.kind === 'throughput' && x.variant === 'GET /' && x.config === 'nginx' ? [[x.round, x.cpuUsPerReq ?? 0] as const] : [])),
    );
    const relay: ThroughputRecord[] = ratios.map((q, i) => ({
      kind: 'throughput',
      config: 'node-relay',
      round: i + 1,
      startedAt: '',
      variant: 'GET /',
      connections: 50,
      durationS: 3,
      cpuUsPerReq: q * (nginx.get(i + 1) ?? 0),
    }));
    return { ...stored, runs: [...stored.runs, ...relay] };
  }
  const measured = stored.summary.find((x) => x.config === 'outrigger-1w')?.cpuRatioToNginx?.median ?? NaN;
  const tight: Baseline = { ...base, cpu_ratio_to_nginx: { threshold: measured / 1.3, margin_percent: 15, margin_abs: 0 } };
  const cpuRow = (text: string): string | undefined => text.split('\n').find((l) => l.startsWith('| outrigger-1w: CPU µs/req ÷ nginx'));

  it('a relay that moves with nginx (the same ratio every round) adds nothing: a 30 % regression fails the 15 % margin', () => {
    const r = withRelay([1.3, 1.3, 1.3, 1.3, 1.3]);
    expect(cpuRatioNoise(r)).toBe(0);
    const v = checkBaseline(r, tight);
    expect(v.exitCode).toBe(1);
    expect(cpuRow(v.text)).toMatch(/FAIL \|$/);
    expect(v.text).toContain("CPU margin: max(margin_percent, this run's CPU noise 0 % = 3 × 1.4826 × MAD over rounds of node-relay ÷ nginx CPU µs/req");
  });

  it('a relay whose ratio to nginx moves widens margin_percent to its robust 3σ, relative to its median', () => {
    // 1.2 1.3 1.4 1.5 1.6: median 1.4, deviations .2 .1 0 .1 .2 → MAD 0.1 → 3 × 1.4826 × 0.1 / 1.4 = 31.8 %.
    const r = withRelay([1.2, 1.3, 1.4, 1.5, 1.6]);
    expect(cpuRatioNoise(r)).toBeCloseTo((3 * 1.4826 * 0.1) / 1.4, 6);
    const v = checkBaseline(r, tight);
    expect(v.exitCode).toBe(0);
    expect(cpuRow(v.text)).toContain(`| ${((measured / 1.3) * 1.32).toFixed(2)} | ok |`); // allowed: threshold × (1 + 32 %)
    expect(v.text).toContain("this run's CPU noise 32 %");
    expect(cpuRatioNoise(withRelay([1.0, 1.2]))).toBe(0); // < 3 rounds: no estimate
  });

  it('a run whose relay ratio moved more than 50 % cannot judge CPU: exit 2, unless a check failed anyway', () => {
    // 1.0 1.5 2.0 2.5 3.0: median 2, MAD 0.5 → 111 %.
    const r = withRelay([1.0, 1.5, 2.0, 2.5, 3.0]);
    const v = checkBaseline(r, tight);
    expect(v.exitCode).toBe(2);
    expect(v.text).toContain('bench:ci cannot judge the CPU ratios of this run: node-relay ÷ nginx moved 111 % (robust 3σ)');
    expect(v.measured?.cpuRatio).toBe(measured); // still reported
    // A check that fails beyond even that margin is a failure.
    expect(checkBaseline(r, { ...base, cpu_ratio_to_nginx: { threshold: measured / 3, margin_percent: 15, margin_abs: 0 } }).exitCode).toBe(1);
  });
});

describe('bench/baseline.json', () => {
  const b = JSON.parse(readFileSync(new URL('../../bench/baseline.json', import.meta.url), 'utf8')) as Baseline;

  it('gates the default engine with 1 worker, on p99 and p99.9 at the same rate, and the other engines and strict with pipeline_plaintext: false on CPU', () => {
    expect(b.config).toBe('outrigger-strict-1w');
    expect(b.added_p999_us?.rate).toBe(b.added_p99_us.rate);
    expect(b.more_configs?.map((g) => g.config)).toEqual(['outrigger-1w', 'outrigger-node-1w', UNPIPELINED_TARGET.name]);
    expect(b.rss).toBeDefined();
  });
});

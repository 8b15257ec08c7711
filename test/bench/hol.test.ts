// The head-of-line scenario (bench/lib/hol.ts) and the fast hop's figures (bench/lib/hop.ts):
// the script's output from a real wrk run, the fast/slow split, the per-config medians and the
// paired ratios, the report tables and the lines bench:ci prints.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { summarizeComparisons } from '../../bench/lib/comparisons.js';
import { holLua, holTables, latencyProfile, parseHolOutput, summarizeHol, type HolRecord, type LatencyProfile } from '../../bench/lib/hol.js';
import { DEPTH1, hopComparisons, hopHolPlan, hopLines, PIPELINED, PLAIN_PAIR } from '../../bench/lib/hop.js';
import type { RunRecord } from '../../bench/lib/measure.js';
import { rateLines, summarizeRuns } from '../../bench/lib/summary.js';
import { parseWrkOutput, wrkLuaScript } from '../../bench/lib/wrk.js';
import { rateRecord, throughputRecord, wrkResult } from './wrk_fixture.js';

// Captured from wrk -t1 -c16 -d2s at 500 req/s with holLua(50, 200) against bench/upstream
// (GET /hol/fast, every 50th request /hol/slow/200).
const CAPTURED = readFileSync(new URL('./fixtures/wrk-hol-500.txt', import.meta.url), 'utf8');

describe('the head-of-line wrk script', () => {
  it('asks for every slowEvery-th request slow, stamps an id and keeps the pacer', () => {
    const s = wrkLuaScript({ threads: 1, rate: 1000, extraLua: holLua(100, 500) });
    expect(s).toContain('local hol_every = 100');
    expect(s).toContain('local hol_slow_path = "/hol/slow/500"');
    expect(s).toContain('["x-bench-id"] = tostring(hol_count)');
    expect(s).toContain('function delay()');
    // The scenario's output comes after wrk's own JSON line, inside the one done().
    expect(s.indexOf('HOL_JSON')).toBeGreaterThan(s.indexOf('WRK_JSON'));
    expect(s.match(/^function done\(/gm)).toHaveLength(1);
  });

  it('a real run: every response is matched to its request, 1 in 50 slow, the slow ones ≥ 200 ms', () => {
    const wrk = parseWrkOutput(CAPTURED);
    const hol = parseHolOutput(CAPTURED);
    expect(hol.unmatched).toBe(0);
    expect(hol.other).toEqual([]);
    expect(hol.fast.length + hol.slow.length).toBe(wrk.requests);
    // 1 in 50 asked slow; the slow ones sent in the last 200 ms were still in flight when wrk stopped.
    const answered = hol.fast.length + hol.slow.length;
    expect(hol.slow.length).toBeGreaterThanOrEqual(Math.floor(answered / 50) - 2);
    expect(hol.slow.length).toBeLessThanOrEqual(Math.ceil(answered / 49));
    // The upstream's timer runs on its loop's cached clock, up to a millisecond early.
    expect(Math.min(...hol.slow)).toBeGreaterThanOrEqual(199_000);
    // wrk's own histogram mixes the kinds: its p99 is a slow request, the fast requests' is not.
    expect(wrk.latency.p99Us).toBeGreaterThanOrEqual(200_000);
    expect(latencyProfile(hol.fast)?.p99Us).toBeLessThan(200_000);
  });

  it('fails clearly when the scenario line is missing', () => {
    expect(() => parseHolOutput('Running 1s test\n')).toThrow(/no HOL_JSON line/);
  });
});

describe('latencyProfile', () => {
  it('interpolated percentiles and the max; null for no requests', () => {
    const us = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(latencyProfile(us)).toEqual({ n: 1000, p50Us: 501, p90Us: 900, p99Us: 990, p999Us: 999, maxUs: 1000 });
    expect(latencyProfile([])).toBeNull();
  });
});

function fast(p50Us: number, p99Us: number): LatencyProfile {
  return { n: 990, p50Us, p90Us: p50Us, p99Us, p999Us: p99Us * 2, maxUs: p99Us * 3 };
}

function hol(config: string, round: number, f: LatencyProfile, extra: Partial<HolRecord> = {}): HolRecord {
  return {
    kind: 'hol',
    round,
    config,
    startedAt: '',
    rate: 1000,
    connections: 64,
    durationS: 5,
    slowEvery: 100,
    slowMs: 500,
    wrk: { ...wrkResult(1000, 5), late: 1 },
    fast: f,
    slow: fast(500_500, 501_000),
    unmatched: 0,
    ...extra,
  };
}

describe('summarizeHol', () => {
  const plan = hopHolPlan(5);
  const runs: RunRecord[] = [
    hol(PIPELINED, 1, fast(600, 2400)),
    hol(DEPTH1, 1, fast(500, 2000)),
    hol(PIPELINED, 2, fast(700, 3300)),
    hol(DEPTH1, 2, fast(700, 3000)),
    hol(PIPELINED, 3, fast(0, 0), { error: 'wrk exited 1' }),
    hol(DEPTH1, 3, fast(600, 2500), { otherStatuses: { 503: 5, 504: 1 } }),
    hol('direct', 1, fast(100, 400)),
  ];
  const s = summarizeHol(plan, runs);

  it('medians over the rounds that ran, the failed one left out', () => {
    const p = s.configs.find((c) => c.config === PIPELINED);
    expect(p?.fastP99Us).toEqual({ median: 2850, min: 2400, max: 3300, n: 2 });
    expect(p?.fastP50Us).toEqual({ median: 650, min: 600, max: 700, n: 2 });
    expect(p?.slowP50Us?.median).toBe(500_500);
    expect(p?.late).toBe(2);
    expect(p?.otherStatuses).toEqual({});
    expect(s.configs.find((c) => c.config === DEPTH1)?.otherStatuses).toEqual({ 503: 5, 504: 1 });
    expect(s.configs.map((c) => c.config)).toEqual(['direct', PIPELINED, DEPTH1]);
  });

  it('pipelined ÷ depth 1 paired by round, against the 1.2 target', () => {
    const c = s.comparisons.find((x) => x.a === PIPELINED && x.b === DEPTH1);
    // rounds: 2400 / 2000 = 1.2, 3300 / 3000 = 1.1
    expect(c?.p99Ratio?.median).toBeCloseTo(1.15);
    expect(c?.p99Ratio?.min).toBeCloseTo(1.1);
    expect(c?.p50Ratio?.median).toBeCloseTo((1.2 + 1) / 2);
    // p99.9 is 2 × p99 in both: the same ratios
    expect(c?.p999Ratio?.median).toBeCloseTo(1.15);
    expect(c?.target).toBe(1.2);
    expect(c?.withinTarget).toBe(true);
    const over = summarizeHol(plan, [hol(PIPELINED, 1, fast(600, 2600)), hol(DEPTH1, 1, fast(500, 2000))]);
    expect(over.comparisons.find((x) => x.a === PIPELINED)?.withinTarget).toBe(false);
  });

  it('leaves out a pair whose side did not run', () => {
    expect(summarizeHol(plan, [hol(PIPELINED, 1, fast(600, 2400))]).comparisons).toEqual([]);
  });

  it('renders the per-config and the ratio tables', () => {
    const [perConfig, ratios] = holTables(s);
    expect(perConfig?.rows.find((r) => r[0] === DEPTH1)?.at(-1)).toBe('503: 5, 504: 1');
    expect(perConfig?.rows.find((r) => r[0] === PIPELINED)).toEqual([
      PIPELINED,
      '650 (600–700)',
      '2850 (2400–3300)',
      '5700 (4800–6600)',
      '8550 (7200–9900)',
      '500500',
      '2',
      '0',
      '0',
      '0',
    ]);
    expect(ratios?.rows[0]).toEqual([
      'head-of-line, pipelined ÷ depth 1',
      PIPELINED,
      DEPTH1,
      '1.15× (1.10–1.20)',
      '1.10× (1.00–1.20)',
      '1.15× (1.10–1.20)',
      '≤ 1.20: yes',
    ]);
  });
});

describe('hopLines', () => {
  const runs: RunRecord[] = [];
  for (const round of [1, 2]) {
    runs.push(throughputRecord(PIPELINED, round, 8000, 60, 3, { partsCpuUsPerReq: { client: 30, server: 30 } }));
    runs.push(throughputRecord(DEPTH1, round, 6000, 80, 3, { partsCpuUsPerReq: { client: 40, server: 40 } }));
    runs.push(throughputRecord(PLAIN_PAIR, round, 9000, 50 + round * 10, 3, { partsCpuUsPerReq: { client: 25, server: 25 + round * 10 } }));
    for (const [config, p99Us] of [
      ['direct', 300],
      [PIPELINED, 900 + round * 200],
      [DEPTH1, 1500],
    ] as const) {
      runs.push(rateRecord(config, round, { p99Us }));
    }
    runs.push(hol(PIPELINED, round, fast(600, 2400)), hol(DEPTH1, round, fast(500, 2000)));
  }
  const summary = summarizeRuns(['direct', PIPELINED, DEPTH1, PLAIN_PAIR], runs, {}, { rates: [1000], variants: [] });
  const lines = hopLines({ comparisons: summarizeComparisons(hopComparisons(), runs), summary, hol: summarizeHol(hopHolPlan(5), runs) });

  it('the CPU ratios to two plaintext sidecars, whole path and per sidecar, with the 1.3 target on the path', () => {
    // rounds: 60 / 60 = 1.0, 60 / 70 = 0.857
    expect(lines).toContain(
      '- mTLS path, pipelined ÷ two plaintext sidecars (outrigger-mtls-strict ÷ outrigger-pair-plain): CPU/req 0.93× (0.86–1.00), target ≤ 1.30: yes',
    );
    expect(lines).toContain(
      '- mTLS path, depth 1 ÷ two plaintext sidecars, server sidecar (outrigger-mtls-strict-depth1 · server ÷ outrigger-pair-plain · server): CPU/req 1.02× (0.89–1.14)',
    );
    expect(lines).toContain('- mTLS path, pipelined ÷ depth 1 (outrigger-mtls-strict ÷ outrigger-mtls-strict-depth1): CPU/req 0.75× (0.75–0.75)');
  });

  it('the p99 added over direct at 1000 req/s against 1 ms, and the head-of-line ratio', () => {
    expect(lines).toContain('- outrigger-mtls-strict: p99 added over direct @1000/s 900 µs (800…1000), target ≤ 1000 µs: yes');
    expect(lines).toContain('- outrigger-mtls-strict-depth1: p99 added over direct @1000/s 1200 µs (1200…1200), target ≤ 1000 µs: NO');
    expect(lines).toContain(
      "- head-of-line, pipelined ÷ depth 1 (outrigger-mtls-strict ÷ outrigger-mtls-strict-depth1): fast requests' p99 1.20×, p50 1.20×, p99.9 1.20×, target ≤ 1.20: yes",
    );
  });
});

describe('rateLines (bench:ci prints them under its gates)', () => {
  it('p50, p99, p99.9 and max at the rate with what each adds over direct, medians over rounds', () => {
    const runs: RunRecord[] = [1, 2].flatMap((round) =>
      (['direct', PIPELINED] as const).map((config): RunRecord => {
        const k = config === 'direct' ? 1 : 2 * round;
        return rateRecord(config, round, { p50Us: 100 * k, p99Us: 300 * k, p999Us: 400 * k, maxUs: 500 * k }, round);
      }),
    );
    const summary = summarizeRuns(['direct', PIPELINED], runs, {}, { rates: [1000], variants: [] });
    expect(rateLines(summary, 1000)).toEqual([
      '- direct: p50 100, p99 300, p99.9 400, max 500; late 3',
      // rounds ×2 and ×4: medians of 600/1200, 800/1600, 1000/2000; added 300/900 and 400/1200
      '- outrigger-mtls-strict: p50 300, p99 900, p99.9 1200, max 1500; added p99 600, p99.9 800; late 3',
    ]);
    expect(rateLines(summary, 2000)).toEqual([]);
  });

  it('the time the config waited for a CPU, when its runs measured it (not for direct, nor for results from before)', () => {
    const runs: RunRecord[] = [1, 2, 3].flatMap((round) => [
      rateRecord('direct', round, { p99Us: 300 }),
      rateRecord(PIPELINED, round, { p99Us: 900 }, 0, { cpuUsPerReq: 400, waitUsPerReq: 100 * round }),
      rateRecord(DEPTH1, round, { p99Us: 1500 }),
    ]);
    const summary = summarizeRuns(['direct', PIPELINED, DEPTH1], runs, {}, { rates: [1000], variants: [] });
    const q = (config: string) => summary.find((s) => s.config === config)?.rates[0];
    expect(q(PIPELINED)?.waitUsPerReq).toEqual({ median: 200, min: 100, max: 300, n: 3 });
    expect(q('direct')).not.toHaveProperty('waitUsPerReq');
    expect(q(DEPTH1)).not.toHaveProperty('waitUsPerReq');
    expect(rateLines(summary, 1000)).toContain(
      '- outrigger-mtls-strict: p50 100, p99 900, p99.9 400, max 400; added p99 600, p99.9 0; waited for a CPU 200 µs/req; late 0',
    );
    expect(hopLines({ summary })).toContain(
      '- outrigger-mtls-strict: p99 added over direct @1000/s 600 µs (600…600), target ≤ 1000 µs: yes; its threads waited for a CPU 200 µs/req',
    );
    expect(hopLines({ summary })).toContain('- outrigger-mtls-strict-depth1: p99 added over direct @1000/s 1200 µs (1200…1200), target ≤ 1000 µs: NO');
  });
});

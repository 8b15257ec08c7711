// npm run bench:ab's pure part: the ABBA order, one round's numbers per build from raw records,
// medians/ranges and head ÷ base paired round by round, and the tables. Fixed records only; no
// git, no wrk, no timing.

import { describe, expect, it } from 'vitest';
import { abMetrics, abOrder, abRounds, chanceAllAgree, headline, loadWarning, problems, roundsTable, summarizeAb, summaryTable } from '../../bench/lib/ab.js';
import type { RateRecord, RunRecord, ThroughputRecord } from '../../bench/lib/measure.js';
import type { WrkResult } from '../../bench/lib/wrk.js';

function wrk(rps: number, p: { p50?: number; p99?: number; p999?: number; late?: number; status?: number } = {}): WrkResult {
  return {
    requests: rps * 3,
    durationUs: 3_000_000,
    bytes: 0,
    requestsPerSec: rps,
    errors: { connect: 0, read: 0, write: 0, status: p.status ?? 0, timeout: 0 },
    latency: { minUs: 1, maxUs: 9, meanUs: 2, stdevUs: 1, p50Us: p.p50 ?? 100, p90Us: 200, p99Us: p.p99 ?? 500, p999Us: p.p999 ?? 900 },
    targetRate: null,
    late: p.late ?? 0,
  };
}

function tp(config: string, round: number, rps: number, cpu: number): ThroughputRecord {
  return {
    kind: 'throughput',
    config,
    round,
    startedAt: '',
    variant: 'GET /',
    connections: 50,
    durationS: 3,
    wrk: wrk(rps),
    cpuUsPerReq: cpu,
    upstreamCpuUsPerReq: 8,
  };
}

function rate(config: string, round: number, p50: number, p99: number, r = 1000): RateRecord {
  return { kind: 'rate', config, round, startedAt: '', rate: r, connections: 16, durationS: 3, wrk: wrk(r, { p50, p99 }), cpuUsPerReq: 30 };
}

describe('abOrder', () => {
  it('alternates ABBA…: base first in odd rounds, head first in even ones', () => {
    expect([1, 2, 3, 4, 5].map((r) => abOrder(r).join(''))).toEqual(['basehead', 'headbase', 'basehead', 'headbase', 'basehead']);
  });
  it('over an even number of rounds each build goes first equally often', () => {
    const firsts = [1, 2, 3, 4, 5, 6].map((r) => abOrder(r)[0]);
    expect(firsts.filter((s) => s === 'base')).toHaveLength(3);
  });
  it('rejects round 0 and fractions', () => {
    expect(() => abOrder(0)).toThrow();
    expect(() => abOrder(1.5)).toThrow();
  });
});

describe('summarizeAb', () => {
  /** One round in ABBA order (throughput records, then rate records): each build's rps, CPU µs/req, p50 and p99 µs. */
  function abRound(round: number, base: [number, number, number, number], head: [number, number, number, number]): RunRecord[] {
    const order = abOrder(round).map((config) => [config, config === 'base' ? base : head] as const);
    return [...order.map(([config, [rps, cpu]]) => tp(config, round, rps, cpu)), ...order.map(([config, [, , p50, p99]]) => rate(config, round, p50, p99))];
  }
  // Round 2 runs 2× slower for both builds (the machine swung): the paired ratio does not move.
  const runs: RunRecord[] = [
    ...abRound(1, [10_000, 20, 100, 400], [11_000, 18, 90, 500]),
    ...abRound(2, [5_000, 40, 200, 1000], [5_500, 36, 180, 900]),
    ...abRound(3, [10_000, 20, 100, 400], [10_000, 19, 100, 400]),
  ];
  const rounds = abRounds(runs, 3, 1000);
  const summary = summarizeAb(rounds, abMetrics(1000));
  const cpu = summary.find((m) => m.key === 'cpuUsPerReq');
  const rps = summary.find((m) => m.key === 'rps');
  const p99 = summary.find((m) => m.key === 'p99Us');

  it('pairs head ÷ base by round, so a swing that hits both builds alike cancels', () => {
    expect(cpu?.ratios.map((x) => [x.round, Number(x.ratio.toFixed(3))])).toEqual([
      [1, 0.9],
      [2, 0.9],
      [3, 0.95],
    ]);
    expect(cpu?.ratio).toEqual({ median: 0.9, min: 0.9, max: 0.95, n: 3 });
    // unpaired, the medians' ratio hides the same change in the spread: base 20 (20–40), head 19 (18–36)
    expect(cpu?.base).toEqual({ median: 20, min: 20, max: 40, n: 3 });
    expect(cpu?.head).toEqual({ median: 19, min: 18, max: 36, n: 3 });
  });

  it('counts rounds where head is strictly better, in the metric’s own direction', () => {
    expect(cpu?.headBetter).toBe(3); // lower is better
    expect(rps?.headBetter).toBe(2); // higher is better; round 3 is a tie
    expect(p99?.headBetter).toBe(1); // 500 > 400 worse, 900 < 1000 better, tie
  });

  it('leaves out a round where one build failed, and says so', () => {
    const failed: RunRecord[] = [
      ...runs.filter((r) => !(r.config === 'head' && r.round === 2 && r.kind === 'throughput')),
      { kind: 'throughput', config: 'head', round: 2, startedAt: '', variant: 'GET /', connections: 50, durationS: 3, error: 'wrk exited 1' },
    ];
    const rs = abRounds(failed, 3, 1000);
    const s = summarizeAb(rs, abMetrics(1000)).find((m) => m.key === 'cpuUsPerReq');
    expect(s?.ratios.map((x) => x.round)).toEqual([1, 3]);
    expect(s?.head?.n).toBe(2);
    expect(problems(rs)).toEqual(['head: round 2 throughput: wrk exited 1']);
    expect(roundsTable(rs, 1000)).toContain('⚠ throughput: wrk exited 1');
  });

  it('flags wrk errors as an unfair comparison', () => {
    const withErrors: RunRecord[] = [
      ...runs.filter((r) => !(r.config === 'base' && r.round === 1 && r.kind === 'rate')),
      { ...rate('base', 1, 100, 400), wrk: wrk(1000, { status: 7 }) },
    ];
    expect(problems(abRounds(withErrors, 3, 1000))).toEqual(['base: 7 wrk errors / non-2xx responses — not a fair comparison']);
  });

  it('renders the per-round rows in the order they ran and the summary with ratios', () => {
    const t = roundsTable(rounds, 1000).split('\n');
    expect(t[2]).toMatch(/^\| 1 \| base \| 10000 \| 20\.0 \|/);
    expect(t[4]).toMatch(/^\| 2 \| head \| 5500 \| 36\.0 \|/);
    expect(t[5]).toMatch(/^\| {2}\| base \| 5000 \| 40\.0 \|/);
    const s = summaryTable(summary);
    expect(s).toContain(
      '| CPU µs/req (sidecar process tree) (lower is better) | 20.0 (20.0–40.0) | 19.0 (18.0–36.0) | **0.900 (0.900–0.950)** | 0.900 0.900 0.950 | 3 of 3 |',
    );
    expect(headline(summary)).toBe(
      'CPU µs/req: head ÷ base 0.900 (-10.0 %), range 0.900–0.950; head lower in all 3 rounds (with no difference at all, 3 rounds agree by chance 25 % of the time: run more rounds).',
    );
  });

  it('says the rounds disagree when the ratio range spans 1', () => {
    const mixed = abRounds([tp('base', 1, 1, 20), tp('head', 1, 1, 21), tp('head', 2, 1, 19), tp('base', 2, 1, 20)], 2, 1000);
    expect(headline(summarizeAb(mixed, abMetrics(1000)))).toContain('the rounds disagree (head lower in 1 of 2)');
  });
});

describe('how much agreement means', () => {
  it('all n rounds on one side of 1 happens by chance 2 × 0.5ⁿ of the time when nothing changed', () => {
    expect([1, 2, 3, 5, 7].map(chanceAllAgree)).toEqual([1, 0.5, 0.25, 0.0625, 0.015625]);
  });
  it('warns when the load average exceeded the CPU count at the start or the end', () => {
    expect(loadWarning([1.5, 1, 1], [1.9, 1, 1], 2)).toBeNull();
    expect(loadWarning([1.5, 1, 1], [20.16, 20, 17], 2)).toMatch(/^load average up to 20\.2 on 2 CPUs: /);
  });
});

// Percentiles, medians and the merging of rounds into paired ratios and added latency.

import { describe, expect, it } from 'vitest';
import type { RunRecord, ThroughputRecord } from '../../bench/lib/measure.js';
import { median, pairedDiff, pairedRatio, percentile, spreadPercent, summarize } from '../../bench/lib/stats.js';
import { summarizeRuns } from '../../bench/lib/summary.js';
import type { WrkResult } from '../../bench/lib/wrk.js';
import { rateRecord, throughputRecord } from './wrk_fixture.js';

describe('percentile / median / summarize', () => {
  it('interpolates between ranks like numpy', () => {
    const xs = [15, 20, 35, 40, 50];
    expect(percentile(xs, 0)).toBe(15);
    expect(percentile(xs, 100)).toBe(50);
    expect(percentile(xs, 50)).toBe(35);
    expect(percentile(xs, 40)).toBe(29);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => percentile([], 50)).toThrow();
    expect(() => percentile([1], 101)).toThrow();
  });

  it('summarises finite values only and reports spread', () => {
    expect(summarize([3, null, 1, undefined, Number.NaN, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(summarize([])).toBeNull();
    expect(spreadPercent({ median: 10, min: 9, max: 11, n: 3 })).toBe(10);
  });

  it('pairs by round for ratios and differences', () => {
    const a = new Map([
      [1, 20],
      [2, 30],
      [3, 24],
    ]);
    const b = new Map([
      [1, 10],
      [2, 10],
      [4, 99],
    ]);
    expect(pairedRatio(a, b)).toEqual({ median: 2.5, min: 2, max: 3, n: 2 });
    expect(pairedDiff(a, b)).toEqual({ median: 15, min: 10, max: 20, n: 2 });
  });
});

function wrk(rps: number, p: [number, number, number, number], late = 0, status = 0): WrkResult {
  return {
    requests: rps * 2,
    durationUs: 2_000_000,
    bytes: 0,
    requestsPerSec: rps,
    errors: { connect: 0, read: 0, write: 0, status, timeout: 0 },
    latency: { minUs: 1, maxUs: p[3], meanUs: p[0], stdevUs: 1, p50Us: p[0], p90Us: p[1], p99Us: p[2], p999Us: p[3] },
    targetRate: null,
    late,
  };
}

function tp(config: string, round: number, rps: number, cpu: number): ThroughputRecord {
  return throughputRecord(config, round, rps, cpu, 2, { wrk: wrk(rps, [100, 200, 300, 400]), rss: { peakKb: 10_240 * round, meanKb: 1, samples: 1 } });
}

describe('summarizeRuns', () => {
  // Per round, per config: [requests/s, CPU µs/request] of the throughput run, then the p99 (µs)
  // and late count of the 1000 rps rate run.
  const rounds: Array<Record<'direct' | 'nginx' | 'outrigger-1w', [number, number, number, number?]>> = [
    { direct: [60_000, 0, 100], nginx: [40_000, 10, 150], 'outrigger-1w': [30_000, 15, 400, 3] },
    { direct: [50_000, 0, 300], nginx: [30_000, 12, 310], 'outrigger-1w': [20_000, 24, 500] },
    { direct: [55_000, 0, 200], nginx: [35_000, 11, 260], 'outrigger-1w': [25_000, 22, 450] },
  ];
  const each = <T>(f: (config: string, round: number, x: [number, number, number, number?]) => T): T[] =>
    rounds.flatMap((r, i) => Object.entries(r).map(([config, x]) => f(config, i + 1, x)));
  const runs: RunRecord[] = [
    ...each((config, round, [rps, cpu]) => tp(config, round, rps, cpu)),
    ...each((config, round, [, , p99, late]) => rateRecord(config, round, { p99Us: p99 }, late)),
    { kind: 'rate', round: 3, config: 'outrigger-1w', startedAt: '', rate: 2000, connections: 16, durationS: 2, error: 'wrk exited 1' },
  ];
  const s = summarizeRuns(['direct', 'nginx', 'outrigger-1w'], runs, { nginx: 8000 }, { rates: [1000], variants: [] });
  const by = (c: string) => s.find((x) => x.config === c);

  it('takes the median CPU/request and pairs the ratio to nginx by round', () => {
    expect(by('outrigger-1w')?.cpuUsPerReq).toEqual({ median: 22, min: 15, max: 24, n: 3 });
    // per-round ratios 1.5, 2.0, 2.0
    expect(by('outrigger-1w')?.cpuRatioToNginx).toEqual({ median: 2, min: 1.5, max: 2, n: 3 });
    expect(by('nginx')?.cpuRatioToNginx?.median).toBe(1);
    expect(by('direct')?.cpuRatioToNginx).toBeNull();
  });

  it('computes latency added over direct in the same round', () => {
    const q = by('outrigger-1w')?.rates[0];
    // per-round added p99: 300, 200, 250
    expect(q?.addedP99Us).toEqual({ median: 250, min: 200, max: 300, n: 3 });
    expect(q?.p99Us?.median).toBe(450);
    expect(q?.late).toBe(3);
    expect(by('direct')?.rates[0]?.addedP99Us?.median).toBe(0);
  });

  it('keeps idle RSS, peak loaded RSS and counts failed runs', () => {
    expect(by('nginx')?.idleRssKb).toBe(8000);
    expect(by('outrigger-1w')?.idleRssKb).toBeNull();
    expect(by('nginx')?.loadedRssKb?.median).toBe(20_480);
    expect(by('outrigger-1w')?.failedRuns).toBe(1);
    expect(by('nginx')?.failedRuns).toBe(0);
  });
});

// Scaling with workers (issue 13): the N ÷ 1 worker CPU-per-request ratio of the default engine
// (paired by round, target ≤ 1.1), the requests and connections per worker read from GET /stats
// `workers`, the lines bench and bench:ci print, and the idle RSS a second strict worker adds.
// Fixed records only; no wrk, no timing.

import { describe, expect, it } from 'vitest';
import { parseWorkers, workerCountsText, type ConnectionsReading } from '../../bench/lib/admin.js';
import { benchComparisons, scalingLines, summarizeComparisons, workerComparisons } from '../../bench/lib/comparisons.js';
import type { RunRecord } from '../../bench/lib/measure.js';
import { perExtraWorkerKb } from '../../bench/lib/memory.js';
import { throughputRecord } from './wrk_fixture.js';

const tp = (config: string, round: number, cpu: number) => throughputRecord(config, round, 10_000, cpu, 3);

describe('N ÷ 1 worker CPU per request', () => {
  const runs: RunRecord[] = [
    tp('outrigger-strict-1w', 1, 40),
    tp('outrigger-strict-2w', 1, 42),
    tp('outrigger-strict-1w', 2, 50),
    tp('outrigger-strict-2w', 2, 60),
  ];

  it('pairs outrigger-strict-2w with outrigger-strict-1w round by round against a target of 1.1', () => {
    const [strict] = summarizeComparisons(workerComparisons(2), runs);
    // rounds: 42 / 40 = 1.05, 60 / 50 = 1.2 → median 1.125
    expect(strict?.label).toBe('default engine (strict), 2 workers ÷ 1 worker');
    expect(strict?.cpuRatio?.median).toBeCloseTo(1.125);
    expect(strict?.target).toBe(1.1);
    expect(strict?.withinTarget).toBe(false);
    // uws was not measured: its comparison is dropped.
    expect(summarizeComparisons(workerComparisons(2), runs)).toHaveLength(1);
  });

  it('is part of npm run bench’s comparisons, with the uws one', () => {
    const labels = benchComparisons(3).map((c) => c.label);
    expect(labels).toContain('default engine (strict), 3 workers ÷ 1 worker');
    expect(labels).toContain('plaintext uws, 3 workers ÷ 1 worker');
  });
});

describe('requests and connections per worker', () => {
  it('parses GET /stats `workers`, or null when absent or malformed', () => {
    const workers = [
      { worker: 1, requests: 10, connections_accepted: 2 },
      { worker: 2, requests: 30, connections_accepted: null },
    ];
    expect(parseWorkers({ workers })).toEqual(workers);
    expect(parseWorkers({ listeners: [] })).toBeNull();
    expect(parseWorkers({ workers: [{ worker: '1', requests: 1, connections_accepted: 1 }] })).toBeNull();
  });

  it('formats each worker’s share', () => {
    expect(
      workerCountsText([
        { worker: 1, requests: 3000, connections_accepted: 20 },
        { worker: 2, requests: 1000, connections_accepted: 30 },
      ]),
    ).toBe('worker 1: 3,000 requests (75 %), 20 connections (40 %); worker 2: 1,000 requests (25 %), 30 connections (60 %)');
    expect(workerCountsText([{ worker: 1, requests: 0, connections_accepted: null }])).toBe('worker 1: 0 requests, connections not counted (uws)');
    expect(workerCountsText(undefined)).toBeNull();
  });

  it('prints the ratio and the multi-worker configs’ counts after a run (not the 1-worker ones, not mTLS parts)', () => {
    const runs: RunRecord[] = [tp('outrigger-strict-1w', 1, 40), tp('outrigger-strict-2w', 1, 44)];
    const two = [
      { worker: 1, requests: 600, connections_accepted: 26 },
      { worker: 2, requests: 400, connections_accepted: 25 },
    ];
    const connections: ConnectionsReading[] = [
      { config: 'outrigger-strict-1w', part: 'outrigger-strict-1w', listeners: [], workers: [{ worker: 1, requests: 900, connections_accepted: 51 }] },
      { config: 'outrigger-strict-2w', part: 'outrigger-strict-2w', listeners: [], workers: two },
      { config: 'outrigger-mtls-2w', part: 'server', listeners: [], workers: two },
      { config: 'outrigger-2w', part: 'outrigger-2w', listeners: [] },
    ];
    const lines = scalingLines({ comparisons: summarizeComparisons(workerComparisons(2), runs), connections }, 2);
    expect(lines).toEqual([
      '- default engine (strict), 2 workers ÷ 1 worker (outrigger-strict-2w ÷ outrigger-strict-1w): CPU/req 1.10×, target ≤ 1.10: yes',
      '- outrigger-strict-2w per worker since start: worker 1: 600 requests (60 %), 26 connections (51 %); worker 2: 400 requests (40 %), 25 connections (49 %)',
    ]);
    expect(scalingLines({}, 2)).toEqual([]);
  });
});

describe('idle RSS per extra worker', () => {
  it('pairs each N-worker config with the 1-worker config of the same engine', () => {
    expect(
      perExtraWorkerKb({ idleRssKb: { 'outrigger-strict-1w': 80_000, 'outrigger-strict-2w': 95_000, 'outrigger-1w': 70_000, 'outrigger-mtls-2w': 1 } }),
    ).toEqual([{ config: 'outrigger-strict-2w', workers: 2, kb: 15_000 }]);
  });
});

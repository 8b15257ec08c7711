// npm run bench:ab's pure part: the ABBA order, one round's numbers per build from raw records,
// medians/ranges and head ÷ base paired round by round, the reference peer beside both builds
// (--peer: its place in the order, base ÷ peer and head ÷ peer paired per round), the tables and
// the report's sections. Fixed records only; no git, no wrk, no timing.

import { describe, expect, it } from 'vitest';
import {
  abMetrics,
  abOrder,
  abRounds,
  chanceAllAgree,
  headline,
  loadWarning,
  parsePath,
  parsePeers,
  peerHeadline,
  peerTable,
  problems,
  reportSections,
  roundOrder,
  roundsTable,
  summarizeAb,
  summarizePeers,
  summaryTable,
} from '../../bench/lib/ab.js';
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

function rate(config: string, round: number, p50: number, p99: number, r = 1000, cpu = 30): RateRecord {
  return { kind: 'rate', config, round, startedAt: '', rate: r, connections: 16, durationS: 3, wrk: wrk(r, { p50, p99 }), cpuUsPerReq: cpu };
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

  it('pairs the paced run’s CPU/request (from the rate records) like the throughput run’s', () => {
    const paced: RunRecord[] = [
      ...abRound(1, [10_000, 20, 100, 400], [11_000, 18, 90, 500]).map((r) => (r.kind === 'rate' ? { ...r, cpuUsPerReq: r.config === 'base' ? 100 : 80 } : r)),
      ...abRound(2, [5_000, 40, 200, 1000], [5_500, 36, 180, 900]).map((r) => (r.kind === 'rate' ? { ...r, cpuUsPerReq: r.config === 'base' ? 200 : 170 } : r)),
    ];
    const m = summarizeAb(abRounds(paced, 2, 1000), abMetrics(1000)).find((x) => x.key === 'rateCpuUsPerReq');
    expect(m?.label).toBe('CPU µs/req @1000/s (sidecar process tree)');
    expect(m?.ratios.map((x) => x.ratio)).toEqual([0.8, 0.85]);
    expect(m?.headBetter).toBe(2);
    expect(roundsTable(abRounds(paced, 2, 1000), 1000).split('\n')[2]).toMatch(/^\| 1 \| base \| 10000 \| 20\.0 \| 8\.0 \| 100\.0 \| 100 \|/);
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

describe('a reference peer beside both builds (--peer)', () => {
  it('parsePath: single by default, the pairs by name, unknown names and a peer beside a pair refused', () => {
    expect(parsePath(undefined, undefined)).toMatchObject({ name: 'single', kind: 'outrigger' });
    expect(parsePath('mtls', undefined)).toMatchObject({ kind: 'outrigger-mtls' });
    expect(parsePath('mtls', undefined).pipelineDepth).toBeUndefined();
    expect(parsePath('mtls-depth1', [])).toMatchObject({ kind: 'outrigger-mtls', pipelineDepth: 1 });
    expect(parsePath('plain-pair', undefined)).toMatchObject({ kind: 'outrigger-pair' });
    expect(parsePath('single', ['nginx'])).toMatchObject({ name: 'single' });
    expect(() => parsePath('pair', undefined)).toThrow(/not a known path: "pair" \(one of single, mtls, mtls-depth1, plain-pair\)/);
    expect(() => parsePath('mtls', ['nginx'])).toThrow(/two sidecars in series: it has no reference peer/);
  });

  it('parses --peer: default nginx (used when installed), comma lists, repeats, --no-peer', () => {
    expect(parsePeers(undefined, false)).toEqual({ peers: ['nginx'], explicit: false });
    expect(parsePeers([], true)).toEqual({ peers: [], explicit: true });
    expect(parsePeers(['nginx'], false)).toEqual({ peers: ['nginx'], explicit: true });
    expect(parsePeers(['haproxy,NGINX', 'nginx'], false)).toEqual({ peers: ['haproxy', 'nginx'], explicit: true });
    expect(() => parsePeers(['envoy'], false)).toThrow(/not a known peer: "envoy"/);
    expect(() => parsePeers(['nginx'], true)).toThrow(/contradict/);
  });

  it('keeps base and head in ABBA order and moves the peer first, middle, last', () => {
    const orders = [1, 2, 3, 4, 5, 6].map((r) => roundOrder(r, ['nginx']).join(' '));
    expect(orders).toEqual(['nginx base head', 'head nginx base', 'base head nginx', 'nginx head base', 'base nginx head', 'head base nginx']);
    // 3 rounds: every config in every place once; base/head relative order still alternates
    for (const c of ['base', 'head', 'nginx'] as const) {
      expect([1, 2, 3].map((r) => roundOrder(r, ['nginx']).indexOf(c)).sort()).toEqual([0, 1, 2]);
    }
    expect([1, 2, 3, 4].map((r) => roundOrder(r, ['nginx']).filter((c) => c !== 'nginx')[0])).toEqual(['base', 'head', 'base', 'head']);
    // two peers move as a block and swap inside it
    expect(roundOrder(1, ['nginx', 'haproxy'])).toEqual(['nginx', 'haproxy', 'base', 'head']);
    expect(roundOrder(2, ['nginx', 'haproxy'])).toEqual(['head', 'haproxy', 'nginx', 'base']);
    // without peers it is abOrder's
    expect([1, 2].map((r) => roundOrder(r))).toEqual([abOrder(1), abOrder(2)]);
  });

  /** One round, records in the order they ran: [rps, CPU µs/req, p50, p99] of base, head and nginx. */
  type Nums = [number, number, number, number];
  /** The paced run's CPU µs/req is 3 × the throughput run's (a sidecar that is not saturated pays more per request). */
  function peerRound(round: number, nums: Record<'base' | 'head' | 'nginx', Nums>): RunRecord[] {
    const order = roundOrder(round, ['nginx']) as readonly ('base' | 'head' | 'nginx')[];
    return [...order.map((c) => tp(c, round, nums[c][0], nums[c][1])), ...order.map((c) => rate(c, round, nums[c][2], nums[c][3], 1000, 3 * nums[c][1]))];
  }
  // Round 2 runs 2× slower for all three (the machine swung): the ratios to nginx do not move.
  const runs: RunRecord[] = [
    ...peerRound(1, { base: [10_000, 30, 100, 400], head: [11_000, 27, 90, 500], nginx: [20_000, 20, 80, 300] }),
    ...peerRound(2, { base: [5_000, 60, 200, 1000], head: [5_500, 54, 180, 900], nginx: [10_000, 40, 160, 600] }),
    ...peerRound(3, { base: [10_000, 32, 100, 400], head: [10_000, 30, 100, 400], nginx: [20_000, 20, 80, 350] }),
  ];
  const rounds = abRounds(runs, 3, 1000, [1, 2, 3], ['nginx']);
  const [nginx] = summarizePeers(rounds);

  it('pairs base ÷ nginx and head ÷ nginx CPU/request by round', () => {
    expect(nginx?.peer).toBe('nginx');
    expect(nginx?.baseToPeer.ratios.map((x) => [x.round, x.ratio])).toEqual([
      [1, 1.5],
      [2, 1.5],
      [3, 1.6],
    ]);
    expect(nginx?.baseToPeer.ratio).toEqual({ median: 1.5, min: 1.5, max: 1.6, n: 3 });
    expect(nginx?.headToPeer.ratios.map((x) => [x.round, x.ratio])).toEqual([
      [1, 1.35],
      [2, 1.35],
      [3, 1.5],
    ]);
    expect(nginx?.cpuUsPerReq.peer).toEqual({ median: 20, min: 20, max: 40, n: 3 });
    // the paced run's CPU is paired the same way, from the rate records
    expect(nginx?.rateCpuUsPerReq.peer).toEqual({ median: 60, min: 60, max: 120, n: 3 });
    expect(nginx?.headToPeerAtRate.ratios.map((x) => [x.round, Number(x.ratio.toFixed(3))])).toEqual([
      [1, 1.35],
      [2, 1.35],
      [3, 1.5],
    ]);
    expect(nginx?.p99Us.peer).toEqual({ median: 350, min: 300, max: 600, n: 3 });
    expect(nginx?.p999Us.peer).toEqual({ median: 900, min: 900, max: 900, n: 3 });
    // head ÷ base is the same as without a peer
    expect(
      summarizeAb(rounds, abMetrics(1000))
        .find((m) => m.key === 'cpuUsPerReq')
        ?.ratios.map((x) => x.ratio),
    ).toEqual([0.9, 0.9, 30 / 32]);
  });

  it('leaves out a round in which the peer failed, and lists the failure', () => {
    const failed: RunRecord[] = [
      ...runs.filter((r) => !(r.config === 'nginx' && r.round === 2 && r.kind === 'throughput')),
      { kind: 'throughput', config: 'nginx', round: 2, startedAt: '', variant: 'GET /', connections: 50, durationS: 3, error: 'wrk exited 1' },
    ];
    const rs = abRounds(failed, 3, 1000, [], ['nginx']);
    const [p] = summarizePeers(rs);
    expect(p?.baseToPeer.ratios.map((x) => x.round)).toEqual([1, 3]);
    expect(p?.headToPeer.ratio?.n).toBe(2);
    expect(problems(rs)).toEqual(['nginx: round 2 throughput: wrk exited 1']);
  });

  it('renders the peer in the per-round rows where it ran, the beside table and one line per peer', () => {
    const t = roundsTable(rounds, 1000).split('\n');
    expect(t).toHaveLength(2 + 9);
    expect(t[2]).toMatch(/^\| 1 \| nginx \| 20000 \| 20\.0 \|/);
    expect(t[3]).toMatch(/^\| {2}\| base \| 10000 \| 30\.0 \|/);
    expect(t[6]).toMatch(/^\| {2}\| nginx \| 10000 \| 40\.0 \|/);
    const p = peerTable(summarizePeers(rounds), 1000);
    expect(p).toContain(
      '| nginx | CPU µs/req (lower is better) | 32.0 (30.0–60.0) | 30.0 (27.0–54.0) | 20.0 (20.0–40.0) | **1.500 (1.500–1.600)** | **1.350 (1.350–1.500)** | 1.50/1.35 1.50/1.35 1.60/1.50 |',
    );
    expect(p).toContain(
      '| nginx | CPU µs/req @1000/s (lower is better) | 96.0 (90.0–180.0) | 90.0 (81.0–162.0) | 60.0 (60.0–120.0) | **1.500 (1.500–1.600)** | **1.350 (1.350–1.500)** | 1.50/1.35 1.50/1.35 1.60/1.50 |',
    );
    expect(p).toContain('| nginx | p99 µs @1000/s | 400 (400–1000) | 500 (400–900) | 350 (300–600) | | | |');
    expect(p).toContain('| nginx | p99.9 µs @1000/s | 900 (900–900) | 900 (900–900) | 900 (900–900) | | | |');
    expect(nginx === undefined ? '' : peerHeadline(nginx, 1000)).toBe(
      'Beside nginx, CPU µs/req paired per round over 3 rounds: base 1.50× (1.50–1.60) nginx, head 1.35× (1.35–1.50) nginx (@1000/s: base 1.50× (1.50–1.60), head 1.35× (1.35–1.50)); nginx p99 350 µs, p99.9 900 µs @1000/s (median).',
    );
  });

  it('lays out report.md below its header: rounds, summary and headline, the peer beside both builds, then each warning', () => {
    const summary = summarizeAb(rounds, abMetrics(1000));
    const lines = reportSections(rounds, summary, summarizePeers(rounds), 1000, ['nginx 1.24 from apt', 'load average up to 3.0 on 2 CPUs']);
    expect(lines.filter((l) => l.startsWith('## ') || l.startsWith('\n⚠'))).toEqual([
      '## Per round',
      '## Summary',
      '## Beside nginx (same run, same upstream)',
      '\n⚠ nginx 1.24 from apt',
      '\n⚠ load average up to 3.0 on 2 CPUs',
    ]);
    expect(lines.indexOf(headline(summary))).toBeLessThan(lines.indexOf(peerTable(summarizePeers(rounds), 1000)));
    expect(lines).toContain(nginx === undefined ? '' : peerHeadline(nginx, 1000));
  });

  it('without a peer the rounds, tables and problems are as before', () => {
    const plain = abRounds(
      runs.filter((r) => r.config !== 'nginx'),
      3,
      1000,
    );
    expect(plain.every((r) => !('peers' in r))).toBe(true);
    expect(plain.map((r) => r.order)).toEqual([abOrder(1), abOrder(2), abOrder(3)]);
    expect(summarizePeers(plain)).toEqual([]);
    expect(roundsTable(plain, 1000).split('\n')).toHaveLength(2 + 6);
    expect(problems(plain)).toEqual([]);
    expect(reportSections(plain, summarizeAb(plain, abMetrics(1000)), [], 1000, []).filter((l) => l.startsWith('## '))).toEqual(['## Per round', '## Summary']);
  });
});

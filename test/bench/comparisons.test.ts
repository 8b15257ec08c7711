// The paired ratios of issue 19 (node ÷ uws engine, server sidecar 2 ÷ 1 workers, each ÷ nginx),
// the per-thread CPU split that shows whether 2 workers both carry load, the admin reading of
// accepted connections per worker, and how the report and bench:ci print them. Fixed records
// only; no wrk, no timing.

import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminFromReadyLine, parseConnections, readConnections } from '../../bench/lib/admin.js';
import { benchComparisons, comparisonLine, engineComparisons, summarizeComparisons } from '../../bench/lib/comparisons.js';
import type { RunRecord, ThroughputRecord } from '../../bench/lib/measure.js';
import { renderMarkdown } from '../../bench/lib/report.js';
import type { BenchResults } from '../../bench/lib/results.js';
import { splitThreads, summarizeThreads } from '../../bench/lib/threads.js';
import { throughputRecord } from './wrk_fixture.js';

function tp(config: string, round: number, rps: number, cpu: number, extra: Partial<ThroughputRecord> = {}): ThroughputRecord {
  return throughputRecord(config, round, rps, cpu, 3, extra);
}

describe('paired ratios', () => {
  const runs: RunRecord[] = [
    tp('outrigger-1w', 1, 10_000, 20),
    tp('outrigger-node-1w', 1, 8_000, 26),
    tp('nginx', 1, 12_000, 10),
    tp('outrigger-1w', 2, 9_000, 25),
    tp('outrigger-node-1w', 2, 6_000, 25),
    tp('nginx', 2, 11_000, 12.5),
    // Round 3: outrigger-1w failed, so node-1w's round 3 has no partner for node ÷ uws.
    { ...tp('outrigger-1w', 3, 0, 0), error: 'wrk failed' },
    tp('outrigger-node-1w', 3, 7_000, 99),
    tp('nginx', 3, 10_000, 11),
    tp('outrigger-mtls', 1, 3_000, 80, { partsCpuUsPerReq: { client: 40, server: 40 } }),
    tp('outrigger-mtls-2w', 1, 3_300, 90, { partsCpuUsPerReq: { client: 42, server: 48 } }),
    tp('outrigger-mtls', 2, 3_000, 84, { partsCpuUsPerReq: { client: 44, server: 40 } }),
    tp('outrigger-mtls-2w', 2, 3_000, 86, { partsCpuUsPerReq: { client: 42, server: 44 } }),
    // A body variant is not the headline GET /.
    { ...tp('outrigger-node-1w', 1, 1_000, 500), variant: 'GET /64k' },
  ];
  const c = summarizeComparisons(benchComparisons(2), runs);
  const byLabel = (label: string) => c.find((x) => x.label === label);

  it('node ÷ uws engine: CPU per request paired round by round, only rounds both sides measured', () => {
    const x = byLabel('node engine ÷ uws engine');
    // rounds: 26 / 20 = 1.3, 25 / 25 = 1.0; round 3 (99) has no uws partner and is left out.
    expect(x?.cpuRatio).toEqual({ median: 1.15, min: 1, max: 1.3, n: 2 });
    expect(x?.target).toBe(1.3);
    expect(x?.withinTarget).toBe(true);
    expect(x?.aCpuUsPerReq?.n).toBe(3);
    expect(x?.rpsRatio?.median).toBeCloseTo((0.8 + 6 / 9) / 2);
  });

  it('each engine ÷ nginx', () => {
    expect(byLabel('uws engine ÷ nginx')?.cpuRatio).toEqual({ median: 2, min: 2, max: 2, n: 2 });
    expect(byLabel('node engine ÷ nginx')?.cpuRatio?.median).toBeCloseTo(2.6);
    expect(byLabel('node engine ÷ nginx')?.cpuRatio?.n).toBe(3);
  });

  it('server sidecar 2 ÷ 1 workers: the server process of each mTLS config, not the whole path', () => {
    const x = byLabel('server sidecar, 2 workers ÷ 1 worker');
    // rounds: 48 / 40 = 1.2, 44 / 40 = 1.1 → median 1.15, at the target
    expect(x?.a).toEqual({ config: 'outrigger-mtls-2w', part: 'server' });
    expect(x?.cpuRatio?.median).toBeCloseTo(1.15);
    expect(x?.withinTarget).toBe(true);
    expect(byLabel('mTLS path (both sidecars), server 2 workers ÷ 1 worker')?.cpuRatio?.median).toBeCloseTo((90 / 80 + 86 / 84) / 2);
    expect(byLabel('server sidecar, 1 worker ÷ nginx')?.cpuRatio).toEqual({ median: 3.6, min: 3.2, max: 4, n: 2 });
  });

  it('flags a ratio over its target', () => {
    const worse = summarizeComparisons(engineComparisons(), [tp('outrigger-1w', 1, 1, 20), tp('outrigger-node-1w', 1, 1, 30)]);
    expect(worse[0]?.withinTarget).toBe(false);
    expect(comparisonLine(worse[0]!)).toBe('node engine ÷ uws engine (outrigger-node-1w ÷ outrigger-1w): CPU/req 1.50×, target ≤ 1.30: NO');
  });

  it('drops comparisons with a side that was not measured (skipped config)', () => {
    const labels = c.map((x) => x.label);
    expect(labels).not.toContain('plaintext uws, 2 workers ÷ 1 worker');
    expect(
      summarizeComparisons(
        engineComparisons(),
        runs.filter((r) => r.config !== 'nginx'),
      ).map((x) => x.label),
    ).toEqual(['node engine ÷ uws engine']);
  });

  it('prints a range in bench:ci’s line when there are several rounds', () => {
    expect(comparisonLine(byLabel('node engine ÷ uws engine')!)).toBe(
      'node engine ÷ uws engine (outrigger-node-1w ÷ outrigger-1w): CPU/req 1.15× (1.00–1.30), target ≤ 1.30: yes',
    );
  });
});

describe('CPU per thread', () => {
  it('splits a process into its main thread and its other threads, busiest first, per request', () => {
    const before = new Map([
      [100, 10],
      [101, 50],
      [102, 50],
      [103, 5],
    ]);
    const after = new Map([
      [100, 12],
      [101, 150],
      [102, 140],
      [103, 5],
      [104, 3],
    ]);
    // 100 Hz: 1 tick = 10 ms; 1000 requests → 10 µs per tick per request.
    expect(splitThreads(100, before, after, 1000, 100)).toEqual({ main: 20, others: [1000, 900, 30] });
    expect(splitThreads(100, before, after, 0, 100)).toBeNull();
  });

  it('summarises per config and process, with the balance of the two busiest threads', () => {
    const runs: RunRecord[] = [
      tp('outrigger-mtls-2w', 1, 1, 1, { threadsCpuUsPerReq: { server: { main: 1, others: [100, 90, 5, 5] }, client: { main: 2, others: [200, 10] } } }),
      tp('outrigger-mtls-2w', 2, 1, 1, { threadsCpuUsPerReq: { server: { main: 1, others: [100, 70, 10] }, client: { main: 2, others: [180] } } }),
    ];
    const t = summarizeThreads(runs);
    const server = t.find((x) => x.process === 'server');
    expect(server?.busiest?.median).toBe(100);
    expect(server?.balance).toEqual({ median: 0.8, min: 0.7, max: 0.9, n: 2 });
    expect(server?.rest).toEqual({ median: 10, min: 10, max: 10, n: 2 });
    expect(t.find((x) => x.process === 'client')?.second).toEqual({ median: 5, min: 0, max: 10, n: 2 });
  });
});

describe('admin reading of accepted connections per worker', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it('takes the admin address and token file from the ready line', () => {
    const line = '{"level":30,"admin":"127.0.0.1:38953","admin_token_file":"/tmp/x/.outrigger/admin.token","msg":"ready"}';
    expect(adminFromReadyLine('server', line, '/tmp/y')).toEqual({ part: 'server', address: '127.0.0.1:38953', tokenFile: '/tmp/x/.outrigger/admin.token' });
    expect(adminFromReadyLine('s', '{"admin":"127.0.0.1:1","admin_token_file":"t/a.token","msg":"ready"}', '/d')?.tokenFile).toBe('/d/t/a.token');
    expect(adminFromReadyLine('s', '{"admin":"127.0.0.1:1","msg":"ready"}', '/d')?.tokenFile).toBeNull();
    expect(adminFromReadyLine('s', 'not json', '/d')).toBeNull();
    expect(adminFromReadyLine('s', null, '/d')).toBeNull();
  });

  it('parses GET /stats `connections` and refuses other shapes', () => {
    expect(parseConnections({ connections: [{ listener: 'inbound', accepted_by_worker: { '1': 27, '2': 25 } }] })).toEqual([
      { listener: 'inbound', accepted_by_worker: { '1': 27, '2': 25 } },
    ]);
    expect(parseConnections({ listeners: [] })).toBeNull();
    expect(parseConnections({ connections: [{ listener: 1 }] })).toBeNull();
  });

  it('sends the bearer token from the token file and reads the split', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-admin-'));
    writeFileSync(join(dir, 'admin.token'), 'sekrit\n');
    const srv = createServer((req, res) => {
      const okAuth = req.headers.authorization === 'Bearer sekrit' && req.url === '/stats';
      res.writeHead(okAuth ? 200 : 401, { 'content-type': 'application/json' });
      const workers = [
        { worker: 1, requests: 30, connections_accepted: 3 },
        { worker: 2, requests: 50, connections_accepted: 5 },
      ];
      res.end(JSON.stringify(okAuth ? { connections: [{ listener: 'inbound', accepted_by_worker: { '1': 3, '2': 5 } }], workers } : { error: 'no' }));
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const good = await readConnections('outrigger-mtls-2w', { part: 'server', address: `127.0.0.1:${port}`, tokenFile: join(dir, 'admin.token') });
    expect(good).toEqual({
      config: 'outrigger-mtls-2w',
      part: 'server',
      listeners: [{ listener: 'inbound', accepted_by_worker: { '1': 3, '2': 5 } }],
      workers: [
        { worker: 1, requests: 30, connections_accepted: 3 },
        { worker: 2, requests: 50, connections_accepted: 5 },
      ],
    });
    const noToken = await readConnections('c', { part: 'server', address: `127.0.0.1:${port}`, tokenFile: null });
    expect(noToken.listeners).toBeNull();
    expect(noToken.note).toContain('401');
  });
});

describe('report of the new tables', () => {
  const runs: RunRecord[] = [tp('outrigger-1w', 1, 10_000, 20), tp('outrigger-node-1w', 1, 8_000, 26), tp('nginx', 1, 12_000, 10)];
  const r: BenchResults = {
    schema: 'outrigger-bench/1',
    meta: {
      startedAt: 'a',
      finishedAt: 'b',
      quick: true,
      rounds: 1,
      plan: { connections: 50 },
      host: { cpus: 2, cpuModel: 'x', node: 'v20', kernel: 'k', loadavgStart: [0, 0, 0], loadavgEnd: [0, 0, 0], clkTck: 100 },
      tools: [],
      upstream: 'u',
    },
    configs: [],
    skipped: [],
    idleRssKb: {},
    runs,
    summary: [],
    comparisons: summarizeComparisons(engineComparisons(), runs),
    threads: [
      {
        config: 'outrigger-mtls-2w',
        process: 'server',
        main: null,
        busiest: { median: 100, min: 100, max: 100, n: 1 },
        second: { median: 90, min: 90, max: 90, n: 1 },
        rest: null,
        balance: { median: 0.9, min: 0.9, max: 0.9, n: 1 },
      },
    ],
    connections: [
      { config: 'outrigger-mtls-2w', part: 'server', listeners: [{ listener: 'inbound', accepted_by_worker: { '1': 27, '2': 25 } }] },
      { config: 'outrigger-mtls', part: 'client', listeners: [] },
      { config: 'outrigger-mtls', part: 'server', listeners: null, note: 'GET /stats answered 401' },
    ],
  };
  const md = renderMarkdown(r);

  it('renders the paired ratios with their targets', () => {
    expect(md).toContain('## Paired ratios');
    expect(md).toMatch(/^\| node engine ÷ uws engine \| outrigger-node-1w \| outrigger-1w \| 26\.0 \| 20\.0 \| 1\.30× \| ≤ 1\.30: yes \| 0\.80× \|$/m);
  });

  it('renders the per-worker split with shares, and why a reading is missing', () => {
    expect(md).toMatch(/^\| outrigger-mtls-2w · server \| inbound \| 1: 27 \(52 %\) · 2: 25 \(48 %\) \|$/m);
    expect(md).toMatch(/^\| outrigger-mtls · server \| – \| GET \/stats answered 401 \|$/m);
    expect(md).not.toMatch(/^\| outrigger-mtls · client \|/m);
    expect(md).toMatch(/^\| outrigger-mtls-2w · server \| – \| 100\.0 \| 90\.0 \| – \| 0\.90× \|$/m);
  });
});

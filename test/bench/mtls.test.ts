// The two-sidecar mTLS configs (outrigger-mtls, and outrigger-mtls-2w with a 2-worker server
// sidecar) and the node-engine config: their outrigger configs are valid, with the intended
// TLS shape, workers, engine and pool; the CPU is summarised per sidecar and against
// 2 × outrigger-1w (paired by round), and a real quick run's results render that comparison.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RunRecord, ThroughputRecord } from '../../bench/lib/measure.js';
import { renderHtml, renderMarkdown } from '../../bench/lib/report.js';
import type { BenchResults } from '../../bench/lib/results.js';
import { summarizeRuns } from '../../bench/lib/summary.js';
import {
  defaultTargets,
  MTLS_CLIENT_ID,
  MTLS_CLIENT_POOL_CONNECTIONS,
  MTLS_SERVER_ID,
  mtlsClientConfigYaml,
  mtlsServerConfigYaml,
  outriggerConfigYaml,
} from '../../bench/lib/targets.js';
import { throughputRecord } from './wrk_fixture.js';
import { parseConfigText, type LoadResult } from '../../src/config/load.js';

const OPTS = { version: 1, availableParallelism: 2, enableTestHooks: false };

function ok(r: LoadResult): Extract<LoadResult, { ok: true }> {
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r;
}

describe('default targets', () => {
  it('has the three listener engines, strict with pipeline_plaintext: false, N workers on uws and on strict, the mTLS shape with a server sidecar of 1 and N workers on node and on strict, the fast hop’s depth-1 and plaintext pairs, two nginx and two Node relays in series, and the Node relay', () => {
    expect(defaultTargets(2)).toEqual([
      { name: 'direct', kind: 'direct' },
      { name: 'outrigger-1w', kind: 'outrigger', workers: 1, engine: 'uws' },
      { name: 'outrigger-node-1w', kind: 'outrigger', workers: 1, engine: 'node' },
      { name: 'outrigger-strict-1w', kind: 'outrigger', workers: 1, engine: 'strict' },
      { name: 'outrigger-strict-1w-unpipelined', kind: 'outrigger', workers: 1, engine: 'strict', pipelinePlaintext: false },
      { name: 'outrigger-2w', kind: 'outrigger', workers: 2, engine: 'uws' },
      { name: 'outrigger-strict-2w', kind: 'outrigger', workers: 2, engine: 'strict' },
      { name: 'outrigger-mtls', kind: 'outrigger-mtls', workers: 1, engine: 'node' },
      { name: 'outrigger-mtls-2w', kind: 'outrigger-mtls', workers: 2, engine: 'node' },
      { name: 'outrigger-mtls-strict', kind: 'outrigger-mtls', workers: 1, engine: 'strict' },
      { name: 'outrigger-mtls-strict-depth1', kind: 'outrigger-mtls', workers: 1, engine: 'strict', pipelineDepth: 1 },
      { name: 'outrigger-pair-plain', kind: 'outrigger-pair', workers: 1, engine: 'strict' },
      { name: 'nginx-pair', kind: 'nginx-pair' },
      { name: 'node-relay-pair', kind: 'node-relay-pair' },
      { name: 'outrigger-mtls-strict-2w', kind: 'outrigger-mtls', workers: 2, engine: 'strict' },
      { name: 'outrigger-mtls-strict-h2', kind: 'outrigger-mtls', workers: 1, engine: 'strict', hop: 'http2' },
      { name: 'nginx', kind: 'nginx' },
      { name: 'haproxy', kind: 'haproxy' },
      { name: 'node-relay', kind: 'node-relay' },
    ]);
  });
});

describe('single-sidecar configs', () => {
  const base = { workers: 1, listenPort: 4003, upstreamPort: 4000, adminPort: 4004 };

  it('outrigger-1w names the uws engine (whatever outrigger’s default is)', () => {
    const s = ok(parseConfigText(outriggerConfigYaml(base), OPTS)).snapshot;
    expect(s.listeners[0]?.engine).toBe('uws');
    expect(ok(parseConfigText(outriggerConfigYaml({ ...base, engine: 'uws' }), OPTS)).snapshot.listeners[0]?.engine).toBe('uws');
    expect(s.node.workers).toBe(1);
  });

  it('outrigger-node-1w runs the same listener on the node engine', () => {
    const s = ok(parseConfigText(outriggerConfigYaml({ ...base, engine: 'node' }), OPTS)).snapshot;
    expect(s.listeners[0]).toMatchObject({ engine: 'node', tls: null, host: '127.0.0.1', port: 4003 });
    expect(s.node.workers).toBe(1);
  });

  it('outrigger-strict-1w runs the same listener on the strict engine', () => {
    const s = ok(parseConfigText(outriggerConfigYaml({ ...base, engine: 'strict' }), OPTS)).snapshot;
    expect(s.listeners[0]).toMatchObject({ engine: 'strict', tls: null, host: '127.0.0.1', port: 4003 });
  });
});

describe('sidecar configs of outrigger-mtls', () => {
  const caDir = '/tmp/outrigger bench "x"/outrigger-mtls/ca';

  /** One side of the pair compiled: one worker, its own identity, leaves from the bench CA directory. */
  function side(yaml: string, identity: string): ReturnType<typeof ok> {
    const r = ok(parseConfigText(yaml, OPTS));
    expect(r.snapshot.node.workers).toBe(1);
    expect(r.snapshot.node.identity).toBe(identity);
    expect(r.snapshot.tls).toMatchObject({ mode: 'ca', dir: caDir });
    return r;
  }

  it('server: one worker, its own identity, an mtls inbound listener in front of the upstream', () => {
    const r = side(mtlsServerConfigYaml({ caDir, listenPort: 4001, upstreamPort: 4000 }), MTLS_SERVER_ID);
    const s = r.snapshot;
    expect(s.listeners).toHaveLength(1);
    expect(s.listeners[0]?.tls).toBe('mtls');
    expect(s.listeners[0]).toMatchObject({ host: '127.0.0.1', port: 4001 });
    expect(s.clusters).toHaveLength(1);
    expect(s.clusters[0]?.tls).toBeNull();
    expect(s.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4000']);
    expect(r.admin).toMatchObject({ port: 0 });
  });

  it('server of outrigger-mtls-2w: the same listener on 2 workers', () => {
    const s = ok(parseConfigText(mtlsServerConfigYaml({ caDir, listenPort: 4001, upstreamPort: 4000, workers: 2 }), OPTS)).snapshot;
    expect(s.node.workers).toBe(2);
    expect(s.listeners[0]).toMatchObject({ tls: 'mtls', engine: 'node', port: 4001 });
  });

  it('server of outrigger-mtls-strict(-2w): the same mtls listener on the strict engine', () => {
    for (const workers of [1, 2]) {
      const s = ok(parseConfigText(mtlsServerConfigYaml({ caDir, listenPort: 4001, upstreamPort: 4000, workers, engine: 'strict' }), OPTS)).snapshot;
      expect(s.node.workers).toBe(workers);
      expect(s.listeners[0]).toMatchObject({ tls: 'mtls', engine: 'strict', port: 4001 });
    }
  });

  it('client: plaintext listener, cluster reached over mtls that must present the server identity', () => {
    const s = side(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001 }), MTLS_CLIENT_ID).snapshot;
    expect(s.listeners[0]?.tls).toBeNull();
    expect(s.listeners[0]).toMatchObject({ host: '127.0.0.1', port: 4002, engine: 'uws' });
    expect(s.clusters[0]?.tls).toEqual({ identities: [MTLS_SERVER_ID] });
    expect(s.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4001']);
  });

  it('client of outrigger-mtls-strict-h2: the same cluster over HTTP/2 (the server listener offers h2 by ALPN)', () => {
    const s = ok(parseConfigText(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001, hop: 'http2' }), OPTS)).snapshot;
    expect(s.clusters[0]).toMatchObject({ protocol: 'http2', tls: { identities: [MTLS_SERVER_ID] } });
    expect(ok(parseConfigText(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001 }), OPTS)).snapshot.clusters[0]?.protocol).toBe('http1');
    const server = ok(parseConfigText(mtlsServerConfigYaml({ caDir, listenPort: 4001, upstreamPort: 4000, engine: 'strict' }), OPTS)).snapshot;
    expect(server.listeners[0]?.protocol).toBe('auto');
  });

  it('client of outrigger-mtls-strict-depth1: the same pool with pipeline_depth 1; without pipelineDepth outrigger’s default stands', () => {
    const depth1 = ok(parseConfigText(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001, pipelineDepth: 1 }), OPTS)).snapshot;
    const byDefault = ok(parseConfigText(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001 }), OPTS)).snapshot;
    expect(depth1.clusters[0]?.pool).toMatchObject({ pipelineDepth: 1, connectionsPerWorker: MTLS_CLIENT_POOL_CONNECTIONS });
    expect(byDefault.clusters[0]?.pool.pipelineDepth).toBeGreaterThan(1);
    expect(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001 })).not.toContain('pipeline_depth');
  });

  it('outrigger-pair-plain: the same two sidecars over plaintext, no identity, no CA', () => {
    const server = ok(parseConfigText(mtlsServerConfigYaml({ caDir: null, listenPort: 4001, upstreamPort: 4000, engine: 'strict' }), OPTS)).snapshot;
    expect(server.listeners[0]).toMatchObject({ tls: null, engine: 'strict', port: 4001 });
    expect(server.node.identity).toBeNull();
    expect(server.tls).toBeNull();
    const client = ok(parseConfigText(mtlsClientConfigYaml({ caDir: null, listenPort: 4002, serverPort: 4001 }), OPTS)).snapshot;
    expect(client.clusters[0]).toMatchObject({ tls: null, protocol: 'http1' });
    expect(client.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4001']);
    expect(client.node.identity).toBeNull();
  });

  it('client: a pool that lets wrk’s 50 connections open ≥ 4 mTLS connections to the server', () => {
    const s = ok(parseConfigText(mtlsClientConfigYaml({ caDir, listenPort: 4002, serverPort: 4001 }), OPTS)).snapshot;
    expect(s.clusters[0]?.pool.connectionsPerWorker).toBe(MTLS_CLIENT_POOL_CONNECTIONS);
    expect(MTLS_CLIENT_POOL_CONNECTIONS).toBeGreaterThanOrEqual(50);
  });
});

function tp(config: string, round: number, rps: number, cpu: number, parts?: Record<string, number>): ThroughputRecord {
  return throughputRecord(config, round, rps, cpu, 2, parts !== undefined ? { partsCpuUsPerReq: parts } : {});
}

describe('summary of a two-proxy config', () => {
  const runs: RunRecord[] = [
    tp('outrigger-1w', 1, 40_000, 20),
    tp('outrigger-mtls', 1, 12_000, 80, { client: 35, server: 45 }),
    tp('outrigger-1w', 2, 30_000, 25),
    tp('outrigger-mtls', 2, 10_000, 90, { client: 40, server: 50 }),
  ];
  const s = summarizeRuns(['outrigger-1w', 'outrigger-mtls'], runs, {}, { rates: [], variants: [] });
  const mtls = s.find((x) => x.config === 'outrigger-mtls');

  it('pairs the summed CPU with 2 × the single proxy, round by round', () => {
    const m = mtls?.multiProxy;
    expect(m?.single).toBe('outrigger-1w');
    expect(m?.proxies).toBe(2);
    expect(m?.singleTimesN).toEqual({ median: 45, min: 40, max: 50, n: 2 });
    // rounds: 80 / 40 = 2.0, 90 / 50 = 1.8; 80 − 40 = 40, 90 − 50 = 40
    expect(m?.cpuRatioToSingleTimesN?.median).toBeCloseTo(1.9);
    expect(m?.cpuOverSingleTimesNUs).toEqual({ median: 40, min: 40, max: 40, n: 2 });
    expect(m?.rpsRatioToSingle?.median).toBeCloseTo((0.3 + 1 / 3) / 2);
  });

  it('splits the CPU per sidecar, each against one single proxy', () => {
    const parts = mtls?.multiProxy?.parts ?? [];
    expect(parts.map((p) => p.name)).toEqual(['client', 'server']);
    expect(parts[0]?.cpuUsPerReq).toEqual({ median: 37.5, min: 35, max: 40, n: 2 });
    expect(parts[1]?.cpuRatioToSingle).toEqual({ median: 2.125, min: 2, max: 2.25, n: 2 });
  });

  it('adds nothing to single-process configs', () => {
    expect(s.find((x) => x.config === 'outrigger-1w')).not.toHaveProperty('multiProxy');
  });
});

describe('a real quick run with outrigger-mtls (fixtures/results-quick-mtls.json)', () => {
  const r = JSON.parse(readFileSync(new URL('./fixtures/results-quick-mtls.json', import.meta.url), 'utf8')) as BenchResults;

  it('measured outrigger-mtls (not skipped) without errors', () => {
    expect(r.skipped.map((x) => x.name)).not.toContain('outrigger-mtls');
    const s = r.summary.find((x) => x.config === 'outrigger-mtls');
    expect(s?.errors).toBe(0);
    expect(s?.non2xx).toBe(0);
    expect(s?.failedRuns).toBe(0);
    expect(s?.rps?.median).toBeGreaterThan(0);
  });

  it('accounts both sidecars: the per-sidecar CPU adds up to the config’s CPU in every round', () => {
    const t = r.runs.filter((x): x is ThroughputRecord => x.kind === 'throughput' && x.config === 'outrigger-mtls' && x.variant === 'GET /');
    expect(t.length).toBe(r.meta.rounds);
    for (const x of t) {
      const parts = Object.values(x.partsCpuUsPerReq ?? {});
      expect(parts).toHaveLength(2);
      const sum = parts.reduce<number>((a, b) => a + (b ?? 0), 0);
      // Sampled separately, a tick apart at most per tree.
      expect(Math.abs(sum - (x.cpuUsPerReq ?? 0))).toBeLessThan(0.05 * (x.cpuUsPerReq ?? 0) + 1);
    }
  });

  it('renders the two-sidecar table with both sidecars and 2 × outrigger-1w', () => {
    const md = renderMarkdown(r);
    expect(md).toContain('## Two-sidecar mTLS path');
    expect(md).toMatch(/^\| outrigger-mtls \(client \+ server\) \|/m);
    expect(md).toMatch(/^\| outrigger-mtls · client sidecar/m);
    expect(md).toMatch(/^\| outrigger-mtls · server sidecar \(its inbound listener/m);
    expect(md).toMatch(/^\| 2 × outrigger-1w \|/m);
    expect(renderHtml(r)).toContain('<h2>Two-sidecar mTLS path</h2>');
  });
});

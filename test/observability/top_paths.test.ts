// The busiest-paths table behind `outrigger top` (stats/top_paths.ts): its bounds on the worker and
// on the main thread, that every request is counted under a path or as untracked, and what `top`
// and `stat` make of two samples (rates, sort keys, the rendered screen).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { renderStat, statReport } from '../../src/cli/stat.js';
import { renderTop, sortRows, topFrame, type TopRow } from '../../src/cli/top.js';
import type { StatsJson } from '../../src/stats/aggregate.js';
import { MAX_PATH_CHARS, MAX_TRACKED_PATHS, MAX_WORKER_PATHS, PathCounter, PathTotals, type PathJson, type PathsDelta } from '../../src/stats/top_paths.js';

const route = {};

function record(c: PathCounter, path: string, status = 200, micros = 1000): void {
  c.record(route, 'main', 'all', 'GET', path, status, micros);
}

describe('PathCounter (worker side)', () => {
  it('counts at most MAX_WORKER_PATHS paths at once; the rest is untracked', () => {
    const c = new PathCounter();
    for (let i = 0; i < MAX_WORKER_PATHS + 10; i++) record(c, `/p/${i}`);
    record(c, '/p/0', 503);
    const d = c.take()!;
    expect(d.paths).toHaveLength(MAX_WORKER_PATHS);
    expect(d.untracked).toBe(10);
    expect(d.paths.find((p) => p.path === '/p/0')).toEqual({
      listener: 'main',
      route: 'all',
      method: 'GET',
      path: '/p/0',
      requests: 2,
      failures: 1,
      durationSumMicros: 2000,
    });
  });

  it('a path idle for a whole interval gives its cell up; a busy one keeps it', () => {
    const c = new PathCounter();
    for (let i = 0; i < MAX_WORKER_PATHS; i++) record(c, `/scan/${i}`);
    c.take();
    record(c, '/busy');
    expect(c.take()).toEqual({ paths: [], untracked: 1 }); // the scan's cells were still held
    record(c, '/busy'); // every scan cell went idle for an interval: room again
    record(c, '/busy');
    expect(c.take()!.paths).toEqual([expect.objectContaining({ path: '/busy', requests: 2 })]);
    expect(c.take()).toBeNull();
  });

  it('a client inventing methods cannot make the maps grow: they exist only for held cells', () => {
    // The heap after a full GC, before and after 200 000 requests with methods never seen before
    // while every cell is taken (each used to leave an empty per-method map behind: ~40 MB).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const c = new PathCounter();
    for (let i = 0; i < MAX_WORKER_PATHS; i++) record(c, `/p/${i}`);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) c.record(route, 'main', 'all', `M${i}`, '/x', 200, 1);
    gc();
    const grownBytes = process.memoryUsage().heapUsed - before;
    expect(grownBytes).toBeLessThan(4 * 1024 * 1024);
    expect(c.take()!.untracked).toBe(200_000);
  });

  it('long paths are counted under their first MAX_PATH_CHARS characters', () => {
    const c = new PathCounter();
    record(c, `/${'a'.repeat(500)}`);
    record(c, `/${'a'.repeat(600)}`);
    const d = c.take()!;
    expect(d.paths).toHaveLength(1);
    expect(d.paths[0]!.path).toHaveLength(MAX_PATH_CHARS);
    expect(d.paths[0]!.requests).toBe(2);
  });
});

function delta(path: string, requests: number): PathsDelta {
  return { paths: [{ listener: 'main', route: 'all', method: 'GET', path, requests, failures: 0, durationSumMicros: requests * 1000 }], untracked: 0 };
}

describe('PathTotals (main side)', () => {
  it('keeps at most MAX_TRACKED_PATHS; the idlest makes room, never one that grew in the last 2 s; nothing is lost', () => {
    const t = new PathTotals();
    for (let i = 0; i < MAX_TRACKED_PATHS; i++) t.add(delta(`/old/${i}`, 5), 1000);
    t.add(delta('/fresh', 7), 2000); // every entry grew within 2 s: the newcomer is untracked
    let j = t.json();
    expect(j.paths).toHaveLength(MAX_TRACKED_PATHS);
    expect(j.untracked_requests).toBe(7);
    t.add(delta('/old/3', 1), 3500);
    t.add(delta('/fresh', 7), 4000); // now the idlest (/old/0, 3 s idle) gives way
    j = t.json();
    expect(j.paths).toHaveLength(MAX_TRACKED_PATHS);
    expect(j.paths[0]).toEqual({
      listener: 'main',
      route: 'all',
      method: 'GET',
      path: '/fresh',
      requests: 7,
      success_count: 7,
      failure_count: 0,
      duration_sum_ms: 7,
    });
    expect(j.paths.some((p) => p.path === '/old/0')).toBe(false);
    expect(j.paths.some((p) => p.path === '/old/3')).toBe(true);
    const counted = j.paths.reduce((n, p) => n + p.requests, 0) + j.untracked_requests;
    expect(counted).toBe(MAX_TRACKED_PATHS * 5 + 1 + 7 + 7);
  });
});

function sample(paths: PathJson[], atMs: number, untracked = 0): { stats: StatsJson; atMs: number } {
  return { stats: { paths: { max_tracked: MAX_TRACKED_PATHS, untracked_requests: untracked, paths } } as unknown as StatsJson, atMs };
}

function path(p: string, requests: number, success: number, sumMs: number): PathJson {
  return {
    listener: 'main',
    route: 'all',
    method: 'GET',
    path: p,
    requests,
    success_count: success,
    failure_count: requests - success,
    duration_sum_ms: sumMs,
  };
}

describe('outrigger top: frames and sorting', () => {
  it('rates are the growth between two samples; a path new (or re-entered) since counts from zero; idle paths are left out', () => {
    const prev = sample([path('/a', 100, 100, 100), path('/b', 50, 40, 500), path('/idle', 9, 9, 9), path('/again', 80, 80, 80)], 0, 3);
    const cur = sample(
      [path('/a', 300, 290, 300), path('/b', 60, 50, 1500), path('/idle', 9, 9, 9), path('/new', 4, 4, 40), path('/again', 5, 5, 5)],
      2000,
      13,
    );
    const f = topFrame(prev, cur);
    expect(f.interval_s).toBe(2);
    expect(f.untracked_rps).toBe(5);
    const row = (p: string): TopRow | undefined => f.rows.find((r) => r.path === p);
    expect(row('/a')).toMatchObject({ rps: 100, success_rate: 0.95, mean_ms: 1, requests: 300 });
    expect(row('/b')).toMatchObject({ rps: 5, success_rate: 1, mean_ms: 100 });
    expect(row('/new')).toMatchObject({ rps: 2, mean_ms: 10 });
    expect(row('/again')).toMatchObject({ rps: 2.5 });
    expect(row('/idle')).toBeUndefined();
    const order = (k: Parameters<typeof sortRows>[1]): string[] => sortRows(f.rows, k).map((r) => r.path);
    expect(order('rps')).toEqual(['/a', '/b', '/again', '/new']);
    expect(order('success')).toEqual(['/a', '/b', '/again', '/new']);
    expect(order('latency')).toEqual(['/b', '/new', '/a', '/again']);
    expect(order('path')).toEqual(['/a', '/again', '/b', '/new']);
  });

  it('renders the rows that fit the terminal, paths cut to the width', () => {
    const prev = sample([], 0);
    const cur = sample([path('/a', 10, 10, 10), path(`/long/${'x'.repeat(200)}`, 5, 4, 50), path('/c', 1, 1, 1)], 1000, 2);
    const screen = renderTop(topFrame(prev, cur), { admin: 'http://127.0.0.1:15000', sort: 'rps', width: 100, height: 9 });
    expect(screen).toMatchInlineSnapshot(`
      "outrigger top http://127.0.0.1:15000  sorted by rps  (keys: r rate, s success, l latency, p path, q

      3 paths, 18.0 req/s over 1.0 s

      METHOD   PATH                                ROUTE               RPS   SUCCESS       MEAN      COUNT
      GET      /a                                  all                10.0   100.00%     1.00ms         10
      GET      /long/xxxxxxxxxxxxxxxxxxxxxxxxxxx…  all                 5.0    80.00%     10.0ms          5
      GET      /c                                  all                 1.0   100.00%     1.00ms          1
               (other paths)                                           2.0"
    `);
    for (const line of screen.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });
});

describe('outrigger top: what clients sent is shown, never obeyed', () => {
  it('control characters in a path (an escape sequence) show as ?', () => {
    const cur = sample([path('/\u001b[2J\u001b]0;owned\u0007/x', 3, 3, 3)], 1000);
    const screen = renderTop(topFrame(sample([], 0), cur), { admin: 'http://127.0.0.1:15000', sort: 'rps', width: 100, height: 9 });
    // eslint-disable-next-line no-control-regex -- no control character but the newlines
    expect(screen).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(screen).toContain('/?[2J?]0;owned?/x');
  });
});

describe('outrigger stat: the table', () => {
  it('aligns a row per route and per cluster', () => {
    const traffic = (requests: number, success: number, p50: number | null, p99: number | null): Record<string, unknown> => ({
      requests,
      success_count: success,
      failure_count: requests - success,
      p50_response_latency: p50,
      p99_response_latency: p99,
    });
    const at = (routes: number, atMs: number): { stats: StatsJson; atMs: number } => ({
      stats: {
        routes: [
          { listener: 'main', name: 'api', ...traffic(routes, routes - 1, 0.412, 12.5) },
          { listener: 'main', name: 'static-files', ...traffic(0, 0, null, null) },
        ],
        clusters: [{ name: 'app', ...traffic(routes, routes - 1, 0.5, 1500), active_requests: 3 }],
      } as unknown as StatsJson,
      atMs,
    });
    expect(renderStat(statReport('http://127.0.0.1:15000', at(100, 0), at(1100, 1000)))).toMatchInlineSnapshot(`
      "http://127.0.0.1:15000: rates over 1.0 s, latency since start

      LISTENER  ROUTE         REQUESTS     RPS  SUCCESS     P50     P99
      main      api               1100  1000.0  100.00%  0.41ms  12.5ms
      main      static-files         0     0.0        -       -       -

      CLUSTER  REQUESTS     RPS  SUCCESS     P50    P99  ACTIVE
      app          1100  1000.0  100.00%  0.50ms  1.50s       3
      "
    `);
  });
});

// `outrigger stat` against a real sidecar (two workers) in front of a real upstream: its --json
// numbers agree with GET /stats (counts exactly, once the load has stopped; rates only when there
// is traffic in the interval), the rendered table (volatile numbers normalised) as a snapshot,
// --watch stops cleanly on SIGINT, and the errors (admin unreachable, refused token, no token
// file) are one line with their exit codes.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatReport } from '../../src/cli/stat.js';
import type { PathsJson } from '../../src/stats/top_paths.js';
import {
  adminCall,
  closeAll,
  config,
  deadPort,
  eventually,
  sendMany,
  spawnCli,
  startLoad,
  startSidecar,
  startUpstream,
  tempDir,
  type Sidecar,
} from '../helpers/sidecar.js';

let sc: Sidecar;
let adminAddress: string;

/** 200 from the app, except under /fail/: 500. */
async function startFailingApp(): Promise<string> {
  const app = await startUpstream((req, res) => {
    res.statusCode = req.url?.startsWith('/fail/') === true ? 500 : 200;
    res.end(`app ${req.url ?? ''}`);
  });
  return app.address;
}

async function stats(): Promise<{
  listeners: Array<{ name: string; requests: number }>;
  routes: Array<Record<string, unknown>>;
  clusters: Array<Record<string, unknown>>;
}> {
  const a = await adminCall(sc, 'GET', '/stats');
  expect(a.status).toBe(200);
  return a.json;
}

async function statJson(args: string[] = []): Promise<StatReport> {
  const p = spawnCli(['stat', '--admin', adminAddress, '--token-file', sc.tokenFile, '--json', ...args]);
  expect(await p.exit()).toBe(0);
  expect(p.stderr()).toBe('');
  return JSON.parse(p.stdout()) as StatReport;
}

beforeAll(async () => {
  const app = await startFailingApp();
  sc = await startSidecar(
    config(
      [
        { name: 'api', match: { path_prefix: '/api/' }, cluster: 'app' },
        { name: 'all', match: { path_prefix: '/' }, cluster: 'app' },
      ],
      [{ name: 'app', endpoints: [{ address: app }] }],
      { node: { workers: 2 } },
    ),
  );
  adminAddress = sc.admin.replace(/^http:\/\//, '');
  // 60 successes on route api, 20 failures (500) on route all.
  const answers = await sendMany((i) => (i < 60 ? sc.url(`/api/item/${i}`) : sc.url(`/fail/${i}`)), 80, 8);
  expect(answers.filter((a) => a.status === 200)).toHaveLength(60);
  await eventually(async () => ((await stats()).listeners.find((l) => l.name === 'main')?.requests === 80 ? true : undefined), 'the 80 requests in /stats');
}, 60_000);
afterAll(closeAll);

describe('outrigger stat', () => {
  it('--json: counts per route and cluster equal GET /stats once the load stopped; nothing in the interval', async () => {
    const report = await statJson();
    const s = await stats();
    expect(report.admin).toBe(sc.admin);
    expect(report.interval_s).toBeGreaterThan(0);
    const route = (name: string) => report.routes.find((r) => r.route === name);
    expect(route('api')).toMatchObject({
      listener: 'main',
      requests: 60,
      success_count: 60,
      failure_count: 0,
      interval_requests: 0,
      rps: 0,
      success_rate: null,
    });
    expect(route('all')).toMatchObject({ listener: 'main', requests: 20, success_count: 0, failure_count: 20, interval_requests: 0, rps: 0 });
    expect(report.clusters).toEqual([
      expect.objectContaining({ cluster: 'app', requests: 80, success_count: 60, failure_count: 20, interval_failures: 0, active_requests: 0 }),
    ]);
    for (const r of report.routes) {
      const fromStats = s.routes.find((x) => x['name'] === r.route)!;
      expect(r.requests).toBe(fromStats['requests']);
      expect(r.p50_ms).toBe(fromStats['p50_response_latency']);
      expect(r.p99_ms).toBe(fromStats['p99_response_latency']);
    }
    expect(report.clusters[0]!.p99_ms).toBe(s.clusters[0]!['p99_response_latency']);
  });

  it('GET /stats lists the paths (what top shows): every request under its path or as untracked', async () => {
    const s = (await adminCall(sc, 'GET', '/stats')).json as { paths: PathsJson };
    const counted = s.paths.paths.reduce((n, p) => n + p.requests, 0) + s.paths.untracked_requests;
    expect(counted).toBe(80);
    const failing = s.paths.paths.filter((p) => p.path.startsWith('/fail/'));
    for (const p of failing) expect(p).toMatchObject({ listener: 'main', route: 'all', method: 'GET', requests: 1, success_count: 0, failure_count: 1 });
    expect(s.paths.paths.filter((p) => p.path.startsWith('/api/item/')).every((p) => p.route === 'api' && p.success_count === 1)).toBe(true);
  });

  it('--json under load: the interval counts and rate are positive and within what /stats counts', async () => {
    const before = (await stats()).routes.find((r) => r['name'] === 'all')!['requests'] as number;
    const load = startLoad(sc.port(), { connections: 2 });
    try {
      await eventually(async () => {
        const r = (await statJson()).routes.find((x) => x.route === 'all')!;
        return r.interval_requests > 0 ? r : undefined;
      }, 'stat sees the load in its interval').then((r) => {
        expect(r.rps).toBeGreaterThan(0);
        expect(r.success_rate).toBe(1);
        expect(r.interval_success).toBe(r.interval_requests);
        expect(r.requests).toBeGreaterThan(before);
        expect(r.requests - r.interval_requests).toBeGreaterThanOrEqual(before);
      });
    } finally {
      await load.stop();
    }
    // Every request of the load counted, so the next test starts from a quiet, settled sidecar.
    const sent = load.stats.sent;
    await eventually(
      async () => ((await stats()).routes.find((r) => r['name'] === 'all')!['requests'] === before + sent ? true : undefined),
      'the load counted',
    );
  });

  it('renders a table per route and per cluster (latencies and the address normalised)', async () => {
    const p = spawnCli(['stat', '--admin', adminAddress, '--token-file', sc.tokenFile]);
    expect(await p.exit()).toBe(0);
    const text = p.stdout();
    // One column per 2+ spaces; latencies, the address and the counts of the load test vary from run to run.
    const normalised = text
      .replace(sc.admin, 'http://ADMIN')
      .split('\n')
      .map((line) =>
        line
          .split(/ {2,}/)
          .map((cell) => cell.replace(/^\d+(\.\d+)?(ms|s)$/, '<ms>'))
          .join(' | '),
      )
      .join('\n')
      .replace(/^(main \| all \| )\d+/m, '$1<n>')
      .replace(/^(app \| )\d+/m, '$1<n>')
      .replace(/over \d+\.\d s/, 'over <s> s');
    expect(normalised).toMatchInlineSnapshot(`
      "http://ADMIN: rates over <s> s, latency since start

      LISTENER | ROUTE | REQUESTS | RPS | SUCCESS | P50 | P99
      main | all | <n> | 0.0 | - | <ms> | <ms>
      main | api | 60 | 0.0 | - | <ms> | <ms>

      CLUSTER | REQUESTS | RPS | SUCCESS | P50 | P99 | ACTIVE
      app | <n> | 0.0 | - | <ms> | <ms> | 0
      "
    `);
  });

  it('--watch prints a report a second until SIGINT, then exits 0', async () => {
    const p = spawnCli(['stat', '--admin', adminAddress, '--token-file', sc.tokenFile, '--json', '--watch']);
    await p.waitForLog(() => p.entries().length >= 2, 15_000);
    for (const e of p.entries()) expect(e).toMatchObject({ admin: sc.admin, routes: expect.any(Array), clusters: expect.any(Array) });
    p.child.kill('SIGINT');
    expect(await p.exit()).toBe(0);
    expect(p.stderr()).toBe('');
  });

  it('an unreachable admin API: one line, exit 1', async () => {
    const port = await deadPort();
    const p = spawnCli(['stat', '--admin', `127.0.0.1:${port}`, '--token-file', sc.tokenFile]);
    expect(await p.exit()).toBe(1);
    expect(p.stderr()).toBe(`outrigger stat: cannot reach the admin API at http://127.0.0.1:${port}: ECONNREFUSED\n`);
    expect(p.stdout()).toBe('');
  });

  it('a refused token (401): one line, exit 2', async () => {
    const wrong = path.join(tempDir(), 'wrong.token');
    writeFileSync(wrong, 'not-the-token\n', { mode: 0o600 });
    const p = spawnCli(['stat', '--admin', adminAddress, '--token-file', wrong]);
    expect(await p.exit()).toBe(2);
    expect(p.stderr()).toBe(`outrigger stat: ${sc.admin}/stats: 401: the admin API refused the token (check --token-file)\n`);
  });

  it('a missing token file and bad arguments: one line, exit 2', async () => {
    const missing = path.join(tempDir(), 'none.token');
    const p = spawnCli(['stat', '--admin', adminAddress, '--token-file', missing]);
    expect(await p.exit()).toBe(2);
    expect(p.stderr()).toMatch(new RegExp(`^outrigger stat: cannot read the token file ${missing}: ENOENT .*\\n$`));
    const bad = spawnCli(['stat', '--admin', 'nowhere']);
    expect(await bad.exit()).toBe(2);
    expect(bad.stderr()).toBe('outrigger stat: --admin must be HOST:PORT, not "nowhere"\n');
  });
});

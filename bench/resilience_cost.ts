// CPU cost per request of the resilience features (issue 7): one 1-worker sidecar, two routes
// to the same fast upstream, side by side in one run:
//   /bare/       → cluster `bare`: no retries, no outlier detection (the always-on default
//                  circuit breaker, max_requests 1024, is the only feature left)
//   /resilient/  → cluster `resilient`: retries {attempts 2, on [5xx, connect-failure, reset],
//                  per_try_timeout_ms 1000}, retry budget, circuit breaker max_requests 512 and
//                  max_pending 512, outlier detection (consecutive 5xx / gateway failure 5)
// For each round and route: /proc/<sidecar>/stat utime+stime before and after a `wrk -t1 -c50
// -d5s` run; µs of sidecar CPU per completed request. Routes alternate for `rounds` rounds;
// the medians are the headline. Not part of npm test.
//
// Usage: npx tsc -p tsconfig.json && node dist/bench/resilience_cost.js [--rounds 3] [--duration 5] [--connections 50]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type Started } from './lib/proc.js';
import { clockTicksPerSecond, readProcStat } from './lib/procfs.js';
import { runWrk } from './lib/wrk.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const UPSTREAM = path.join(ROOT, 'dist', 'bench', 'upstream', 'server.js');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

const rounds = arg('rounds', 3);
const durationS = arg('duration', 5);
const connections = arg('connections', 50);

function cpuTicks(pid: number): number {
  const st = readProcStat(pid);
  if (st === null) throw new Error(`cannot read /proc/${pid}/stat`);
  return st.utime + st.stime;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Sample {
  route: string;
  round: number;
  requests: number;
  rps: number;
  errors: number;
  cpuUs: number;
  usPerRequest: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'outrigger-resilience-cost-'));
  const started: Started[] = [];
  try {
    const upstream = await startProcess({ name: 'upstream', cmd: process.execPath, args: [UPSTREAM, '0'], readyLine: /"listening"/ });
    started.push(upstream);
    const upPort = (JSON.parse(upstream.readyLineText!) as { port: number }).port;
    const address = `127.0.0.1:${upPort}`;
    const cfg = {
      node: { workers: 1, drain_timeout_ms: 1000 },
      admin: { address: '127.0.0.1:0' },
      listeners: [
        {
          name: 'main',
          address: '127.0.0.1:0',
          routes: [
            { match: { path_prefix: '/bare/' }, cluster: 'bare' },
            {
              match: { path_prefix: '/resilient/' },
              cluster: 'resilient',
              retries: { attempts: 2, on: ['5xx', 'connect-failure', 'reset'], per_try_timeout_ms: 1000 },
            },
          ],
        },
      ],
      clusters: [
        { name: 'bare', endpoints: [{ address }] },
        {
          name: 'resilient',
          endpoints: [{ address }],
          circuit_breaker: { max_requests: 512, max_pending: 512 },
          retry_budget: { percent: 20, min_retries_per_second: 10, min_concurrent: 3 },
          outlier_detection: { consecutive_5xx: 5, consecutive_gateway_failure: 5, interval_ms: 10_000, base_ejection_ms: 30_000 },
        },
      ],
    };
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    const sidecar = await startProcess({ name: 'sidecar', cmd: process.execPath, args: [CLI, 'run', '-c', file], readyLine: /"msg":"ready"/ });
    started.push(sidecar);
    const ready = JSON.parse(sidecar.readyLineText!) as { listeners: Array<{ address: string }> };
    const listen = ready.listeners[0]!.address;
    const base = `http://${listen}`;

    const clk = clockTicksPerSecond();
    const routes = ['bare', 'resilient'] as const;
    // Warm-up (JIT, pools) on both routes; not measured.
    for (const r of routes) {
      await runWrk({ url: `${base}/${r}/`, threads: 1, connections, durationS: 2, scriptDir: dir });
    }
    const samples: Sample[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Alternate which route goes first so drift does not favour one.
      const order = round % 2 === 1 ? routes : [...routes].reverse();
      for (const route of order) {
        const before = cpuTicks(sidecar.pid);
        const w = await runWrk({ url: `${base}/${route}/`, threads: 1, connections, durationS, scriptDir: dir });
        const after = cpuTicks(sidecar.pid);
        const cpuUs = ((after - before) * 1e6) / clk;
        const errors = w.errors.connect + w.errors.read + w.errors.write + w.errors.status + w.errors.timeout;
        const s: Sample = { route, round, requests: w.requests, rps: w.requestsPerSec, errors, cpuUs, usPerRequest: cpuUs / w.requests };
        samples.push(s);
        process.stdout.write(
          `round ${round} ${route.padEnd(9)} ${String(w.requests).padStart(8)} req  ${w.requestsPerSec.toFixed(0).padStart(6)} req/s  ` +
            `errors ${errors}  cpu ${(cpuUs / 1e6).toFixed(2)} s  ${s.usPerRequest.toFixed(2)} µs/req\n`,
        );
      }
    }
    const med = (r: string, f: (s: Sample) => number): number => median(samples.filter((s) => s.route === r).map(f));
    const bare = med('bare', (s) => s.usPerRequest);
    const res = med('resilient', (s) => s.usPerRequest);
    process.stdout.write(
      `\nmedian over ${rounds} rounds (wrk -t1 -c${connections} -d${durationS}s, 1 worker, CLK_TCK ${clk}):\n` +
        `  bare       ${bare.toFixed(2)} µs/req  ${med('bare', (s) => s.rps).toFixed(0)} req/s\n` +
        `  resilient  ${res.toFixed(2)} µs/req  ${med('resilient', (s) => s.rps).toFixed(0)} req/s\n` +
        `  difference ${(res - bare).toFixed(2)} µs/req (${(((res - bare) / bare) * 100).toFixed(1)}%)\n`,
    );
    process.stdout.write(`${JSON.stringify({ bench: 'resilience_cost', rounds, durationS, connections, samples, median: { bare, resilient: res } })}\n`);
  } finally {
    for (const p of started.reverse()) await p.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`resilience_cost: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});

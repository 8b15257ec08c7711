// Where a proxy's CPU per request goes, side by side in one run: user vs kernel time, context
// switches (slept vs preempted) and, for the Node proxies, bytes allocated on the JS heap per
// request. Same hello-world upstream behind nginx (1 worker), outrigger (1 worker, strict and uws
// engines, default config, which pipelines GETs to the upstream on 127.0.0.1; and strict with
// pool.pipeline_plaintext: false, one request per connection at a time) and the uWS + outrigger-client floor (own_client_proxy.ts); wrk -t1
// -c50 saturated and at fixed rates, interleaved rounds, medians. This is the profile behind
// issue 13's CPU target (bench/README, "The CPU target: what is left").
// Usage: node dist/bench/cpu_split.js [--rounds N] [--seconds S] [--rates 0,15000,3000] [--alloc-rate R|0] [--upstream uws|node]
//   rate 0 = saturated; --alloc-rate 0 skips the allocation pass (it restarts the Node proxies with --trace-gc-nvp).
//   --upstream node: the upstream is Node's http server (bench/upstream/node_server.ts) instead of uWS.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { nginxCommand } from './lib/peers.js';
import { clockTicksPerSecond, processContextSwitches, processTree, readProcStat } from './lib/procfs.js';
import { freePort, sleep, startProcess, type Started } from './lib/proc.js';
import { median } from './lib/stats.js';
import { outriggerCli, outriggerConfigYaml, startUpstream } from './lib/targets.js';
import { runWrk, totalWrkErrors, type WrkResult } from './lib/wrk.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    rates: { type: 'string' },
    'alloc-rate': { type: 'string' },
    upstream: { type: 'string' },
  },
});
const upstreamKind: 'uws' | 'node' = values.upstream === 'node' ? 'node' : 'uws';
if (values.upstream !== undefined && values.upstream !== upstreamKind) {
  process.stderr.write('cpu_split: --upstream is uws (bench/upstream/server.ts, the default) or node (node_server.ts)\n');
  process.exit(2);
}
const rounds = Number(values.rounds ?? 3);
const seconds = Number(values.seconds ?? 4);
const rates = (values.rates ?? '0,15000,3000').split(',').map(Number);
const allocRate = Number(values['alloc-rate'] ?? 15000);
if (!(rounds >= 1) || !(seconds >= 1) || rates.some((r) => !(r >= 0)) || !(allocRate >= 0)) {
  process.stderr.write('cpu_split: --rounds and --seconds must be ≥ 1, rates ≥ 0\n');
  process.exit(2);
}
const dir = mkdtempSync(path.join(tmpdir(), 'outrigger-cpu-split-'));

/** The run's request count; a run that failed (no answers, or errors) stops the bench with the proxy's name, not a table of NaN. */
function answered(name: string, res: WrkResult): number {
  const errors = totalWrkErrors(res);
  if (res.requests === 0 || errors > 0) throw new Error(`${name}: ${res.requests} requests, ${errors} errors (is it serving?)`);
  return res.requests;
}

interface Target {
  readonly name: string;
  readonly node: boolean;
  start(extraNodeArgs: readonly string[]): Promise<{ port: number; proc: Started }>;
}

/** user and system ticks, voluntary and involuntary switches of a process tree (all threads). */
interface Counters {
  user: number;
  sys: number;
  vol: number;
  invol: number;
}

function counters(pid: number): Counters {
  const c: Counters = { user: 0, sys: 0, vol: 0, invol: 0 };
  for (const p of processTree(pid)) {
    const st = readProcStat(p);
    if (st === null) continue;
    c.user += st.utime;
    c.sys += st.stime;
    const cs = processContextSwitches(p);
    c.vol += cs.voluntary;
    c.invol += cs.involuntary;
  }
  return c;
}

/** outrigger with 1 worker on `engine`, default config; `unpipelined`: with pool.pipeline_plaintext: false. */
function outriggerTarget(engine: 'strict' | 'uws', upPort: number, unpipelined = false): Target {
  const name = `outrigger-${engine}${unpipelined ? '-unpipelined' : ''}`;
  return {
    name,
    node: true,
    async start(extra) {
      const port = await freePort();
      const cfg = path.join(dir, `${name}-${port}.yaml`);
      writeFileSync(
        cfg,
        outriggerConfigYaml({ workers: 1, engine, listenPort: port, upstreamPort: upPort, adminPort: 0, ...(unpipelined ? { pipelinePlaintext: false } : {}) }),
      );
      const proc = await startProcess({
        name,
        cmd: process.execPath,
        args: [...extra, outriggerCli(root), 'run', '-c', cfg],
        readyLine: /"msg":"ready"/,
      });
      return { port, proc };
    },
  };
}

/** Sums V8's `allocated=` (bytes allocated since the previous GC) of --trace-gc-nvp lines while `counting`. */
class AllocCounter {
  counting = false;
  bytes = 0;
  gcs = 0;
  private partial = '';
  constructor(proc: Started) {
    proc.child.stdout?.on('data', (chunk: string | Buffer) => {
      const lines = (this.partial + chunk.toString()).split('\n');
      this.partial = lines.pop() ?? '';
      if (!this.counting) return;
      for (const line of lines) {
        const m = /\ballocated=(\d+)/.exec(line);
        if (m === null) continue;
        this.bytes += Number(m[1]);
        this.gcs++;
      }
    });
  }
}

async function main(): Promise<void> {
  const hz = clockTicksPerSecond();
  const { proc: upstream, port: upPort } = await startUpstream(root, upstreamKind);
  const targets: Target[] = [
    {
      name: 'nginx',
      node: false,
      async start() {
        const port = await freePort();
        const ng = nginxCommand({ nginxPath: '/usr/sbin/nginx', dir: mkdtempSync(path.join(dir, 'nginx-')), listenPort: port, upstreamPort: upPort });
        return { port, proc: await startProcess({ name: 'nginx', cmd: ng.cmd, args: ng.args, readyPort: port }) };
      },
    },
    outriggerTarget('strict', upPort),
    outriggerTarget('strict', upPort, true),
    outriggerTarget('uws', upPort),
    {
      name: 'uws+own-client',
      node: true,
      async start(extra) {
        const port = await freePort();
        const proc = await startProcess({
          name: 'own',
          cmd: process.execPath,
          args: [...extra, path.join(here, 'own_client_proxy.js'), String(port), String(upPort)],
          readyPort: port,
        });
        return { port, proc };
      },
    },
  ];

  const running = new Map<string, { port: number; proc: Started }>();
  for (const t of targets) running.set(t.name, await t.start([]));
  // key `${rate} ${name}` → per-round figures
  const rows = new Map<string, Array<{ rps: number; user: number; sys: number; vol: number; invol: number }>>();
  for (let r = 0; r < rounds; r++) {
    for (const rate of rates) {
      const order = r % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const { port, proc } = running.get(t.name)!;
        const url = `http://127.0.0.1:${port}/`;
        await runWrk({ url, connections: 50, durationS: 1, threads: 1, scriptDir: dir, ...(rate > 0 ? { rate } : {}) }); // warm-up
        const before = counters(proc.pid);
        const res = await runWrk({ url, connections: 50, durationS: seconds, threads: 1, scriptDir: dir, ...(rate > 0 ? { rate } : {}) });
        const after = counters(proc.pid);
        const n = answered(t.name, res);
        const row = {
          rps: res.requestsPerSec,
          user: ((after.user - before.user) * 1e6) / hz / n,
          sys: ((after.sys - before.sys) * 1e6) / hz / n,
          vol: (after.vol - before.vol) / n,
          invol: (after.invol - before.invol) / n,
        };
        const key = `${rate} ${t.name}`;
        (rows.get(key) ?? rows.set(key, []).get(key)!).push(row);
        process.stderr.write(
          `round ${r + 1} ${rate === 0 ? 'saturated' : `${rate}/s`} ${t.name}: ${row.rps.toFixed(0)} req/s, user ${row.user.toFixed(2)} sys ${row.sys.toFixed(2)} µs/req, switches ${row.vol.toFixed(3)} + ${row.invol.toFixed(3)}\n`,
        );
      }
    }
  }
  for (const { proc } of running.values()) await proc.stop();

  const out: string[] = [];
  for (const rate of rates) {
    out.push(
      `\n### ${rate === 0 ? 'saturated (wrk -c50)' : `fixed ${rate} req/s (wrk -c50, paced)`}, medians of ${rounds} rounds\n`,
      '| proxy | req/s | user µs/req | kernel µs/req | total | × nginx | slept (voluntary switches) /req | preempted (involuntary) /req |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    const total = (name: string): number => median(rows.get(`${rate} ${name}`)!.map((x) => x.user + x.sys));
    const ng = total('nginx');
    for (const t of targets) {
      const rs = rows.get(`${rate} ${t.name}`)!;
      const m = (f: (x: (typeof rs)[number]) => number): number => median(rs.map(f));
      out.push(
        `| ${t.name} | ${m((x) => x.rps).toFixed(0)} | ${m((x) => x.user).toFixed(2)} | ${m((x) => x.sys).toFixed(2)} | ${total(t.name).toFixed(2)} | ${(total(t.name) / ng).toFixed(2)} | ${m((x) => x.vol).toFixed(3)} | ${m((x) => x.invol).toFixed(3)} |`,
      );
    }
  }

  if (allocRate > 0) {
    out.push(
      `\n### JS heap allocation per request at ${allocRate} req/s (V8 --trace-gc-nvp, a fresh process each, ${seconds} s)\n`,
      '| proxy | bytes allocated /req | GCs per 10 000 requests |',
      '|---|---:|---:|',
    );
    for (const t of targets.filter((x) => x.node)) {
      const { port, proc } = await t.start(['--trace-gc-nvp']);
      const alloc = new AllocCounter(proc);
      const url = `http://127.0.0.1:${port}/`;
      await runWrk({ url, connections: 50, durationS: 2, threads: 1, scriptDir: dir, rate: allocRate });
      await sleep(200); // the warm-up's last GC lines are read before counting starts
      alloc.counting = true;
      const res = await runWrk({ url, connections: 50, durationS: seconds, threads: 1, scriptDir: dir, rate: allocRate });
      alloc.counting = false;
      await proc.stop();
      const n = answered(t.name, res);
      out.push(`| ${t.name} | ${(alloc.bytes / n).toFixed(0)} | ${((alloc.gcs * 10_000) / n).toFixed(1)} |`);
    }
  }
  await upstream.stop();
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`cpu_split: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

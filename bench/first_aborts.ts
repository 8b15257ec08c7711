// What the first client aborts after warm-up do to the mTLS hop's latency (bench/README.md, "The
// first aborts"): the pipelined pair of outrigger-mtls-strict (client sidecar on uws, server
// sidecar on strict, both 1 worker) run with `node --trace-deopt`, in rounds of a saturated run
// (wrk -t1 -c50; it ends by closing its connections with requests in flight: the aborts) and a
// paced run at a fixed rate (wrk -t1 -c16). Per round: the paced run's p50/p99/p99.9 and, per
// sidecar, how many functions V8 deoptimized during it and the largest batch at once ("marking
// dependent code": a field or map assumption broken, which drops every function built on it).
// The sidecars' stdout goes to files: V8 prints its traces with C stdio, and a print into a full
// pipe is lost (test/helpers/process.ts).
//
// usage: node dist/bench/first_aborts.js [--rounds 3] [--rate 1000] [--cli dist/src/cli/main.js]
//   --cli: the outrigger build to measure (a base revision's, built in a worktree, for an A/B;
//   run the builds alternately: the machine drifts between minutes).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, sleep } from './lib/proc.js';
import { initBenchCa, mtlsClientConfigYaml, mtlsServerConfigYaml, outriggerCli, startUpstream } from './lib/targets.js';
import { runWrk } from './lib/wrk.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    cli: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const rate = Number(values.rate);
const repoRoot = resolve(import.meta.dirname, '..', '..');
const cli = resolve(values.cli ?? outriggerCli(repoRoot));

interface Traced {
  readonly child: ChildProcess;
  readonly file: string;
}

/** `outrigger run -c conf` under --trace-deopt, its stdout to `file`; resolves at its ready line. */
async function startTraced(conf: string, file: string): Promise<Traced> {
  const fd = openSync(file, 'w');
  const child = spawn(process.execPath, ['--trace-deopt', cli, 'run', '-c', conf], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  const deadline = Date.now() + 30_000;
  while (!readFileSync(file, 'utf8').includes('"msg":"ready"')) {
    if (child.exitCode !== null) throw new Error(`${conf}: exited ${child.exitCode} before its ready line`);
    if (Date.now() > deadline) throw new Error(`${conf}: no ready line within 30 s`);
    await sleep(50);
  }
  return { child, file };
}

/** Deopts in a stretch of trace: functions deoptimized, and the largest run of "marking dependent code" lines (one broken assumption). */
function deoptsBetween(text: string): { functions: number; largestBatch: number } {
  let functions = 0;
  let largestBatch = 0;
  let batch = 0;
  for (const line of text.split('\n')) {
    if (line.includes('[marking dependent code')) {
      functions++;
      batch++;
      largestBatch = Math.max(largestBatch, batch);
      continue;
    }
    batch = 0;
    if (line.includes('[bailout (kind: deopt-eager') || line.includes('[bailout (kind: deopt-soft')) functions++;
  }
  return { functions, largestBatch };
}

const dir = mkdtempSync(join(tmpdir(), 'outrigger-first-aborts-'));
const upstream = await startUpstream(repoRoot);
const procs: Traced[] = [];
try {
  const caDir = join(dir, 'ca');
  const caProblem = initBenchCa(cli, caDir);
  if (caProblem !== null) throw new Error(caProblem);
  const serverPort = await freePort();
  const clientPort = await freePort();
  writeFileSync(join(dir, 'server.yaml'), mtlsServerConfigYaml({ caDir, listenPort: serverPort, upstreamPort: upstream.port, engine: 'strict' }));
  writeFileSync(join(dir, 'client.yaml'), mtlsClientConfigYaml({ caDir, listenPort: clientPort, serverPort }));
  procs.push(await startTraced(join(dir, 'server.yaml'), join(dir, 'server.out')));
  procs.push(await startTraced(join(dir, 'client.yaml'), join(dir, 'client.out')));
  const url = `http://127.0.0.1:${clientPort}/`;
  console.log(`${cli}: the pipelined mTLS pair, ${rounds} rounds of wrk -c50 3 s then ${rate} req/s 6 s`);
  console.log('| round | p50 µs | p99 µs | p99.9 µs | server: deopts, largest batch | client: deopts, largest batch |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (let round = 1; round <= rounds; round++) {
    await runWrk({ url, connections: 50, threads: 1, durationS: 3, scriptDir: dir });
    // V8 writes each trace line as it happens (checked: a running node's file grows), so the
    // file's growth during the paced run is that run's.
    const before = procs.map((p) => readFileSync(p.file, 'utf8').length);
    const r = await runWrk({ url, connections: 16, threads: 1, durationS: 6, rate, scriptDir: dir });
    const during = procs.map((p, i) => deoptsBetween(readFileSync(p.file, 'utf8').slice(before[i])));
    const [s, c] = during as [ReturnType<typeof deoptsBetween>, ReturnType<typeof deoptsBetween>];
    console.log(
      `| ${round} | ${r.latency.p50Us} | ${r.latency.p99Us} | ${r.latency.p999Us} | ${s.functions}, ${s.largestBatch} | ${c.functions}, ${c.largestBatch} |`,
    );
  }
} finally {
  for (const p of procs) p.child.kill('SIGTERM');
  await upstream.proc.stop();
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}

// Upstream client cost, side by side in one run: the same hello-world upstream behind nginx
// (1 worker, keep-alive), outrigger (1 worker, its own HTTP/1.1 client), and two minimal uWS
// proxies that differ only in the client: undici Pool.dispatch() vs outrigger's own client; wrk -t1 -c50, interleaved rounds, CPU µs/request of each
// proxy's process tree (all threads), medians. Why outrigger has its own client: DESIGN.md §7.
// Usage: node dist/bench/client_compare.js [--rounds N] [--seconds S]

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMicrosBetween, sampleCpu } from './lib/cpu.js';
import { nginxCommand } from './lib/peers.js';
import { processTree } from './lib/procfs.js';
import { freePort, startProcess, type Started } from './lib/proc.js';
import { median } from './lib/stats.js';
import { outriggerCli, outriggerConfigYaml, startUpstream } from './lib/targets.js';
import { runWrk } from './lib/wrk.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values } = parseArgs({ options: { rounds: { type: 'string' }, seconds: { type: 'string' } } });
const rounds = Number(values.rounds ?? 3);
const seconds = Number(values.seconds ?? 5);
const dir = mkdtempSync(path.join(tmpdir(), 'outrigger-client-compare-'));

async function main(): Promise<void> {
  const { proc: upstream, port: upPort } = await startUpstream(root);
  const targets: Array<{ name: string; port: number; proc: Started }> = [];

  const ngPort = await freePort();
  const ng = nginxCommand({ nginxPath: '/usr/sbin/nginx', dir, listenPort: ngPort, upstreamPort: upPort });
  targets.push({ name: 'nginx', port: ngPort, proc: await startProcess({ name: 'nginx', cmd: ng.cmd, args: ng.args, readyPort: ngPort }) });

  const orPort = await freePort();
  const cfg = path.join(dir, 'outrigger.yaml');
  writeFileSync(cfg, outriggerConfigYaml({ workers: 1, engine: 'strict', listenPort: orPort, upstreamPort: upPort, adminPort: 0 }));
  targets.push({
    name: 'outrigger-1w',
    port: orPort,
    proc: await startProcess({
      name: 'outrigger',
      cmd: process.execPath,
      args: [outriggerCli(root), 'run', '-c', cfg],
      readyLine: /"msg":"ready"/,
    }),
  });

  const unPort = await freePort();
  targets.push({
    name: 'uws+undici-dispatch',
    port: unPort,
    proc: await startProcess({
      name: 'undici',
      cmd: process.execPath,
      args: [path.join(here, 'undici_proxy.js'), String(unPort), String(upPort)],
      readyPort: unPort,
    }),
  });

  const owPort = await freePort();
  targets.push({
    name: 'uws+own-client',
    port: owPort,
    proc: await startProcess({
      name: 'own',
      cmd: process.execPath,
      args: [path.join(here, 'own_client_proxy.js'), String(owPort), String(upPort)],
      readyPort: owPort,
    }),
  });

  const cpu = new Map<string, number[]>();
  const rps = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const url = `http://127.0.0.1:${t.port}/`;
      await runWrk({ url, connections: 50, durationS: 1, threads: 1, scriptDir: dir }); // warm-up
      const before = sampleCpu(processTree(t.proc.pid));
      const res = await runWrk({ url, connections: 50, durationS: seconds, threads: 1, scriptDir: dir });
      const after = sampleCpu(processTree(t.proc.pid));
      const us = cpuMicrosBetween(before, after) / res.requests;
      (cpu.get(t.name) ?? cpu.set(t.name, []).get(t.name)!).push(us);
      (rps.get(t.name) ?? rps.set(t.name, []).get(t.name)!).push(res.requestsPerSec);
      process.stderr.write(`round ${r + 1} ${t.name}: ${res.requestsPerSec.toFixed(0)} req/s, ${us.toFixed(1)} µs/req\n`);
    }
  }
  const ngCpu = median(cpu.get('nginx')!);
  process.stdout.write(`\n| proxy | req/s (median) | CPU µs/req (median) | range | × nginx |\n|---|---:|---:|---|---:|\n`);
  for (const t of targets) {
    const c = cpu.get(t.name)!;
    process.stdout.write(
      `| ${t.name} | ${median(rps.get(t.name)!).toFixed(0)} | ${median(c).toFixed(1)} | ${Math.min(...c).toFixed(1)}–${Math.max(...c).toFixed(1)} | ${(median(c) / ngCpu).toFixed(2)} |\n`,
    );
  }
  for (const t of targets) await t.proc.stop();
  await upstream.stop();
}

main().catch((e: unknown) => {
  process.stderr.write(`client_compare: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

// npm run bench:micro [-- --filter WORD] [--time MS] [--json]
// Runs every micro benchmark file beside this one (*.bench.js once compiled). Each file is
// independent: it exports `title` and `register(bench)`, and `opsPerCall` when each task call
// makes that many operations (times are then per operation); a file that fails to load or
// register (its module moved, say) is reported as skipped with the reason and the rest still run.

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';

export interface MicroBenchModule {
  readonly title: string;
  /** Operations per task call (default 1): ops/s and times are reported per operation. */
  readonly opsPerCall?: number;
  register(bench: Bench): void | Promise<void>;
}

interface Row {
  readonly file: string;
  readonly task: string;
  readonly opsPerSec: number | null;
  readonly meanNs: number | null;
  readonly p50Ns: number | null;
  readonly p99Ns: number | null;
  readonly rmePercent: number | null;
  readonly samples: number;
  readonly error?: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      filter: { type: 'string' },
      time: { type: 'string', default: '500' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const dir = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.bench.js'))
    .filter((f) => values.filter === undefined || f.includes(values.filter))
    .sort();
  const rows: Row[] = [];
  const skipped: { file: string; reason: string }[] = [];
  for (const file of files) {
    let mod: MicroBenchModule;
    const bench = new Bench({ time: Number(values.time), warmupTime: 100 });
    try {
      mod = (await import(pathToFileURL(join(dir, file)).href)) as MicroBenchModule;
      await mod.register(bench);
    } catch (e) {
      skipped.push({ file, reason: e instanceof Error ? e.message : String(e) });
      continue;
    }
    const per = mod.opsPerCall ?? 1;
    process.stderr.write(`${mod.title} (${file}${per === 1 ? '' : `, ${per} ops per call, times per op`})…\n`);
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r.state === 'completed' || r.state === 'aborted-with-statistics') {
        rows.push({
          file,
          task: task.name,
          // ops/s as 1 / mean time per op (tinybench's throughput.mean averages per-sample rates,
          // which overstates ops/s when samples vary)
          opsPerSec: r.period > 0 ? (1000 * per) / r.period : null,
          meanNs: (r.period * 1e6) / per,
          p50Ns: (r.latency.p50 * 1e6) / per,
          p99Ns: (r.latency.p99 * 1e6) / per,
          rmePercent: r.latency.rme,
          samples: r.latency.samplesCount,
        });
      } else {
        const error = r.state === 'errored' ? String(r.error) : r.state;
        rows.push({ file, task: task.name, opsPerSec: null, meanNs: null, p50Ns: null, p99Ns: null, rmePercent: null, samples: 0, error });
      }
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ node: process.version, rows, skipped }, null, 2)}\n`);
  } else {
    const fmt = (v: number | null, d = 0): string => (v === null ? '–' : v.toLocaleString('en-US', { maximumFractionDigits: d }));
    const lines = ['| benchmark | task | ops/s | mean ns | p50 ns | p99 ns | ±% | samples |', '|---|---|---:|---:|---:|---:|---:|---:|'];
    for (const r of rows) {
      lines.push(
        `| ${r.file.replace('.bench.js', '')} | ${r.task} | ${r.error ?? fmt(r.opsPerSec)} | ${fmt(r.meanNs)} | ${fmt(r.p50Ns)} | ${fmt(r.p99Ns)} | ${fmt(r.rmePercent, 1)} | ${r.samples} |`,
      );
    }
    for (const s of skipped) lines.push(`| ${s.file.replace('.bench.js', '')} | skipped: ${s.reason.replace(/\|/g, '/').split('\n')[0] ?? ''} | | | | | | |`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return rows.some((r) => r.error !== undefined) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench:micro: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);

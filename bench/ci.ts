// npm run bench:ci — a short side-by-side (direct; outrigger 1 worker on the strict listener
// engine, the default, and on uws and node; the strict engine with 2 workers; nginx; same run,
// several interleaved rounds) that fails when outrigger is slower or larger than
// bench/baseline.json allows: the default engine's CPU ratio to nginx, p99 and p99.9 added over
// direct and RSS, and the other engines' CPU ratios. It prints the paired engine ratios, the
// 2 ÷ 1 worker CPU ratio and the 2-worker config's requests and connections per worker, haproxy
// beside nginx, and issue 13's fast hop (bench/lib/hop.ts: the two-sidecar mTLS path pipelined
// and at depth 1 against two plaintext sidecars, its added p99, the head-of-line scenario).
// Exit 0: within thresholds; 1: a threshold is exceeded; 2: could not measure (a config was
// skipped, a gated value is missing, or a tool is missing). Not part of npm test; see
// bench/README.md.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CPU_NOISE_LIMIT, checkBaseline, cpuRatioNoise, rebaseline, type Baseline, type Verdict } from './lib/baseline.js';
import { comparisonLine, engineComparisons, scalingLines, workerComparisons } from './lib/comparisons.js';
import { hopComparisons, hopHolPlan, hopLines } from './lib/hop.js';
import { PLAN_OPTIONS, quickPlan } from './lib/measure.js';
import { memoryLines } from './lib/memory.js';
import { renderMarkdown } from './lib/report.js';
import type { BenchResults } from './lib/results.js';
import { runSession } from './lib/session.js';
import { rateLines } from './lib/summary.js';
import { HOP_TARGETS, UNPIPELINED_TARGET, type TargetSpec } from './lib/targets.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const HELP = `usage: npm run bench:ci -- [options]
  --baseline FILE     thresholds (default bench/baseline.json)
  --rounds N          interleaved rounds (default 5)
  --duration S        seconds per throughput run (default 3)
  --rate-duration S   seconds per fixed-rate run (default 5)
  --out DIR           where results.json and report.md go (default bench/results/ci-<timestamp>/)
  --write-baseline    write this run's medians into the baseline file as the new thresholds
  --check FILE        measure nothing: check a stored results.json against the baseline
  --no-install        do not apt-get install missing nginx/wrk
`;

/** Workers of the multi-worker config (outrigger-strict-2w). */
const WORKERS_N = 2;

/** Prints the gate's table, then the paired ratios, the scaling with workers and the fast hop (printed, not gated). */
function printVerdict(verdict: Verdict, results: BenchResults, where: string): Verdict {
  const elsewhere = new Set([...workerComparisons(WORKERS_N), ...hopComparisons()].map((c) => c.label));
  const ratios = (results.comparisons ?? []).filter((c) => !elsewhere.has(c.label)).map((c) => `- ${comparisonLine(c)}`);
  const section = (title: string, lines: readonly string[]): string => `${title}:\n${lines.join('\n') || '- none measured'}`;
  process.stdout.write(
    `${[
      verdict.text,
      section('paired ratios (not gated)', ratios),
      ...[...new Set(results.summary.flatMap((x) => x.rates.map((q) => q.rate)))].map((rate) =>
        section(`latency at ${rate} req/s, µs (medians over rounds; not gated beyond the table)`, rateLines(results.summary, rate)),
      ),
      section('scaling with workers (not gated)', scalingLines(results, WORKERS_N)),
      section('fast hop between two sidecars (not gated)', hopLines(results)),
      section('memory and event-loop delay', memoryLines(results)),
    ].join('\n\n')}\n(results in ${where})\n`,
  );
  return verdict;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ...PLAN_OPTIONS,
      baseline: { type: 'string' },
      'write-baseline': { type: 'boolean', default: false },
      check: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const baselinePath = resolve(values.baseline ?? join(repoRoot, 'bench', 'baseline.json'));
  const baseline = JSON.parse(readFileSync(baselinePath, 'utf8')) as Baseline;
  if (values.check !== undefined) {
    const stored = JSON.parse(readFileSync(resolve(values.check), 'utf8')) as BenchResults;
    return printVerdict(checkBaseline(stored, baseline), stored, resolve(values.check)).exitCode;
  }
  const rounds = Number(values.rounds ?? 5);
  const durationS = Number(values.duration ?? 3);
  const rate = baseline.added_p99_us.rate;
  // The p99.9 gate's rate is normally the same; a different one is measured too.
  const rates = [...new Set([rate, baseline.added_p999_us?.rate ?? rate])];
  const rateS = Number(values['rate-duration'] ?? 5);
  const plan = { ...quickPlan(durationS, rate, rateS), rates, hol: hopHolPlan(rateS, rate) };
  const targets: TargetSpec[] = [
    { name: 'direct', kind: 'direct' },
    { name: 'outrigger-strict-1w', kind: 'outrigger', workers: 1, engine: 'strict' },
    { name: 'outrigger-1w', kind: 'outrigger', workers: 1, engine: 'uws' },
    { name: 'outrigger-node-1w', kind: 'outrigger', workers: 1, engine: 'node' },
    // The default config before 2026-12-07: no GET pipelined to the upstream (pool.pipeline_plaintext: false), as for an app not on loopback; its CPU ratio is gated (baseline.json, more_configs).
    UNPIPELINED_TARGET,
    // Not gated: its CPU ÷ outrigger-strict-1w's, requests and connections per worker, the idle
    // RSS a second worker adds, event-loop delay per worker.
    { name: `outrigger-strict-${WORKERS_N}w`, kind: 'outrigger', workers: WORKERS_N, engine: 'strict' },
    // Not gated: the fast hop's three two-sidecar configs, and haproxy beside nginx.
    ...HOP_TARGETS,
    { name: 'nginx', kind: 'nginx' },
    { name: 'haproxy', kind: 'haproxy' },
    // Not gated: the floor of a Node proxy (bench/node_relay.ts), beside outrigger and nginx.
    { name: 'node-relay', kind: 'node-relay' },
  ];
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  const comparisons = [...engineComparisons(), ...workerComparisons(WORKERS_N), ...hopComparisons()];
  // The gated config once more, sent no traffic for the whole run: its RSS long after start-up.
  const keptIdle = targets.find((t) => t.name === baseline.config);
  const results = await runSession({
    repoRoot,
    targets,
    rounds,
    plan,
    quick: true,
    install: values['no-install'] !== true,
    comparisons,
    ...(keptIdle !== undefined ? { keptIdle } : {}),
    log,
  });
  const out = resolve(values.out ?? join(repoRoot, 'bench', 'results', `ci-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(out, 'report.md'), renderMarkdown(results));

  const verdict = printVerdict(checkBaseline(results, baseline), results, out);
  if (values['write-baseline'] && verdict.measured !== null) {
    const noise = cpuRatioNoise(results);
    if (noise > CPU_NOISE_LIMIT) {
      log(
        `bench:ci: not writing ${baselinePath}: this run's CPU noise is ${(noise * 100).toFixed(0)} % (over ${CPU_NOISE_LIMIT * 100} %), so thresholds set from it would be the machine's noise; rerun on a quieter machine`,
      );
      return 2;
    }
    const next = rebaseline(baseline, verdict.measured, results.meta.finishedAt);
    writeFileSync(baselinePath, `${JSON.stringify(next, null, 2)}\n`);
    process.stdout.write(`wrote ${baselinePath}\n`);
    return 0;
  }
  return verdict.exitCode;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench:ci: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);

// npm run bench [-- --quick] [--out DIR] [--rounds N] ...
// Side-by-side benchmark of outrigger (1 and N workers, the uws, node and strict listener engines,
// the two-sidecar mTLS path with a server sidecar of 1 and N workers) against nginx, haproxy
// and a direct run on 127.0.0.1, with the paired ratios of issue 19 (node ÷ uws engine, server
// sidecar N ÷ 1 workers, each ÷ nginx) and issue 13's scaling with workers (outrigger N ÷ 1
// workers, with requests and connections per worker, printed after the report), issue 13's fast
// hop (bench/lib/hop.ts: the mTLS pair pipelined and at depth 1 against two plaintext sidecars,
// and the head-of-line scenario), then the gRPC,
// WebSocket and raw TCP sections (bench/lib/grpc.ts, websocket.ts, tcp.ts); writes
// results.json, report.md and report.html into --out.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchComparisons, scalingLines } from './lib/comparisons.js';
import { hopComparisons, hopHolPlan, hopLines } from './lib/hop.js';
import { renderGrpcMarkdown, runGrpcBench } from './lib/grpc.js';
import { PLAN_OPTIONS, VARIANTS, type MeasurePlan } from './lib/measure.js';
import { renderHtml, renderMarkdown } from './lib/report.js';
import { runSession } from './lib/session.js';
import { defaultTargets } from './lib/targets.js';
import { renderTcpMarkdown, runTcpBench } from './lib/tcp.js';
import { renderWsMarkdown, runWsBench, WS_SIZES } from './lib/websocket.js';

const HELP = `usage: npm run bench -- [options]
  --quick              about 4 minutes: 2 rounds, short runs, no body variants
  --out DIR            output folder (default bench/results/<timestamp>/)
  --rounds N           rounds (default 3; quick 2)
  --duration S         seconds per throughput run (default 10; quick 3)
  --rate-duration S    seconds per fixed-rate run (default 10; quick 3)
  --rates LIST         fixed rates, req/s (default 500,1000,2000; quick 1000,2000)
  --connections N      connections for throughput and autocannon (default 50)
  --workers N          workers of the multi-worker outrigger configs: outrigger-Nw and the
                       server sidecar of outrigger-mtls-Nw (default 2)
  --configs LIST       only these configs (e.g. direct,nginx,outrigger-1w,outrigger-node-1w)
  --variants / --no-variants   body variants /1k, /64k, POST /echo (default: on, quick: off)
  --no-install         do not apt-get install missing nginx/haproxy/wrk/h2load
  --no-grpc            skip the gRPC section (h2load: one sidecar, two sidecars over HTTP/2
                       mTLS, nginx grpc_pass, direct; also alone as npm run bench:grpc)
  --no-ws              skip the WebSocket section (echoed 64 B and 16 KiB messages: one sidecar,
                       two sidecars over mTLS, nginx, direct; also alone as npm run bench:ws)
  --no-hol             skip the head-of-line scenario (1 request in 100 takes 500 ms: the fast
                       requests' p99 through the mTLS pair, pipelined and at depth 1, and direct)
  --no-tcp             skip the raw TCP section (redis-benchmark through a tcp listener, two
                       sidecars over mTLS, haproxy mode tcp, direct; also alone as npm run bench:tcp)
`;

// dist/bench/compare.js → repo root is two levels up.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function list(s: string | undefined): string[] | undefined {
  return s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ...PLAN_OPTIONS,
      quick: { type: 'boolean', default: false },
      rates: { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
      configs: { type: 'string' },
      variants: { type: 'boolean' },
      'no-variants': { type: 'boolean' },
      'no-grpc': { type: 'boolean' },
      'no-ws': { type: 'boolean' },
      'no-tcp': { type: 'boolean' },
      'no-hol': { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick === true;
  const n = (s: string | undefined, d: number): number => {
    if (s === undefined) return d;
    const v = Number(s);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`not a positive number: ${s}`);
    return v;
  };
  const workersN = n(values.workers, 2);
  const onlyConfigs = list(values.configs);
  const targets = defaultTargets(workersN).filter((t) => onlyConfigs === undefined || onlyConfigs.includes(t.name));
  const withVariants = values['no-variants'] === true ? false : values.variants === true ? true : !quick;
  const rateS = n(values['rate-duration'], quick ? 3 : 10);
  const plan: MeasurePlan = {
    warmupS: quick ? 1 : 2,
    firstWarmupS: quick ? 5 : 10,
    throughputS: n(values.duration, quick ? 3 : 10),
    connections: n(values.connections, 50),
    wrkThreads: 1,
    rates: (list(values.rates) ?? (quick ? ['1000', '2000'] : ['500', '1000', '2000'])).map((x) => n(x, 0)),
    rateS,
    rateConnections: 16,
    autocannonS: quick ? 2 : 5,
    variants: withVariants ? VARIANTS : [],
    variantS: quick ? 2 : 5,
    ...(values['no-hol'] === true ? {} : { hol: hopHolPlan(rateS) }),
  };
  const rounds = n(values.rounds, quick ? 2 : 3);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = resolve(values.out ?? join(repoRoot, 'bench', 'results', stamp));
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };

  const comparisons = [...benchComparisons(workersN), ...hopComparisons()];
  const results = await runSession({ repoRoot, targets, rounds, plan, quick, install: values['no-install'] !== true, comparisons, log });
  const grpc =
    values['no-grpc'] === true
      ? null
      : await runGrpcBench({ repoRoot, rounds, seconds: plan.throughputS, rate: 1000, install: values['no-install'] !== true, log });
  const ws =
    values['no-ws'] === true
      ? null
      : await runWsBench({
          repoRoot,
          rounds,
          seconds: plan.throughputS,
          connections: 16,
          inflight: 8,
          sizes: WS_SIZES,
          install: values['no-install'] !== true,
          log,
        });
  const tcp =
    values['no-tcp'] === true
      ? null
      : await runTcpBench({
          repoRoot,
          rounds,
          requests: quick ? 30_000 : 100_000,
          largeRequests: quick ? 3000 : 10_000,
          largeValueBytes: 65_536,
          install: values['no-install'] !== true,
          log,
        });
  mkdirSync(out, { recursive: true });
  const sections = { ...(grpc === null ? {} : { grpc }), ...(ws === null ? {} : { websocket: ws }), ...(tcp === null ? {} : { tcp }) };
  writeFileSync(join(out, 'results.json'), `${JSON.stringify({ ...results, ...sections }, null, 2)}\n`);
  const md = [
    renderMarkdown(results),
    ...(grpc === null ? [] : [renderGrpcMarkdown(grpc)]),
    ...(ws === null ? [] : [renderWsMarkdown(ws)]),
    ...(tcp === null ? [] : [renderTcpMarkdown(tcp)]),
  ].join('\n');
  writeFileSync(join(out, 'report.md'), md);
  writeFileSync(join(out, 'report.html'), renderHtml(results));
  const scaling = scalingLines(results, workersN);
  const hop = hopLines(results);
  process.stdout.write(
    `${md}\nscaling with workers:\n${scaling.join('\n') || '- none measured'}\n\nfast hop between two sidecars:\n${hop.join('\n') || '- none measured'}\n\nwrote ${out}/{results.json,report.md,report.html}\n`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);

// `outrigger bench URL`: load test any URL (usually through a running sidecar) with autocannon,
// programmatically: connections, duration, fixed rate, method, body, headers; a progress bar
// while it runs and a table of percentiles at the end (`--json` for machines).
// Latency is as autocannon's Node client sees it (whole-millisecond resolution); for µs-level
// latency at a fixed rate use `npm run bench` (wrk, paced).

import { readFileSync } from 'node:fs';
import autocannon, { type AutocannonOptions, type AutocannonResult } from 'autocannon';
import { parseArgsOr } from './args.js';

const HELP = `Usage: outrigger bench URL [options]
  -c, --connections N   concurrent connections (default 50)
  -d, --duration S      seconds to run (default 10)
  -r, --rate N          fixed overall rate in requests/s (default: as fast as possible)
  -m, --method M        HTTP method (default GET)
  -b, --body TEXT       request body (or @FILE to read it from a file)
  -H, --header K:V      request header (repeatable)
      --json            print the result as JSON instead of a table
`;

export interface BenchIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

class BenchUsage extends Error {}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new BenchUsage(`--${name} must be a positive integer, not "${v}"`);
  return n;
}

const OPTIONS = {
  connections: { type: 'string', short: 'c' },
  duration: { type: 'string', short: 'd' },
  rate: { type: 'string', short: 'r' },
  method: { type: 'string', short: 'm' },
  body: { type: 'string', short: 'b' },
  header: { type: 'string', short: 'H', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses `bench` arguments into autocannon options; throws BenchUsage for user mistakes. */
export function benchOptions(argv: string[]): { opts: AutocannonOptions; json: boolean } | null {
  const { values, positionals } = parseArgsOr({ args: argv, options: OPTIONS, allowPositionals: true }, BenchUsage);
  if (values.help === true) return null;
  const url = positionals[0];
  if (url === undefined) throw new BenchUsage('missing URL; see outrigger bench --help');
  if (positionals.length > 1) throw new BenchUsage(`unexpected argument "${positionals[1]}"`);
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw new BenchUsage(`not a URL: "${url}"`);
  }
  if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') throw new BenchUsage(`only http:// and https:// URLs, not "${parsedUrl.protocol}"`);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new BenchUsage(`header must be NAME:VALUE, not "${h}"`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  let body = values.body;
  if (body?.startsWith('@') === true) {
    try {
      body = readFileSync(body.slice(1), 'utf8');
    } catch (e) {
      throw new BenchUsage(`cannot read body file "${body.slice(1)}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  const opts: AutocannonOptions = {
    url,
    connections: positiveInt('connections', values.connections, 50),
    duration: positiveInt('duration', values.duration, 10),
    method: (values.method ?? 'GET').toUpperCase(),
    headers,
    timeout: 10,
  };
  if (values.rate !== undefined) opts.overallRate = positiveInt('rate', values.rate, 0);
  if (body !== undefined) opts.body = body;
  return { opts, json: values.json === true };
}

/** The final table: throughput, latency percentiles, errors. */
export function renderBenchTable(r: AutocannonResult, opts: AutocannonOptions): string {
  const l = r.latency;
  const rows: Array<[string, string]> = [
    ['target', `${opts.method ?? 'GET'} ${opts.url}`],
    ['connections', String(opts.connections ?? 50)],
    ['duration', `${r.duration.toFixed(1)} s`],
    ['requests', `${r.requests.total} (${r.requests.average.toFixed(0)} req/s avg)`],
    ['latency p50', `${l.p50} ms`],
    ['latency p90', `${l.p90} ms`],
    ['latency p99', `${l.p99} ms`],
    ['latency p99.9', `${l.p99_9} ms`],
    ['latency max', `${l.max} ms`],
    ['throughput', `${(r.throughput.average / 1024).toFixed(1)} KiB/s`],
    ['2xx', String(r['2xx'])],
    ['non-2xx', String(r.non2xx)],
    ['errors', `${r.errors} (timeouts ${r.timeouts})`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

export async function runBench(argv: string[], io: BenchIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let parsed;
  try {
    parsed = benchOptions(argv);
  } catch (e) {
    if (e instanceof BenchUsage) {
      io.stderr.write(`outrigger bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (parsed === null) {
    io.stdout.write(HELP);
    return 0;
  }
  const { opts, json } = parsed;
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon(opts, (err: Error | null, res: AutocannonResult) => (err ? reject(err) : resolve(res)));
    if (!json) autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false, outputStream: io.stderr });
  });
  if (json) {
    io.stdout.write(
      `${JSON.stringify({ url: opts.url, method: opts.method, connections: opts.connections, duration_s: result.duration, requests: result.requests.total, requests_per_sec: result.requests.average, latency_ms: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max }, non_2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts }, null, 2)}\n`,
    );
  } else {
    io.stdout.write(renderBenchTable(result, opts));
  }
  return result.errors > 0 || result.non2xx > 0 ? 1 : 0;
}

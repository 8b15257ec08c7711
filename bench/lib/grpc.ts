// The gRPC benchmark (issue 14): unary gRPC calls through outrigger (one sidecar with an HTTP/2
// listener and an `http2` cluster; two sidecars whose hop is HTTP/2 over mTLS) beside nginx's
// grpc_pass and the upstream alone, in one run. Load comes from h2load (Debian's
// nghttp2-client: throughput with 10 connections × 10 streams; CPU µs/request of each config's
// process trees) and from bench/h2_paced.ts (a fixed rate; p50/p99/p99.9/max from the schedule,
// as h2load reports no percentiles). The upstream is bench/upstream/grpc_server.ts.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMicrosBetween, sampleCpu } from './cpu.js';
import { ensureTools, nginxFile, type ToolStatus } from './peers.js';
import * as section from './section.js';
import { JIT_WARMUP_S } from './measure.js';

export const GRPC_PATH = '/bench.Echo/Unary';
/** One gRPC message "hello": flag 0, length 5, the bytes (h2load's -d body). */
const GRPC_BODY = Buffer.from([0, 0, 0, 0, 5, 104, 101, 108, 108, 111]);

export interface GrpcBenchOptions extends section.SectionArgs {
  /** Seconds per h2load throughput run and per fixed-rate run. */
  readonly seconds: number;
  /** Fixed rate, calls/s. */
  readonly rate: number;
}

export interface GrpcRun extends section.SectionRun {
  /** h2load: calls/s, failed calls, CPU µs per call of the config's process trees (0 for direct). */
  readonly throughput: number;
  readonly failed: number;
  readonly cpuMicrosPerCall: number;
  /** The fixed-rate run: latency percentiles in µs, failed calls, CPU µs per call. */
  readonly fixed: {
    readonly p50: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
    readonly failed: number;
    readonly cpuMicrosPerCall: number;
  };
}

export interface GrpcBenchResults extends section.SectionResults<GrpcRun> {
  readonly rate: number;
}

/** A gRPC config's sidecar: strict engine, protocol auto (h2c or ALPN h2), an `http2` cluster. */
export const GRPC_SIDECAR: section.SidecarProtocol = {
  source: 'bench/lib/grpc.ts',
  listenerName: 'grpc',
  listenerLines: ['engine: strict', 'protocol: auto', 'routes: [{match: {path_prefix: /}, cluster: up}]'],
  clusterLines: ['protocol: http2'],
};

/** nginx as a gRPC proxy: h2c listener, grpc_pass to a keep-alive upstream, 1 worker, no access log. */
export function nginxGrpcConfig(dir: string, listenPort: number, upstreamPort: number): string {
  return nginxFile(
    'bench/lib/grpc.ts',
    dir,
    // keepalive_requests bounds requests per HTTP/2 connection too (http2_max_requests is obsolete
    // since 1.19.7): its default 1000 would GOAWAY the load clients' connections every 1000 calls.
    `  keepalive_requests 1000000;
  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listenPort} http2;
    location / { grpc_pass grpc://up; }
  }
`,
  );
}

/** The unary method's URL on a config's port (what h2load and the paced client call). */
const grpcUrl = (port: number): string => `http://127.0.0.1:${port}${GRPC_PATH}`;

/** One unary call; null when it comes back as grpc-status 0, else what came back. */
async function probeGrpc(port: number): Promise<string | null> {
  const { default: http2 } = await import('node:http2');
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', (e: Error) => resolve(`probe failed: ${e.message}`));
    const stream = session.request({ ':method': 'POST', ':path': GRPC_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    let status = '';
    let grpc = '';
    stream.on('response', (h) => (status = String(h[':status'])));
    stream.on('trailers', (t: Record<string, unknown>) => (grpc = String(t['grpc-status'])));
    stream.on('data', () => {});
    stream.on('close', () => {
      session.close();
      resolve(status === '200' && grpc === '0' ? null : `probe answered :status ${status} grpc-status ${grpc}`);
    });
    stream.end(GRPC_BODY);
  });
}

function startTargets(opts: GrpcBenchOptions, dir: string, upstreamPort: number, nginx: ToolStatus | undefined): Promise<section.SectionTargets> {
  return section.startSectionConfigs({
    repoRoot: opts.repoRoot,
    dir,
    upstreamPort,
    sidecar: GRPC_SIDECAR,
    probe: probeGrpc,
    direct: 'the gRPC upstream itself (CPU column: 0 by definition)',
    one: { name: 'outrigger-grpc-1w', description: 'one sidecar, 1 worker: strict engine, h2c listener (protocol auto) → `http2` cluster' },
    mtls: {
      name: 'outrigger-grpc-mtls',
      label: 'grpc-mtls',
      description: 'two sidecars, 1 worker each: h2c → client sidecar → HTTP/2 over mTLS (ALPN h2) → server sidecar → h2c upstream',
    },
    peer: section.nginxPeer(
      'nginx-grpc',
      nginx,
      dir,
      (version) => `${version}: 1 worker, listen http2 (h2c), grpc_pass to a keep-alive upstream`,
      (nginxDir, port) => nginxGrpcConfig(nginxDir, port, upstreamPort),
    ),
  });
}

/** h2load's summary: calls/s and failed calls. */
export function parseH2load(text: string): { perSecond: number; succeeded: number; failed: number } {
  const rps = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(text);
  const reqs = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(text);
  if (rps === null || reqs === null) throw new Error(`unexpected h2load output: ${text.slice(-300)}`);
  return { perSecond: Number(rps[1]), succeeded: Number(reqs[1]), failed: Number(reqs[2]) };
}

async function measure(
  t: section.SectionTarget,
  h2load: string,
  pacedScript: string,
  opts: GrpcBenchOptions,
  bodyFile: string,
  round: number,
): Promise<GrpcRun> {
  const cpuOf = async <T>(fn: () => Promise<T>): Promise<{ value: T; micros: number }> => {
    const before = sampleCpu(t.pids);
    const value = await fn();
    return { value, micros: t.pids.length === 0 ? 0 : cpuMicrosBetween(before, sampleCpu(t.pids)) };
  };
  const url = grpcUrl(t.port);
  // Warm-up (JIT, pools), not measured: JIT_WARMUP_S of load, long enough for TurboFan to come on.
  await section.runToEnd(
    h2load,
    ['-D', String(JIT_WARMUP_S), '-c', '10', '-m', '10', '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url],
    60_000,
  );
  const tp = await cpuOf(async () =>
    parseH2load(
      await section.runToEnd(
        h2load,
        ['-D', String(opts.seconds), '-c', '10', '-m', '10', '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url],
        (opts.seconds + 30) * 1000,
      ),
    ),
  );
  const calls = tp.value.succeeded + tp.value.failed;
  const fixed = await cpuOf(async () => {
    const text = await section.runToEnd(process.execPath, [pacedScript, url, String(opts.rate), String(opts.seconds), '4'], (opts.seconds + 30) * 1000);
    return JSON.parse(text.trim().split('\n').pop()!) as { requests: number; failed: number; p50: number; p99: number; p999: number; max: number };
  });
  return {
    config: t.name,
    round,
    throughput: tp.value.perSecond,
    failed: tp.value.failed,
    cpuMicrosPerCall: calls > 0 ? tp.micros / calls : 0,
    fixed: {
      p50: fixed.value.p50,
      p99: fixed.value.p99,
      p999: fixed.value.p999,
      max: fixed.value.max,
      failed: fixed.value.failed,
      cpuMicrosPerCall: fixed.value.requests > 0 ? fixed.micros / fixed.value.requests : 0,
    },
  };
}

export async function runGrpcBench(opts: GrpcBenchOptions): Promise<GrpcBenchResults> {
  const tools = new Map(ensureTools(['h2load', 'nginx'], opts.install, opts.log).map((t) => [t.tool, t]));
  const h2load = tools.get('h2load');
  if (h2load?.path == null) throw new Error(`h2load is required (Debian nghttp2-client): ${h2load?.reason ?? 'missing'}`);
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-grpc-bench-'));
  const bodyFile = join(dir, 'call.bin');
  writeFileSync(bodyFile, GRPC_BODY);
  const upstream = await section.startNodeUpstream(opts.repoRoot, 'grpc-upstream', 'grpc_server.js');
  const paced = join(opts.repoRoot, 'dist', 'bench', 'h2_paced.js');
  const runs: GrpcRun[] = [];
  const h2loadPath = h2load.path;
  const { configs, skipped } = await section.runRounds(
    'grpc',
    opts,
    () => startTargets(opts, dir, upstream.port, tools.get('nginx')),
    async (t, round) => {
      const r = await measure(t, h2loadPath, paced, opts, bodyFile, round);
      opts.log(
        `grpc round ${round} ${t.name}: ${r.throughput.toFixed(0)} calls/s, ${r.cpuMicrosPerCall.toFixed(1)} µs CPU/call, p99 at ${opts.rate}/s ${r.fixed.p99} µs`,
      );
      runs.push(r);
    },
    { upstream: upstream.proc, dir },
  );
  return { configs, skipped, rate: opts.rate, runs };
}

const signed = (n: number): string => (n >= 0 ? `+${n}` : String(n));

/** The markdown section: medians over rounds, CPU ÷ nginx-grpc, latency added over direct. */
export function renderGrpcMarkdown(r: GrpcBenchResults): string {
  const by = (name: string): GrpcRun[] => r.runs.filter((x) => x.config === name);
  const med = (name: string, f: (x: GrpcRun) => number): number => section.medianOrNaN(by(name).map(f));
  const nginxCpu = med('nginx-grpc', (x) => x.cpuMicrosPerCall);
  const directP50 = med('direct', (x) => x.fixed.p50);
  const directP99 = med('direct', (x) => x.fixed.p99);
  const lines = [
    `## gRPC unary (h2load -c 10 -m 10; fixed rate ${r.rate} calls/s from bench/h2_paced.ts; medians of ${section.roundsOf(r.runs)} rounds)`,
    '',
    '| config | calls/s | CPU µs/call | × nginx-grpc | at fixed rate: CPU µs/call | p50 µs | p99 µs | p99.9 µs | max µs | added p50 / p99 over direct µs | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of r.configs) {
    const cpu = med(c.name, (x) => x.cpuMicrosPerCall);
    const p50 = med(c.name, (x) => x.fixed.p50);
    const p99 = med(c.name, (x) => x.fixed.p99);
    const failed = by(c.name).reduce((a, x) => a + x.failed + x.fixed.failed, 0);
    lines.push(
      `| ${c.name} | ${med(c.name, (x) => x.throughput).toFixed(0)} | ${cpu.toFixed(1)} | ${c.name === 'direct' || !(nginxCpu > 0) ? '' : (cpu / nginxCpu).toFixed(2)} | ${med(c.name, (x) => x.fixed.cpuMicrosPerCall).toFixed(1)} | ${p50} | ${p99} | ${med(c.name, (x) => x.fixed.p999)} | ${med(c.name, (x) => x.fixed.max)} | ${c.name === 'direct' ? '' : `${signed(p50 - directP50)} / ${signed(p99 - directP99)}`} | ${failed} |`,
    );
  }
  lines.push(...section.footnotes(r));
  return `${lines.join('\n')}\n`;
}

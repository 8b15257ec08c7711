// The WebSocket benchmark (issue 15): echoed binary messages through outrigger (one sidecar on
// the strict engine; two sidecars whose hop is mTLS) beside nginx as a WebSocket proxy and the
// upstream alone, in one run. Load comes from bench/ws_load.ts (its own process: N sockets, each
// keeping K messages in flight, for each message size); the upstream is
// bench/upstream/ws_server.ts. Reported per config and size: messages/s, round-trip p50/p99 under
// that load, and CPU µs per echoed message of the config's process trees (each message crosses
// the proxy twice: there and back).

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cpuMicrosBetween, sampleCpu } from './cpu.js';
import { ensureTools, nginxFile, type ToolStatus } from './peers.js';
import * as section from './section.js';
import { JIT_WARMUP_S } from './measure.js';

export const WS_SIZES: readonly number[] = [64, 16 * 1024];

export interface WsBenchOptions extends section.SectionArgs {
  /** Seconds per load run (one per config, size and round). */
  readonly seconds: number;
  readonly connections: number;
  /** Messages each socket keeps in flight. */
  readonly inflight: number;
  readonly sizes: readonly number[];
}

/** What bench/ws_load.ts prints (latencies in µs). */
export interface WsLoadResult {
  readonly messages: number;
  readonly perSecond: number;
  readonly mismatched: number;
  readonly lost: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface WsRun extends WsLoadResult, section.SectionRun {
  readonly size: number;
  /** CPU µs per echoed message of the config's process trees (0 for direct). */
  readonly cpuMicrosPerMessage: number;
}

export interface WsBenchResults extends section.SectionResults<WsRun> {
  readonly failed: readonly section.FailedRun[];
  readonly connections: number;
  readonly inflight: number;
}

/** A WebSocket config's sidecar on `engine`, a route with `upgrades: [websocket]`. */
function wsSidecar(engine: 'strict' | 'uws'): section.SidecarProtocol {
  return {
    source: 'bench/lib/websocket.ts',
    listenerName: 'ws',
    listenerLines: [`engine: ${engine}`, 'routes: [{match: {path_prefix: /}, cluster: up, upgrades: [websocket]}]'],
    clusterLines: [],
  };
}

/** The strict engine tunnels the bytes unchanged; the uws engine ends the client's WebSocket in uWS and re-encodes each message upstream. */
export const WS_SIDECAR = wsSidecar('strict');

/** nginx as a WebSocket proxy: HTTP/1.1 to the upstream with Upgrade/Connection passed on, 1 worker, no access log. */
export function nginxWsConfig(dir: string, listenPort: number, upstreamPort: number): string {
  return nginxFile(
    'bench/lib/websocket.ts',
    dir,
    `  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
    }
  }
`,
  );
}

/** One message echoed through the config; null when it comes back whole, else what went wrong. */
export function probeWs(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    const timer = setTimeout(() => finish('probe: no echo within 5 s'), 5000);
    function finish(problem: string | null): void {
      clearTimeout(timer);
      ws.terminate();
      resolve(problem);
    }
    ws.once('unexpected-response', (_req, res) => finish(`probe: upgrade answered ${res.statusCode}`));
    ws.once('error', (e) => finish(`probe failed: ${e.message}`));
    ws.once('open', () => ws.send('probe'));
    ws.once('message', (data: Buffer) => {
      const echo = data.toString();
      finish(echo === 'probe' ? null : `probe: echo was ${JSON.stringify(echo.slice(0, 80))}`);
    });
  });
}

function startTargets(opts: WsBenchOptions, dir: string, upstreamPort: number, nginx: ToolStatus | undefined): Promise<section.SectionTargets> {
  return section.startSectionConfigs({
    repoRoot: opts.repoRoot,
    dir,
    upstreamPort,
    sidecar: WS_SIDECAR,
    probe: probeWs,
    direct: 'the ws echo upstream itself (CPU column: 0 by definition)',
    one: { name: 'outrigger-ws-1w', description: 'one sidecar, 1 worker: strict engine, route with `upgrades: [websocket]` → the upstream' },
    variants: [
      {
        name: 'outrigger-ws-uws-1w',
        description: "one sidecar, 1 worker: uws engine (the client's WebSocket ends in uWS; each message re-encoded as a masked frame to the upstream)",
        sidecar: wsSidecar('uws'),
      },
    ],
    mtls: {
      name: 'outrigger-ws-mtls',
      label: 'ws-mtls',
      description:
        'two sidecars, 1 worker each, strict engines: ws → client sidecar → mTLS (a connection per WebSocket) → server sidecar (tls: {mode: mtls}) → upstream. CPU = both trees',
    },
    peer: section.nginxPeer(
      'nginx-ws',
      nginx,
      dir,
      (version) => `${version}: 1 worker, proxy_http_version 1.1 with Upgrade/Connection passed on`,
      (nginxDir, port) => nginxWsConfig(nginxDir, port, upstreamPort),
    ),
  });
}

/** The load client's JSON line (its last line of output). */
export function parseWsLoad(text: string): WsLoadResult {
  const last = text.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as WsLoadResult;
  } catch {
    throw new Error(`unexpected ws_load output: ${text.slice(-300)}`);
  }
}

async function measure(t: section.SectionTarget, loadScript: string, opts: WsBenchOptions, size: number, round: number): Promise<WsRun> {
  const args = (seconds: number): string[] => [
    loadScript,
    `ws://127.0.0.1:${t.port}/`,
    String(opts.connections),
    String(opts.inflight),
    String(size),
    String(seconds),
  ];
  // Warm-up (JIT, buffers), not measured: long enough for TurboFan to come on.
  await section.runToEnd(process.execPath, args(JIT_WARMUP_S), 30_000);
  const before = sampleCpu(t.pids);
  const r = parseWsLoad(await section.runToEnd(process.execPath, args(opts.seconds), (opts.seconds + 30) * 1000));
  const micros = t.pids.length === 0 ? 0 : cpuMicrosBetween(before, sampleCpu(t.pids));
  return { ...r, config: t.name, round, size, cpuMicrosPerMessage: r.messages > 0 ? micros / r.messages : 0 };
}

export async function runWsBench(opts: WsBenchOptions): Promise<WsBenchResults> {
  const [nginx] = ensureTools(['nginx'], opts.install, opts.log);
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-ws-bench-'));
  const upstream = await section.startNodeUpstream(opts.repoRoot, 'ws-upstream', 'ws_server.js');
  const loadScript = join(opts.repoRoot, 'dist', 'bench', 'ws_load.js');
  const runs: WsRun[] = [];
  const failed: section.FailedRun[] = [];
  const { configs, skipped } = await section.runRounds(
    'ws',
    opts,
    () => startTargets(opts, dir, upstream.port, nginx),
    async (t, round) => {
      for (const size of opts.sizes) {
        const r = await section.recordFailure(failed, t.name, round, opts.log, () => measure(t, loadScript, opts, size, round));
        if (r === null) continue;
        opts.log(`ws round ${round} ${t.name} ${size} B: ${r.perSecond.toFixed(0)} msg/s, ${r.cpuMicrosPerMessage.toFixed(1)} µs CPU/msg, p99 ${r.p99} µs`);
        runs.push(r);
      }
    },
    { upstream: upstream.proc, dir },
  );
  return { configs, skipped, failed, connections: opts.connections, inflight: opts.inflight, runs };
}

const sizeLabel = (n: number): string => (n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`);

/** The markdown section: one table per message size, medians over rounds, CPU ÷ nginx-ws. */
export function renderWsMarkdown(r: WsBenchResults): string {
  const lines = [
    `## WebSocket echo (bench/ws_load.ts: ${r.connections} sockets × ${r.inflight} messages in flight; medians of ${section.roundsOf(r.runs)} rounds)`,
    '',
    '| size | config | messages/s | MB/s each way | CPU µs/message | × nginx-ws | round trip p50 µs | p99 µs | lost sockets / wrong echoes |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const size of [...new Set(r.runs.map((x) => x.size))]) {
    const by = (name: string): WsRun[] => r.runs.filter((x) => x.config === name && x.size === size);
    const med = (name: string, f: (x: WsRun) => number): number => section.medianOrNaN(by(name).map(f));
    const nginxCpu = med('nginx-ws', (x) => x.cpuMicrosPerMessage);
    for (const c of r.configs) {
      if (by(c.name).length === 0) continue;
      const rate = med(c.name, (x) => x.perSecond);
      const cpu = med(c.name, (x) => x.cpuMicrosPerMessage);
      const errors = `${by(c.name).reduce((a, x) => a + x.lost, 0)} / ${by(c.name).reduce((a, x) => a + x.mismatched, 0)}`;
      lines.push(
        `| ${sizeLabel(size)} | ${c.name} | ${rate.toFixed(0)} | ${((rate * size) / 1e6).toFixed(1)} | ${cpu.toFixed(1)} | ${c.name === 'direct' || !(nginxCpu > 0) ? '' : (cpu / nginxCpu).toFixed(2)} | ${med(c.name, (x) => x.p50)} | ${med(c.name, (x) => x.p99)} | ${errors} |`,
      );
    }
  }
  lines.push(...section.footnotes(r, r.failed));
  return `${lines.join('\n')}\n`;
}

// The configurations a bench run compares. Each starts as its own process tree in front of the
// one shared upstream, and is checked with one real request before it is measured; a config
// that cannot start is returned as skipped with the reason (never silently dropped). Every
// outrigger process keeps the admin address and token file of its ready line, so the session can
// read GET /stats (connections accepted per listener and worker) before it stops the config.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminFromReadyLine, type AdminAccess } from './admin.js';
import { checkPeerConfig, haproxyCommand, nginxCommand, type ToolStatus } from './peers.js';
import { freePort, startProcess, type Started } from './proc.js';

export type TargetKind = 'direct' | 'outrigger' | 'outrigger-mtls' | 'outrigger-pair' | 'nginx' | 'nginx-pair' | 'haproxy' | 'node-relay' | 'node-relay-pair';

export type ListenerEngine = 'uws' | 'node' | 'strict';

export interface TargetSpec {
  readonly name: string;
  readonly kind: TargetKind;
  /** outrigger: node.workers; outrigger-mtls: the server sidecar's (the client sidecar has 1). */
  readonly workers?: number;
  /**
   * outrigger: `listeners[].engine` of the plaintext listener, always written out (default here:
   * uws), so a change of outrigger's own default cannot silently swap what a config measures.
   * outrigger-mtls: the engine of the server sidecar's TLS listener (`node`, the default here, or
   * `strict`); the client sidecar's plaintext listener stays on uws.
   */
  readonly engine?: ListenerEngine;
  /**
   * outrigger-mtls: the protocol between the two sidecars (the client sidecar's cluster
   * `protocol`; the server's listener offers h2 and http/1.1 by ALPN). Default http1.
   */
  readonly hop?: 'http1' | 'http2';
  /**
   * outrigger-mtls: the client cluster's `pool.pipeline_depth` (HTTP/1.1 requests in flight on one
   * connection to the server sidecar; 1 = one at a time), written only when set, so that a config
   * without it measures outrigger's default.
   */
  readonly pipelineDepth?: number;
  /**
   * outrigger: the cluster's `pool.pipeline_plaintext` (GETs pipelined to the upstream app; the
   * default, `loopback`, pipelines to the bench upstream on 127.0.0.1), written only when set, so
   * that a config without it measures outrigger's default.
   */
  readonly pipelinePlaintext?: boolean;
}

export interface RunningTarget {
  readonly spec: TargetSpec;
  /** Base URL (no trailing slash) that load goes to. */
  readonly baseUrl: string;
  /** Roots of the process trees whose CPU and RSS are the config's cost ([] for direct). */
  readonly pids: readonly number[];
  /**
   * When the config is several processes (outrigger-mtls: client and server sidecar), each
   * tree by name, so their CPU is also accounted one by one (the config's CPU is the sum).
   */
  readonly parts?: readonly { readonly name: string; readonly pid: number }[];
  /** The admin API of every outrigger process of the config, by part name (the config's name when single). */
  readonly admin?: readonly AdminAccess[];
  readonly description: string;
  stop(): Promise<void>;
}

export type StartResult = { readonly ok: true; readonly target: RunningTarget } | { readonly ok: false; readonly reason: string };

export interface TargetContext {
  readonly repoRoot: string;
  readonly tmpDir: string;
  readonly upstreamPort: number;
  readonly tools: ReadonlyMap<string, ToolStatus>;
}

/**
 * The two-sidecar path of issue 13's fast hop, all with the server sidecar on the strict engine:
 * over mTLS with outrigger's default pipelining between the sidecars, the same with
 * `pipeline_depth: 1` (one request per connection at a time), and `outrigger-pair-plain`, the two
 * sidecars over plaintext HTTP/1.1 (the yardstick of issue 13's "≤ 1.3× two plaintext sidecars"),
 * two nginx in series: what two proxies in a row add on this machine (the floor for the p99
 * added at a fixed rate, which on 2 cores is mostly time spent waiting for a CPU), and two Node
 * TCP relays in series (bench/node_relay.ts): what two Node processes in a row add, parsing nothing.
 */
export const HOP_TARGETS: readonly TargetSpec[] = [
  { name: 'outrigger-mtls-strict', kind: 'outrigger-mtls', workers: 1, engine: 'strict' },
  { name: 'outrigger-mtls-strict-depth1', kind: 'outrigger-mtls', workers: 1, engine: 'strict', pipelineDepth: 1 },
  { name: 'outrigger-pair-plain', kind: 'outrigger-pair', workers: 1, engine: 'strict' },
  { name: 'nginx-pair', kind: 'nginx-pair' },
  { name: 'node-relay-pair', kind: 'node-relay-pair' },
];

/**
 * outrigger-strict-1w with `pool.pipeline_plaintext: false`: one request per connection to the
 * upstream at a time, the default config before 2026-12-07 (and what the default does for an app
 * that is not on loopback).
 */
export const UNPIPELINED_TARGET: TargetSpec = {
  name: 'outrigger-strict-1w-unpipelined',
  kind: 'outrigger',
  workers: 1,
  engine: 'strict',
  pipelinePlaintext: false,
};

/**
 * The default set: direct; outrigger with 1 worker on each listener engine (and on strict with
 * pool.pipeline_plaintext: false) and with N workers
 * (uws, and strict, the default engine, whose listeners count accepted connections per worker);
 * the mTLS shape with a server sidecar of 1 and of N workers, the fast hop's pipelined, depth-1
 * and plaintext pairs (HOP_TARGETS); nginx; haproxy.
 */
export function defaultTargets(workersN: number): TargetSpec[] {
  return [
    { name: 'direct', kind: 'direct' },
    { name: 'outrigger-1w', kind: 'outrigger', workers: 1, engine: 'uws' },
    { name: 'outrigger-node-1w', kind: 'outrigger', workers: 1, engine: 'node' },
    { name: 'outrigger-strict-1w', kind: 'outrigger', workers: 1, engine: 'strict' },
    UNPIPELINED_TARGET,
    { name: `outrigger-${workersN}w`, kind: 'outrigger', workers: workersN, engine: 'uws' },
    { name: `outrigger-strict-${workersN}w`, kind: 'outrigger', workers: workersN, engine: 'strict' },
    { name: 'outrigger-mtls', kind: 'outrigger-mtls', workers: 1, engine: 'node' },
    { name: `outrigger-mtls-${workersN}w`, kind: 'outrigger-mtls', workers: workersN, engine: 'node' },
    ...HOP_TARGETS,
    { name: `outrigger-mtls-strict-${workersN}w`, kind: 'outrigger-mtls', workers: workersN, engine: 'strict' },
    { name: 'outrigger-mtls-strict-h2', kind: 'outrigger-mtls', workers: 1, engine: 'strict', hop: 'http2' },
    { name: 'nginx', kind: 'nginx' },
    { name: 'haproxy', kind: 'haproxy' },
    { name: 'node-relay', kind: 'node-relay' },
  ];
}

export function outriggerCli(repoRoot: string): string {
  return join(repoRoot, 'dist', 'src', 'cli', 'main.js');
}

export function outriggerConfigYaml(opts: {
  workers: number;
  engine?: ListenerEngine;
  listenPort: number;
  upstreamPort: number;
  adminPort: number;
  /** The cluster's pool.pipeline_plaintext, written only when given (the default pipelines GETs to the upstream on 127.0.0.1). */
  pipelinePlaintext?: boolean;
}): string {
  return `# generated by outrigger bench/lib/targets.ts
node: {workers: ${opts.workers}}
admin: {address: 127.0.0.1:${opts.adminPort}}
listeners:
  - name: bench
    address: 127.0.0.1:${opts.listenPort}
    engine: ${opts.engine ?? 'uws'}
    routes: [{match: {path_prefix: /}, cluster: up}]
clusters:
  - name: up
    endpoints: [{address: 127.0.0.1:${opts.upstreamPort}}]${opts.pipelinePlaintext === undefined ? '' : `\n    pool: {pipeline_plaintext: ${opts.pipelinePlaintext}}`}
`;
}

export const MTLS_TRUST_DOMAIN = 'bench.local';
export const MTLS_CLIENT_ID = `spiffe://${MTLS_TRUST_DOMAIN}/ns/bench/sa/client`;
export const MTLS_SERVER_ID = `spiffe://${MTLS_TRUST_DOMAIN}/ns/bench/sa/server`;
/**
 * The client sidecar's pool to the server sidecar (`pool.connections_per_worker`, outrigger's
 * default written out): wrk's 50 connections keep up to 50 requests in flight, so the pool opens
 * up to 50 mTLS connections and a server sidecar with 2 workers gets connections on both
 * (SO_REUSEPORT spreads them by hash; GET /stats on the server counts them per worker).
 */
export const MTLS_CLIENT_POOL_CONNECTIONS = 64;

/** JSON-quoted scalar, valid YAML flow scalar for any path. */
const q = (s: string): string => JSON.stringify(s);

/** The node and tls lines of a sidecar of the pair: its identity and the bench CA (none in the plaintext pair). */
function pairNodeYaml(workers: number, caDir: string | null, identity: string): string {
  return caDir === null ? `node: {workers: ${workers}}` : `node: {workers: ${workers}, identity: ${identity}}\ntls: {ca: {dir: ${q(caDir)}}}`;
}

/**
 * The server sidecar of outrigger-mtls: an inbound listener that requires and verifies a client
 * certificate (`tls: {mode: mtls}`, node:https on every worker, each on its own SO_REUSEPORT
 * socket), in front of the bench upstream. `caDir: null`: the server of outrigger-pair-plain, the
 * same listener in plaintext.
 */
export function mtlsServerConfigYaml(opts: {
  caDir: string | null;
  listenPort: number;
  upstreamPort: number;
  workers?: number;
  engine?: 'node' | 'strict';
}): string {
  return `# generated by outrigger bench/lib/targets.ts (two sidecars, server sidecar)
${pairNodeYaml(opts.workers ?? 1, opts.caDir, MTLS_SERVER_ID)}
admin: {address: 127.0.0.1:0}
listeners:
  - name: inbound
    address: 127.0.0.1:${opts.listenPort}
    engine: ${opts.engine ?? 'node'}${opts.caDir === null ? '' : '\n    tls: {mode: mtls}'}
    routes: [{match: {path_prefix: /}, cluster: up}]
clusters:
  - name: up
    endpoints: [{address: 127.0.0.1:${opts.upstreamPort}}]
`;
}

/**
 * The client sidecar of outrigger-mtls: a plaintext listener (where wrk sends; engine uws,
 * written out like outrigger-1w's) whose cluster is the server sidecar, reached over pooled
 * mTLS connections that must present the server's ID, `pipelineDepth` requests at a time on each
 * when given. `caDir: null`: the client of outrigger-pair-plain, the same cluster in plaintext,
 * with `pipeline_plaintext: false`: two sidecars are on two hosts, where the default (loopback)
 * would not pipeline between them, though on this machine the server sidecar is on 127.0.0.1.
 */
export function mtlsClientConfigYaml(opts: {
  caDir: string | null;
  listenPort: number;
  serverPort: number;
  hop?: 'http1' | 'http2';
  pipelineDepth?: number;
}): string {
  const depth = opts.pipelineDepth === undefined ? '' : `, pipeline_depth: ${opts.pipelineDepth}`;
  return `# generated by outrigger bench/lib/targets.ts (two sidecars, client sidecar)
${pairNodeYaml(1, opts.caDir, MTLS_CLIENT_ID)}
admin: {address: 127.0.0.1:0}
listeners:
  - name: outbound
    address: 127.0.0.1:${opts.listenPort}
    engine: uws
    routes: [{match: {path_prefix: /}, cluster: server}]
clusters:
  - name: server${opts.caDir === null ? '' : `\n    tls: {mode: mtls, identity: ${MTLS_SERVER_ID}}`}
    protocol: ${opts.hop ?? 'http1'}
    pool: {connections_per_worker: ${MTLS_CLIENT_POOL_CONNECTIONS}${depth}${opts.caDir === null ? ', pipeline_plaintext: false' : ''}}
    endpoints: [{address: 127.0.0.1:${opts.serverPort}}]
`;
}

/** One GET through the config; the reason when it does not answer 200 "hello world". */
export async function probe(baseUrl: string): Promise<string | null> {
  try {
    const res = await fetch(`${baseUrl}/`, { signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    if (res.status !== 200 || body !== 'hello world') return `probe GET / answered ${res.status} ${JSON.stringify(body.slice(0, 120))}`;
    return null;
  } catch (e) {
    return `probe GET / failed: ${(e as Error).message}`;
  }
}

/** What a started config adds to its process list: per-process parts and admin APIs. */
interface TargetExtras {
  readonly parts?: readonly { name: string; pid: number }[];
  readonly admin?: readonly AdminAccess[];
}

async function withProbe(spec: TargetSpec, procs: readonly Started[], baseUrl: string, description: string, extras: TargetExtras = {}): Promise<StartResult> {
  const problem = await probe(baseUrl);
  const stopAll = async (): Promise<void> => {
    // Front to back: the process wrk talks to first, so nothing is left retrying a stopped peer.
    for (const p of [...procs].reverse()) await p.stop();
  };
  if (problem !== null) {
    const tails = procs
      .map((p) => {
        const tail = p.output().trim().split('\n').slice(-10).join('\n');
        return tail ? `${procs.length > 1 ? `[${p.name}] ` : ''}${tail}` : '';
      })
      .filter((t) => t !== '')
      .join('\n');
    await stopAll();
    return { ok: false, reason: `${problem}${tails ? `; output: ${tails}` : ''}` };
  }
  return {
    ok: true,
    target: {
      spec,
      baseUrl,
      pids: procs.map((p) => p.pid),
      ...(extras.parts !== undefined ? { parts: extras.parts } : {}),
      ...(extras.admin !== undefined && extras.admin.length > 0 ? { admin: extras.admin } : {}),
      description,
      stop: stopAll,
    },
  };
}

/** `outrigger ca init` into caDir; the reason when it fails. */
export function initBenchCa(cli: string, caDir: string): string | null {
  const r = spawnSync(process.execPath, [cli, 'ca', 'init', '--dir', caDir, '--trust-domain', MTLS_TRUST_DOMAIN], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.error !== undefined) return `ca init failed: ${r.error.message}`;
  if (r.status !== 0) return `ca init exited ${String(r.status ?? r.signal)}: ${`${r.stdout}${r.stderr}`.trim().slice(-400)}`;
  return null;
}

const READY = /"msg"\s*:\s*"ready"/;

/** `outrigger run -c conf` until its ready line (throws with the output when it does not come). */
export function runOutrigger(name: string, cli: string, conf: string, dir: string): Promise<Started> {
  return startProcess({ name, cmd: process.execPath, args: [cli, 'run', '-c', conf], cwd: dir, readyLine: READY, timeoutMs: 30_000 });
}

/** The admin API named by a process's ready line, as `part` (none when the line has no admin address). */
function adminOf(part: string, proc: Started, dir: string): AdminAccess[] {
  const a = adminFromReadyLine(part, proc.readyLineText, dir);
  return a === null ? [] : [a];
}

/** What a two-sidecar config is: the hop between the sidecars and the server sidecar's listener. */
function pairDescription(spec: TargetSpec, serverWorkers: number, engine: 'node' | 'strict', mtls: boolean): string {
  const hop = spec.hop ?? 'http1';
  const over = mtls ? 'mTLS' : 'plaintext';
  // Pipelining is agreed by ALPN (net/alpn.ts), so a plaintext hop carries one request at a time.
  const depth = !mtls
    ? 'one request at a time'
    : spec.pipelineDepth === undefined
      ? "outrigger's default pipeline_depth"
      : `pipeline_depth ${spec.pipelineDepth}`;
  const between =
    hop === 'http2'
      ? `HTTP/2 over ${over} (streams multiplexed on as few connections as the server's max_concurrent_streams allows, ≤ ${MTLS_CLIENT_POOL_CONNECTIONS})`
      : `pooled HTTP/1.1 over ${over} (≤ ${MTLS_CLIENT_POOL_CONNECTIONS} connections, ${depth})`;
  const listener = `${mtls ? 'tls: {mode: mtls}' : 'plaintext'}, ${engine === 'strict' ? `engine: strict (${mtls ? 'node:tls' : 'net'} + outrigger's HTTP/1.1 server)` : 'node:https'}`;
  return `two sidecars: wrk → client (plaintext listener on uws, 1 worker) → ${between} → server (inbound listener ${listener}, ${serverWorkers} worker${serverWorkers === 1 ? '' : 's'}) → upstream${mtls ? '; embedded CA, trust domain bench.local' : ''}. CPU = both process trees (compare with 2 × outrigger-1w)`;
}

/** The two sidecars in series, over mTLS (outrigger-mtls*) or over plaintext (outrigger-pair*). */
async function startPair(spec: TargetSpec, ctx: TargetContext, dir: string, mtls: boolean): Promise<StartResult> {
  const cli = outriggerCli(ctx.repoRoot);
  if (!existsSync(cli)) return { ok: false, reason: `${cli} not found (outrigger CLI not built yet; run npm run build)` };
  const caDir = mtls ? join(dir, 'ca') : null;
  const caProblem = caDir === null ? null : initBenchCa(cli, caDir);
  if (caProblem !== null) return { ok: false, reason: caProblem };
  const serverWorkers = spec.workers ?? 1;
  const serverPort = await freePort();
  const clientPort = await freePort();
  const serverConf = join(dir, 'server.yaml');
  const clientConf = join(dir, 'client.yaml');
  const serverEngine = spec.engine === 'strict' ? 'strict' : 'node';
  writeFileSync(
    serverConf,
    mtlsServerConfigYaml({ caDir, listenPort: serverPort, upstreamPort: ctx.upstreamPort, workers: serverWorkers, engine: serverEngine }),
  );
  writeFileSync(
    clientConf,
    mtlsClientConfigYaml({
      caDir,
      listenPort: clientPort,
      serverPort,
      hop: spec.hop ?? 'http1',
      ...(spec.pipelineDepth !== undefined ? { pipelineDepth: spec.pipelineDepth } : {}),
    }),
  );
  let server: Started;
  try {
    server = await runOutrigger(`${spec.name}/server`, cli, serverConf, dir);
  } catch (e) {
    return { ok: false, reason: `server sidecar did not start: ${(e as Error).message}` };
  }
  let client: Started;
  try {
    client = await runOutrigger(`${spec.name}/client`, cli, clientConf, dir);
  } catch (e) {
    await server.stop();
    return { ok: false, reason: `client sidecar did not start: ${(e as Error).message}` };
  }
  return withProbe(spec, [server, client], `http://127.0.0.1:${clientPort}`, pairDescription(spec, serverWorkers, serverEngine, mtls), {
    parts: [
      { name: 'client', pid: client.pid },
      { name: 'server', pid: server.pid },
    ],
    admin: [...adminOf('client', client, dir), ...adminOf('server', server, dir)],
  });
}

async function startOutrigger(spec: TargetSpec, ctx: TargetContext, dir: string): Promise<StartResult> {
  const cli = outriggerCli(ctx.repoRoot);
  if (!existsSync(cli)) return { ok: false, reason: `${cli} not found (outrigger CLI not built yet; run npm run build)` };
  const workers = spec.workers ?? 1;
  const listenPort = await freePort();
  const adminPort = await freePort();
  const conf = join(dir, 'outrigger.yaml');
  writeFileSync(
    conf,
    outriggerConfigYaml({
      workers,
      ...(spec.engine !== undefined ? { engine: spec.engine } : {}),
      listenPort,
      upstreamPort: ctx.upstreamPort,
      adminPort,
      ...(spec.pipelinePlaintext !== undefined ? { pipelinePlaintext: spec.pipelinePlaintext } : {}),
    }),
  );
  try {
    const proc = await runOutrigger(spec.name, cli, conf, dir);
    const engine = spec.engine ?? 'uws';
    const pipelined = spec.pipelinePlaintext === undefined ? '' : `, pool.pipeline_plaintext: ${spec.pipelinePlaintext}`;
    return withProbe(
      spec,
      [proc],
      `http://127.0.0.1:${listenPort}`,
      `node dist/src/cli/main.js run, node.workers=${workers}, listener engine ${engine}${pipelined}`,
      {
        admin: adminOf(spec.name, proc, dir),
      },
    );
  } catch (e) {
    return { ok: false, reason: `did not start: ${(e as Error).message}` };
  }
}

/** Two nginx in series, plaintext: wrk → front → back → upstream. */
async function startNginxPair(spec: TargetSpec, ctx: TargetContext, dir: string): Promise<StartResult> {
  const tool = ctx.tools.get('nginx');
  if (tool?.path == null) return { ok: false, reason: tool?.reason ?? 'nginx not available' };
  const backPort = await freePort();
  const frontPort = await freePort();
  const parts = [
    { name: 'back', listenPort: backPort, upstreamPort: ctx.upstreamPort },
    { name: 'front', listenPort: frontPort, upstreamPort: backPort },
  ];
  const procs: Started[] = [];
  for (const part of parts) {
    const partDir = join(dir, part.name);
    const files = nginxCommand({ nginxPath: tool.path, dir: partDir, listenPort: part.listenPort, upstreamPort: part.upstreamPort });
    const bad = checkPeerConfig(files, 'nginx');
    try {
      if (bad !== null) throw new Error(`config check failed: ${bad}`);
      procs.push(await startProcess({ name: `${spec.name}/${part.name}`, cmd: files.cmd, args: files.args, cwd: partDir, readyPort: part.listenPort }));
    } catch (e) {
      for (const p of procs) await p.stop();
      return { ok: false, reason: `${part.name} nginx did not start: ${(e as Error).message}` };
    }
  }
  const [back, front] = procs as [Started, Started];
  return withProbe(
    spec,
    procs,
    `http://127.0.0.1:${frontPort}`,
    `two nginx in series (${tool.version ?? 'nginx'}, 1 worker each, as the nginx config): wrk → front → back → upstream, plaintext. CPU = both`,
    {
      parts: [
        { name: 'front', pid: front.pid },
        { name: 'back', pid: back.pid },
      ],
    },
  );
}

/** The Node TCP relay (bench/node_relay.ts), one or two in series: wrk → relay [→ relay] → upstream. */
async function startNodeRelays(spec: TargetSpec, ctx: TargetContext, dir: string, count: 1 | 2): Promise<StartResult> {
  const script = join(ctx.repoRoot, 'dist', 'bench', 'node_relay.js');
  if (!existsSync(script)) return { ok: false, reason: `${script} not found (run npm run build)` };
  const procs: Started[] = [];
  let upstreamPort = ctx.upstreamPort;
  for (const name of count === 1 ? [spec.name] : ['back', 'front']) {
    try {
      const proc = await startProcess({
        name: count === 1 ? name : `${spec.name}/${name}`,
        cmd: process.execPath,
        args: [script, '0', String(upstreamPort)],
        cwd: dir,
        readyLine: /"msg":"listening"/,
        timeoutMs: 15_000,
      });
      procs.push(proc);
      upstreamPort = (JSON.parse(proc.readyLineText ?? '') as { port: number }).port;
    } catch (e) {
      for (const p of procs) await p.stop();
      return { ok: false, reason: `node relay ${name} did not start: ${(e as Error).message}` };
    }
  }
  const what =
    'Node TCP relay (bench/node_relay.ts: one upstream connection per client connection, bytes copied both ways, no HTTP parsing; the floor of a Node proxy)';
  if (count === 1) return withProbe(spec, procs, `http://127.0.0.1:${upstreamPort}`, `${what}, node ${process.version}`);
  const [back, front] = procs as [Started, Started];
  return withProbe(spec, procs, `http://127.0.0.1:${upstreamPort}`, `two of the ${what} in series: wrk → front → back → upstream. CPU = both`, {
    parts: [
      { name: 'front', pid: front.pid },
      { name: 'back', pid: back.pid },
    ],
  });
}

export async function startTarget(spec: TargetSpec, ctx: TargetContext): Promise<StartResult> {
  const dir = join(ctx.tmpDir, spec.name);
  mkdirSync(dir, { recursive: true });
  switch (spec.kind) {
    case 'direct':
      return withProbe(spec, [], `http://127.0.0.1:${ctx.upstreamPort}`, 'the upstream itself, no proxy (CPU column: 0 by definition)');
    case 'outrigger-mtls':
      return startPair(spec, ctx, dir, true);
    case 'outrigger-pair':
      return startPair(spec, ctx, dir, false);
    case 'outrigger':
      return startOutrigger(spec, ctx, dir);
    case 'nginx-pair':
      return startNginxPair(spec, ctx, dir);
    case 'node-relay':
      return startNodeRelays(spec, ctx, dir, 1);
    case 'node-relay-pair':
      return startNodeRelays(spec, ctx, dir, 2);
    case 'nginx':
    case 'haproxy': {
      const tool = ctx.tools.get(spec.kind);
      if (tool?.path == null) return { ok: false, reason: tool?.reason ?? `${spec.kind} not available` };
      const listenPort = await freePort();
      const files =
        spec.kind === 'nginx'
          ? nginxCommand({ nginxPath: tool.path, dir, listenPort, upstreamPort: ctx.upstreamPort })
          : haproxyCommand({ haproxyPath: tool.path, dir, listenPort, upstreamPort: ctx.upstreamPort });
      const bad = checkPeerConfig(files, spec.kind);
      if (bad !== null) return { ok: false, reason: `config check failed: ${bad}` };
      try {
        const proc = await startProcess({ name: spec.name, cmd: files.cmd, args: files.args, cwd: dir, readyPort: listenPort });
        const description =
          spec.kind === 'nginx'
            ? `${tool.version ?? 'nginx'}: 1 worker, no master, upstream keepalive 64, HTTP/1.1, access_log off`
            : `${tool.version ?? 'haproxy'}: nbthread 1, mode http, http-reuse always, no logging`;
        return withProbe(spec, [proc], `http://127.0.0.1:${listenPort}`, description);
      } catch (e) {
        return { ok: false, reason: `did not start: ${(e as Error).message}` };
      }
    }
  }
}

/** Starts the shared upstream (dist/bench/upstream/server.js) as its own process. */
export async function startUpstream(repoRoot: string, kind: 'uws' | 'node' = 'uws'): Promise<{ proc: Started; port: number }> {
  const script = join(repoRoot, 'dist', 'bench', 'upstream', kind === 'uws' ? 'server.js' : 'node_server.js');
  const proc = await startProcess({
    name: 'upstream',
    cmd: process.execPath,
    args: [script, '0'],
    cwd: repoRoot,
    readyLine: /"msg":"listening"/,
    timeoutMs: 15_000,
  });
  const line = proc.readyLineText ?? '';
  const port = (JSON.parse(line) as { port: number }).port;
  return { proc, port };
}

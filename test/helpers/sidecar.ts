// The test-helper module: tests import everything from here. This file starts the built CLI
// (`dist/src/cli/main.js run`) as a real process on a config file the test owns (it may rewrite
// it and send signals); the rest lives beside it, one concern a file, and is re-exported:
//   live.ts      closeAll(), tempDir(), listenTracked(), the bounded waits (waitFor, eventually: vi.waitFor)
//   upstream.ts  the one fake upstream (modes, health checks, TLS, retry meter), deadPort()
//   raw.ts       raw-socket upstream and clients that send exact bytes
//   clients.ts   node:http requests, the admin API, keep-alive load
//   configs.ts   config builders (plain proxy, routes and clusters, both sides of an mTLS mesh, an mTLS server)
//   mtls.ts      a throw-away CA, leaves, tls sources, direct mTLS clients
//   signer.ts    `outrigger ca serve`, token files, CSRs, a fake signer, process memory scan
//   views.ts     GET /clusters, GET /certs, /metrics parsing, access log lines
// Everything binds 127.0.0.1, every wait is bounded, and `closeAll()` (afterAll/afterEach)
// stops and removes everything the helpers started.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { Ca } from '../../src/tls/ca.js';
import { clientSideConfig, serverSideConfig, type ClientSideOptions, type Config, type ServerSideOptions } from './configs.js';
import { tempDir } from './live.js';
import { API, caSource, newCa, WEB, type TlsSource } from './mtls.js';
import { signerSource, startSignerWithTokens, writeTokenFile, type SignerProcess } from './signer.js';
import { spawnCli, type CliProcess, type LogEntry } from './process.js';
import { startApp, type Upstream } from './upstream.js';

export * from './clients.js';
export * from './configs.js';
export * from './live.js';
export * from './mtls.js';
export * from './raw.js';
export * from './signer.js';
export * from './upstream.js';
export * from './views.js';
export { CLI, ROOT, spawnCli, type CliProcess, type LogEntry } from './process.js';

export interface SidecarOptions {
  /** Sets node.workers (default 1 when the config does not say). */
  workers?: number;
  env?: Record<string, string>;
  /** How long to wait for the ready line (default 20 s). */
  readyTimeoutMs?: number;
  /** Write the config file as YAML (default JSON). */
  yaml?: boolean;
  /** Directory for the config file (default: a fresh temp dir). */
  dir?: string;
  /** Run inside this network namespace (test/helpers/netns.ts): its admin API and listeners are reachable only from inside it. */
  netns?: { readonly prefix: readonly string[] };
  /** Flags for node itself, before the CLI's path (`--trace-opt`). */
  nodeArgs?: readonly string[];
  /** stdout goes to a file in the config's directory (for V8's trace flags: spawnCli says why). */
  stdoutToFile?: boolean;
}

export interface Sidecar extends CliProcess {
  /** The config file the sidecar runs from (rewrite it to test the file watch). */
  readonly file: string;
  readonly dir: string;
  /** `http://127.0.0.1:ADMINPORT` (from the ready line). */
  readonly admin: string;
  /** The admin bearer token, read from the ready line's `admin_token_file`; adminCall sends it. */
  readonly token: string;
  /** The same token (the e2e tests' name for it). */
  readonly adminToken: string;
  /** The file the token was read from. */
  readonly tokenFile: string;
  /** Port of a listener (default: `main` when there is one, else the first). */
  port(listener?: string): number;
  /** `http://127.0.0.1:PORT${path}` on a listener. */
  url(pathAndQuery: string, listener?: string): string;
}

export type ConfigInput = string | Config;

/** Result of a process that exits before it is ready (e.g. refused at start). */
export interface EarlyExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function configText(cfg: Config, yaml: boolean): string {
  return yaml ? toYaml(cfg) : `${JSON.stringify(cfg, null, 2)}\n`;
}

/** Replaces the config file atomically (write a temp file, rename over), as editors do. */
export function rewriteConfig(sc: Pick<Sidecar, 'file'>, cfg: Config | string, yaml = false): void {
  const text = typeof cfg === 'string' ? cfg : configText(cfg, yaml);
  const tmp = `${sc.file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, sc.file);
}

function toConfigObject(config: ConfigInput): Config {
  if (typeof config !== 'string') return structuredClone(config);
  const obj = parseYaml(config) as unknown;
  if (obj === null || typeof obj !== 'object') throw new Error('config text does not parse to an object');
  return obj as Config;
}

/** Fills what a test sidecar must not leave to the defaults: one worker, a short drain, an admin port of its own. */
function withTestDefaults(config: ConfigInput, workers: number | undefined): Config {
  const cfg = toConfigObject(config);
  const node = (cfg['node'] ??= {}) as Record<string, unknown>;
  if (workers !== undefined) node['workers'] = workers;
  node['workers'] ??= 1;
  node['drain_timeout_ms'] ??= 2000;
  // Never the default 127.0.0.1:15000: tests run next to each other and next to real sidecars.
  const admin = (cfg['admin'] ??= {}) as Record<string, unknown>;
  admin['address'] ??= '127.0.0.1:0';
  return cfg;
}

/** Writes `config` (with the tests' defaults: 1 worker, admin on port 0) to a file of its own. */
export function writeConfig(config: ConfigInput, opts: SidecarOptions): { dir: string; file: string } {
  const dir = opts.dir ?? tempDir('outrigger-sidecar-');
  const file = path.join(dir, opts.yaml === true ? 'config.yaml' : 'config.json');
  writeFileSync(file, configText(withTestDefaults(config, opts.workers), opts.yaml === true));
  return { dir, file };
}

/** Starts a sidecar and resolves on its ready line; stopped by closeAll(). */
export async function startSidecar(config: ConfigInput, opts: SidecarOptions = {}): Promise<Sidecar> {
  const { dir, file } = writeConfig(config, opts);
  const p = spawnCli(['run', '-c', file], opts.env, opts.netns?.prefix, opts.nodeArgs, opts.stdoutToFile === true ? path.join(dir, 'stdout') : undefined);
  let ready: LogEntry;
  try {
    ready = await p.waitForLog((e) => e.msg === 'ready', opts.readyTimeoutMs ?? 20_000);
  } catch (e) {
    await p.stop();
    throw e;
  }
  const listeners = (ready['listeners'] as Array<{ name: string; address: string }> | undefined) ?? [];
  const ports = new Map(listeners.map((l) => [l.name, Number(l.address.slice(l.address.lastIndexOf(':') + 1))]));
  const tokenFile = String(ready['admin_token_file']);
  const token = readFileSync(tokenFile, 'utf8').trim();
  const port = (name?: string): number => {
    const p = ports.get(name ?? (ports.has('main') ? 'main' : (listeners[0]?.name ?? '')));
    if (p === undefined) throw new Error(`no listener ${name ?? '(first)'} in the ready line: ${JSON.stringify(listeners)}`);
    return p;
  };
  return {
    ...p,
    file,
    dir,
    admin: `http://${String(ready['admin'])}`,
    token,
    adminToken: token,
    tokenFile,
    port,
    url: (pathAndQuery, listener) => `http://127.0.0.1:${port(listener)}${pathAndQuery}`,
  };
}

/** Runs the CLI on `config` and waits for it to exit (for configs refused at start). */
export async function runUntilExit(config: ConfigInput, timeoutMs = 15_000): Promise<EarlyExit> {
  const { file } = writeConfig(config, {});
  const p = spawnCli(['run', '-c', file]);
  const code = await p.exit(timeoutMs).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Log lines of worker restarts so far. */
export function restartLines(sc: Pick<Sidecar, 'entries'>): LogEntry[] {
  return sc.entries().filter((e) => e.msg === 'worker exited; restarting');
}

/** A CA, the local app, and a server-side sidecar whose `inbound` mTLS listener leads to the app. */
export interface MeshServer {
  readonly ca: Ca;
  readonly app: Upstream;
  readonly server: Sidecar;
  /** Port of the `inbound` listener. */
  readonly inbound: number;
}

/**
 * Starts a MeshServer: a fresh CA for `trustDomain` (default cluster.local) that the sidecar
 * issues its own certificates from (`ttlHours` long), with `serverSideConfig` options; `edit` may
 * change the config before the start.
 */
export async function startMeshServer(
  o: Omit<ServerSideOptions, 'tls' | 'app'> & { readonly trustDomain?: string; readonly ttlHours?: number; readonly edit?: (cfg: Config) => void } = {},
): Promise<MeshServer> {
  const { trustDomain, ttlHours, edit, ...side } = o;
  const ca = await newCa(trustDomain);
  const app = await startApp();
  const cfg = serverSideConfig({ ...side, tls: caSource(ca, ttlHours), app: app.address });
  edit?.(cfg);
  const server = await startSidecar(cfg);
  return { ca, app, server, inbound: server.port('inbound') };
}

/** Signer mode end to end: a CA, its signer, and two sidecars that get their certificates from it. */
export interface SignerPair {
  readonly ca: Ca;
  readonly signer: SignerProcess;
  /** The signer's tokens file (to start it again on the same address). */
  readonly tokensFile: string;
  readonly app: Upstream;
  /** API, `inbound` mTLS → app, 1 worker; its config and token file in `server.dir`. */
  readonly server: Sidecar;
  /** WEB, `outbound` → server; its config and token file in `client.dir`. */
  readonly client: Sidecar;
}

/**
 * Starts a sidecar in signer mode: its bootstrap `token` in a file in its own dir (`sc.dir`), its
 * certificates (`ttlHours` long) from `signer`, verified against `ca`; `config` builds the config
 * around that `tls:` source.
 */
export async function startSignerSidecar(
  o: { readonly signer: SignerProcess; readonly ca: Ca; readonly token: string; readonly ttlHours?: number },
  config: (tls: TlsSource) => Config,
): Promise<Sidecar> {
  const dir = tempDir('outrigger-sidecar-');
  const tls = signerSource(o.signer, o.ca, writeTokenFile(path.join(dir, 'bootstrap.token'), o.token), o.ttlHours);
  return startSidecar(config(tls), { dir });
}

/** Starts a SignerPair whose sidecars bootstrap with `tokens` (default: a token each, for WEB and API) and ask for `ttlHours` leaves. */
export async function startSignerPair(o: {
  readonly tokens?: { readonly web: string; readonly api: string };
  readonly ttlHours: number;
  readonly client?: Pick<ClientSideOptions, 'workers' | 'pool'>;
}): Promise<SignerPair> {
  const tokens = o.tokens ?? { web: 'web-bootstrap-token-0123456789', api: 'api-bootstrap-token-0123456789' };
  const ca = await newCa();
  const { signer, tokensFile } = await startSignerWithTokens(ca, [
    { token: tokens.web, identities: [WEB] },
    { token: tokens.api, identities: [API] },
  ]);
  const app = await startApp();
  const server = await startSignerSidecar({ signer, ca, token: tokens.api, ttlHours: o.ttlHours }, (tls) =>
    serverSideConfig({ tls, app: app.address, workers: 1 }),
  );
  const upstream = `127.0.0.1:${server.port('inbound')}`;
  const client = await startSignerSidecar({ signer, ca, token: tokens.web, ttlHours: o.ttlHours }, (tls) =>
    clientSideConfig({ workers: 1, ...o.client, tls, upstream }),
  );
  return { ca, signer, tokensFile, app, server, client };
}

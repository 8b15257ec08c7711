// `outrigger run`: loads the config, starts the supervisor (which spawns the workers) and the
// admin API, prints the `ready` line, reloads on config-file change and SIGHUP through the same
// path as PUT /config, and on SIGTERM/SIGINT or POST /drain drains in-flight requests and exits 0.

import { exitNow } from '../net/reuseport.js';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AdminServer } from '../admin/server.js';
import { ApiPolicy, isLoopbackHost } from '../admin/api_policy.js';
import { ConfigStore } from '../admin/config_store.js';
import { ensureGeneratedToken, readConfiguredToken, TokenError, type AdminToken } from '../admin/token.js';
import type { CompileOptions } from '../config/load.js';
import { formatProblems, loadConfigFile } from '../config/load.js';
import type { Snapshot } from '../config/types.js';
import { HealthChecker } from '../health/health_checker.js';
import { CertificateSource, certificateSourceOptions } from '../tls/rotation.js';
import { OutlierDetector } from '../health/outlier.js';
import { StatsAggregator } from '../stats/aggregate.js';
import { PortInUseError, Supervisor } from '../workers/supervisor.js';
import { createLogger } from './log.js';

export interface RunOptions {
  readonly file: string;
  readonly logLevel: string;
  readonly compile: CompileOptions;
}

const WATCH_DEBOUNCE_MS = 200;
/** Default admin.state_dir, relative to the config file's directory. */
const DEFAULT_STATE_DIR = '.outrigger';

export async function runSidecar(opts: RunOptions): Promise<number> {
  const log = createLogger(opts.logLevel);
  const loaded = await loadConfigFile(opts.file, opts.compile);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    return 2;
  }
  for (const w of loaded.warnings) log.warn({ path: w.path, line: w.line }, w.message);

  // The admin token (there always is one) and what configs sent through the admin API may name.
  const admin = loaded.admin;
  const rawAdmin = loaded.source.admin;
  const configFile = path.resolve(opts.file);
  const configDir = path.dirname(configFile);
  const stateDir = path.resolve(configDir, rawAdmin.state_dir ?? DEFAULT_STATE_DIR);
  let adminToken: AdminToken;
  try {
    if (admin.tokenFile !== null) {
      adminToken = readConfiguredToken(path.resolve(configDir, admin.tokenFile));
    } else if (!isLoopbackHost(admin.host)) {
      process.stderr.write(`outrigger: admin.address ${admin.address} is not loopback: set admin.token_file (the token remote callers send); a generated token is for local use only\n`);
      return 2;
    } else {
      adminToken = ensureGeneratedToken(stateDir);
    }
  } catch (e) {
    if (!(e instanceof TokenError)) throw e;
    const hint = admin.tokenFile === null ? ' (set admin.state_dir to a directory this user owns, or admin.token_file)' : '';
    process.stderr.write(`outrigger: admin token: ${e.message}${hint}\n`);
    return 2;
  }
  if (adminToken.warning !== null) log.warn({ file: adminToken.file }, adminToken.warning);
  const policy = new ApiPolicy({
    configFile,
    stateDir,
    tokenFile: adminToken.file,
    allowedDirs: (rawAdmin.allowed_dirs ?? [configDir, stateDir]).map((d) => path.resolve(configDir, d)),
    allowRemoteListeners: rawAdmin.allow_remote_listeners,
    cwd: process.cwd(),
  });

  const stats = new StatsAggregator();
  // Health checks run once per sidecar and outlier signals from all workers meet here; verdicts
  // are broadcast to every worker (see Supervisor.setEndpointState).
  const health = new HealthChecker((cluster, address, healthy) => {
    log.warn({ cluster, address, healthy }, healthy ? 'endpoint passes health checks again' : 'endpoint fails health checks');
    supervisor.setEndpointState(cluster, address, { healthy });
  });
  const outlier = new OutlierDetector((cluster, address, ejected) => {
    log.warn({ cluster, address, ejected }, ejected ? 'endpoint ejected (outlier detection)' : 'endpoint returns from ejection');
    supervisor.setEndpointState(cluster, address, { ejected });
  });
  const supervisor: Supervisor = new Supervisor({
    onOutcomes: (events) => {
      for (const [cluster, address, outcome] of events) outlier.record(cluster, address, outcome);
    },
    log,
    enableTestHooks: opts.compile.enableTestHooks,
    onStats: (_id, delta) => stats.apply(delta),
    onWorkerExit: (id) => {
      stats.forgetWorker(id);
      stats.incWorkerRestarts();
    },
    onWorkerStall: () => stats.incWorkerStalls(),
    onUnrecoverableStall: (id, stalledMs) => {
      // Node's exit would terminate the stuck worker and abort on its open uWS sockets: _exit
      // instead, after saying why on stderr too (the JSON log line above is written synchronously).
      process.stderr.write(`outrigger: worker ${id} stuck for ${stalledMs} ms while serving uws listeners; exiting (70) for the service manager to restart the sidecar\n`);
      exitNow(70);
    },
  });
  // This sidecar's certificate (files or embedded CA), loaded before any worker starts and pushed
  // to every worker on each rotation.
  let certs: CertificateSource | null = null;
  if (loaded.snapshot.tls !== null) {
    try {
      certs = await CertificateSource.open(
        certificateSourceOptions(loaded.snapshot.tls, loaded.snapshot.node.identity, path.dirname(path.resolve(opts.file))),
      );
    } catch (e) {
      process.stderr.write(`outrigger: tls: ${(e as Error).message}\n`);
      return 2;
    }
    const source = certs;
    supervisor.setMaterial(source.current());
    source.on('update', (m) => {
      supervisor.setMaterial(m);
      log.info({ identity: m.identity, serial: m.serial, not_after: m.notAfter.toISOString() }, 'certificate rotated');
    });
    source.on('error', (e) => log.error({ err: e.message }, 'certificate reload failed; the current one stays in force'));
  }

  let snapshot: Snapshot;
  try {
    snapshot = await supervisor.start(loaded.snapshot);
  } catch (e) {
    await certs?.close();
    if (e instanceof PortInUseError) {
      process.stderr.write(`outrigger: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  stats.declareSnapshot(snapshot);
  stats.setConfigVersion(snapshot.version);
  health.update(snapshot.clusters);
  outlier.update(snapshot.clusters);

  const store = new ConfigStore(
    {
      apply: async (next) => {
        const applied = await supervisor.apply(next);
        health.update(applied.clusters);
        outlier.update(applied.clusters);
        stats.declareSnapshot(applied);
        stats.setConfigVersion(applied.version);
        log.info({ version: applied.version }, 'config applied');
        return applied;
      },
    },
    { availableParallelism: opts.compile.availableParallelism, enableTestHooks: opts.compile.enableTestHooks },
    { snapshot, admin, source: loaded.source },
    `file ${opts.file}`,
    policy,
  );

  let draining = false;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  let watcher: FSWatcher | null = null;

  const adminServer = new AdminServer({
    store,
    stats,
    token: adminToken.token,
    boundHost: admin.host,
    // Not ready with an expired certificate: every mTLS handshake would fail.
    ready: () => !draining && supervisor.readyWorkers === store.snapshot.node.workers && (certs === null || certs.info().expires_in_s > 0),
    readyWarnings: () => {
      const w = certs?.warning() ?? null;
      return w === null ? [] : [w];
    },
    inspect: async () => {
      const view = await supervisor.inspect();
      const key = (c: string, a: string): string => `${c}\u0000${a}`;
      const hc = new Map(health.states().map((h) => [key(h.cluster, h.address), h]));
      const od = new Map(outlier.states().map((o) => [key(o.cluster, o.address), o]));
      return {
        ...view,
        clusters: view.clusters.map((c) => ({
          ...c,
          endpoints: c.endpoints.map((e) => {
            const h = hc.get(key(c.name, e.address));
            const o = od.get(key(c.name, e.address));
            return {
              ...e,
              health_check: h === undefined ? null : { healthy: h.healthy, consecutive_failures: h.consecutive_failures, last_checked: h.last_checked, last_error: h.last_error },
              outlier: o === undefined ? null : { ejected: o.ejected, ejections_total: o.ejections_total, ejected_until: o.ejected_until },
            };
          }),
        })),
      };
    },
    certs: () => (certs === null ? [] : [certs.info()]),
    drain: (reason) => stop(reason),
    setLogLevel: (level) => {
      log.level = level;
    },
    getLogLevel: () => log.level,
  });
  let adminPort: number;
  try {
    adminPort = await adminServer.listen(admin.host, admin.port);
  } catch (e) {
    process.stderr.write(`outrigger: admin.address ${admin.address}: cannot listen: ${(e as NodeJS.ErrnoException).code ?? e}\n`);
    await supervisor.stop();
    return 1;
  }

  // Config file changes and SIGHUP go through the same path as PUT /config.
  let lastText = await readFile(opts.file, 'utf8').catch(() => '');
  let reloadTimer: NodeJS.Timeout | null = null;
  const reloadFromFile = async (why: string): Promise<void> => {
    let text: string;
    try {
      text = await readFile(opts.file, 'utf8');
    } catch (e) {
      log.error({ file: opts.file, err: (e as Error).message }, 'config file unreadable; running config stays');
      return;
    }
    if (text === lastText && why === 'file change') return;
    lastText = text;
    const outcome = await store.apply({ text }, `${why} of ${opts.file}`, 'file');
    if (outcome.ok) log.info({ version: outcome.version, summary: outcome.summary }, 'config reloaded');
    else if (outcome.kind === 'invalid') log.error({ problems: outcome.problems }, 'config file is invalid; running config stays');
    else log.error({ err: outcome.error }, 'config apply failed; running config stays');
  };
  try {
    // Watch the directory: editors replace the file rather than write it in place.
    const base = path.basename(opts.file);
    watcher = watch(path.dirname(path.resolve(opts.file)), (_event, name) => {
      if (name !== base) return;
      if (reloadTimer !== null) clearTimeout(reloadTimer);
      reloadTimer = setTimeout(() => void reloadFromFile('file change'), WATCH_DEBOUNCE_MS);
    });
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'cannot watch the config file; use SIGHUP or PUT /config to reload');
  }
  process.on('SIGHUP', () => void reloadFromFile('SIGHUP'));

  log.info(
    {
      version: snapshot.version,
      workers: snapshot.node.workers,
      listeners: supervisor.listeners.map((l) => ({ name: l.name, address: `${l.host}:${l.port}` })),
      admin: `${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${adminPort}`,
      admin_token_file: adminToken.file,
    },
    'ready',
  );

  function stop(reason: string): void {
    if (draining) return;
    draining = true;
    watcher?.close();
    const timeout = store.snapshot.node.drainTimeoutMs;
    log.info({ reason, drain_timeout_ms: timeout }, 'draining');
    health.close();
    outlier.close();
    void certs?.close();
    void supervisor.drain(timeout).then(async (unfinished) => {
      await adminServer.close();
      log.info({ unfinished }, 'stopped');
      finish(0);
    });
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return done;
}

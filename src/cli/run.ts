// `outrigger run`: the composition root. Loads the config, opens the admin access (token,
// policy), starts the supervisor (which spawns the workers) with this sidecar's certificate,
// then the admin API, and prints the `ready` line. The parts live in src/control/: the applier
// (every config change's path into the data plane), health/outlier verdicts, certificates, the
// admin views, the file/SIGHUP reloader and the signals/drain shutdown. The config layer (zod,
// yaml, js-yaml) is not loaded here: configs are checked in a worker thread (config_check_thread.ts).

import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { AdminServer } from '../admin/server.js';
import { ConfigCheckThread } from '../admin/config_check_thread.js';
import { ConfigStore } from '../admin/config_store.js';
import { SAMPLE_INTERVAL_MS, TrafficSampler } from '../admin/sampler.js';
import type { CompileOptions, RawConfig } from '../config/load.js';
import type { ServiceRegistrationSpec } from '../config/etcd.js';
import { formatProblems } from '../config/format.js';
import type { Snapshot, TracingSpec } from '../config/types.js';
import { openAdminAccess } from '../control/admin_access.js';
import { inspectClusters } from '../control/admin_views.js';
import { DataPlaneApplier } from '../control/applier.js';
import { CertificateManager } from '../control/certificates.js';
import { EndpointVerdicts } from '../control/endpoint_verdicts.js';
import { ConfigReloader } from '../control/reloader.js';
import { DiscoveryManager } from '../discovery/manager.js';
import { makeSource } from '../discovery/sources.js';
import type { MeshWatcher, MeshWatcherOptions } from '../discovery/mesh_watcher.js';
import { Shutdown } from '../control/shutdown.js';
import { etcdClient, etcdKeys, sidecarId } from '../discovery/etcd_client.js';
import { Registration } from '../discovery/registration.js';
import { exitNow } from '../net/reuseport.js';
import { StatsAggregator } from '../stats/aggregate.js';
import { LoopDelayMonitor } from '../stats/loop_delay.js';
import { SpanExporter } from '../tracing/exporter.js';
import { PortInUseError } from '../workers/ports.js';
import { Supervisor, type SupervisorOptions } from '../workers/supervisor.js';
import { OptimizerWhenBusy, baselineCompilerOn } from './compilers.js';
import { MallocTrimWhenIdle } from './idle_memory.js';
import { createLogger } from './log.js';
import { checkEngines, checkInterception } from './preflight.js';

export interface RunOptions {
  readonly file: string;
  readonly logLevel: string;
  readonly compile: CompileOptions;
}

export async function runSidecar(opts: RunOptions): Promise<number> {
  const log = createLogger(opts.logLevel);
  const checks = new ConfigCheckThread();
  const loaded = await checks.check({ file: opts.file, opts: opts.compile });
  if (!loaded.ok) return refuse(formatProblems(loaded.problems), 2);
  const interception = checkInterception(loaded.snapshot.listeners);
  if (interception !== null) return refuse(`outrigger: ${interception}`, 2);
  const engines = checkEngines(loaded.snapshot.listeners);
  if (engines !== null) return refuse(`outrigger: ${engines}`, 2);
  for (const w of loaded.warnings) log.warn({ path: w.path, line: w.line }, w.message);
  const configFile = path.resolve(opts.file);
  const access = openAdminAccess(loaded.admin, loaded.source, configFile, process.cwd());
  if (!access.ok) return refuse(`outrigger: ${access.message}`, 2);
  if (access.token.warning !== null) log.warn({ file: access.token.file }, access.token.warning);
  if (access.metricsToken?.warning != null) log.warn({ file: access.metricsToken.file }, access.metricsToken.warning);

  // The start-up check's thread ends before the workers start, so that the first of them takes
  // over its malloc arena: a thread's arena outlives it, and one started beside it gets a new one
  // (measured: ~2 MiB of RSS per sidecar). A reload starts a check thread again.
  await checks.end();
  const optimizer = new OptimizerWhenBusy((cpuMs) => log.info({ cpu_ms: Math.round(cpuMs) }, 'optimizing compiler on: the sidecar is busy'));
  const plane = await startDataPlane(loaded.snapshot, path.dirname(configFile), log, opts.compile.enableTestHooks, optimizer);
  if (typeof plane === 'number') return plane;
  const { supervisor, verdicts, certs, stats, sampler, snapshot } = plane;
  const etcdSpec = loaded.etcd;
  // One etcd client for the registration, the etcd discovery sources and the mesh-config watcher.
  const etcdDeps = etcdSpec === null ? null : { client: await etcdClient(etcdSpec), keys: etcdKeys(etcdSpec.prefix) };
  const etcd = etcdDeps?.client ?? null;
  const discovery: DiscoveryManager = new DiscoveryManager({
    plane: supervisor,
    applied: (running) => applier.running(running),
    makeSource: (cluster) => makeSource(cluster, { etcd: etcdDeps }),
    log,
  });
  const applier = new DataPlaneApplier(supervisor, verdicts, stats, discovery, log);
  applier.running(snapshot);
  discovery.reconcile(snapshot);
  stats.sections.set('discovery', () => discovery.status());
  stats.metricTexts.set('discovery', () => discovery.prometheus());
  const compile = { availableParallelism: opts.compile.availableParallelism, enableTestHooks: opts.compile.enableTestHooks };
  const store = new ConfigStore(applier, checks.check, compile, { snapshot, admin: loaded.admin, source: loaded.source }, `file ${opts.file}`, access.policy);

  const registration = registrationFor(etcd, etcdSpec?.prefix ?? '', loaded.registration, log);
  if (registration !== null) {
    stats.sections.set('registration', () => registration.json());
    stats.metricTexts.set('registration', () => registration.prometheus());
  }

  const admin = loaded.admin;
  let reloader: ConfigReloader | null = null;
  const mesh = await meshWatcherFor(etcd, etcdSpec?.prefix ?? '', loaded.source, { localFile: configFile, compile: opts.compile, store, log });
  const shutdown: Shutdown = new Shutdown(
    {
      timeoutMs: () => store.snapshot.node.drainTimeoutMs,
      stopBackground: () => {
        reloader?.close();
        void discovery.stop();
        verdicts.close();
        void certs.close();
      },
      // Both before the workers drain and, above all, before closeRest closes the etcd client: a
      // revoke cut off by the close leaves the keys to their TTL, and `mesh status` lists a
      // stopped sidecar for ttl_s seconds.
      deregister: async () => {
        await Promise.all([registration?.deregister(), mesh?.close()]);
      },
      drainWorkers: (timeoutMs) => supervisor.drain(timeoutMs),
      closeRest: async () => {
        await adminServer.close();
        etcd?.close();
      },
    },
    log,
  );
  const adminServer: AdminServer = new AdminServer({
    store,
    configApply: mesh?.localReloads ?? store,
    stats,
    token: access.token.token,
    metricsToken: access.metricsToken?.token ?? null,
    boundHost: admin.host,
    hosts: admin.hosts,
    ready: () => !shutdown.isDraining && supervisor.readyWorkers === store.snapshot.node.workers && certs.valid(),
    discovery: () => discovery.status(),
    readyWarnings: () => [...certs.warnings(), ...(mesh?.warnings() ?? []), ...(registration?.warnings() ?? [])],
    inspect: () => inspectClusters(supervisor, verdicts),
    certs: () => certs.info(),
    series: (afterMs) => sampler.toJSON(afterMs),
    drain: (reason) => shutdown.stop(reason),
    setLogLevel: (level) => void (log.level = level),
    getLogLevel: () => log.level,
  });
  let adminPort: number;
  try {
    adminPort = await adminServer.listen(admin.host, admin.port);
  } catch (e) {
    await supervisor.stop();
    return refuse(`outrigger: admin.address ${admin.address}: cannot listen: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, 1);
  }
  reloader = await ConfigReloader.start(opts.file, mesh?.localReloads ?? store, log);
  // SIGTERM/SIGINT drain from before the ready line: whoever reads it may signal at once, and a
  // signal between the line and the handlers killed the process undrained (exit by signal).
  shutdown.handleSignals();
  log.info(readyLine(snapshot, supervisor, admin.host, adminPort, access.token.file), 'ready');
  baselineCompilerOn();
  optimizer.arm();
  // Registered once it serves: others only discover a sidecar whose listeners are up.
  registration?.start();
  return shutdown.done;
}

/** `node.service` registered in etcd under this process's sidecar id; null when there is no service or no etcd. */
function registrationFor(etcd: Etcd3 | null, prefix: string, service: ServiceRegistrationSpec | null, log: Logger): Registration | null {
  if (etcd === null || service === null) return null;
  return new Registration(etcd, service, etcdKeys(prefix), sidecarId(), log);
}

/**
 * The mesh-wide config's watcher, when there is an etcd cluster and a `node.service` (whose part of
 * the mesh config this sidecar runs). Imported only then: it checks mesh versions on this thread.
 */
async function meshWatcherFor(
  etcd: Etcd3 | null,
  prefix: string,
  source: RawConfig,
  local: Pick<MeshWatcherOptions, 'localFile' | 'compile' | 'store' | 'log'>,
): Promise<MeshWatcher | null> {
  const service = source.node.service;
  if (etcd === null || service === undefined) return null;
  const { MeshWatcher } = await import('../discovery/mesh_watcher.js');
  return new MeshWatcher({ ...local, client: etcd, keys: etcdKeys(prefix), service: service.name, sidecarId: sidecarId(), ttlS: service.ttl_s });
}

interface DataPlane {
  readonly supervisor: Supervisor;
  readonly verdicts: EndpointVerdicts;
  readonly certs: CertificateManager;
  readonly stats: StatsAggregator;
  /** The dashboard's 15 minutes of per-second samples, taken from start-up on. */
  readonly sampler: TrafficSampler;
  /** The first snapshot, as every worker runs it (ports resolved). */
  readonly snapshot: Snapshot;
}

/** Spawns the workers on the first snapshot with this sidecar's certificate; an exit code when it cannot. */
async function startDataPlane(
  first: Snapshot,
  configDir: string,
  log: Logger,
  enableTestHooks: boolean,
  optimizer: OptimizerWhenBusy,
): Promise<DataPlane | number> {
  const stats = new StatsAggregator();
  const sampler = new TrafficSampler();
  everySecond(stats, sampler, optimizer);
  const verdicts: EndpointVerdicts = new EndpointVerdicts(
    log,
    (cluster, address, change) => supervisor.setEndpointState(cluster, address, change),
    () => supervisor.currentMaterial,
  );
  const exporter = traceExporter(stats, log, () => supervisor.snapshot?.tracing ?? null);
  const supervisor = new Supervisor(supervisorOptions(log, stats, sampler, verdicts, exporter, enableTestHooks));
  let certs: CertificateManager;
  try {
    certs = await CertificateManager.open(first, configDir, supervisor, log, stats.counters);
  } catch (e) {
    return refuse(`outrigger: tls: ${(e as Error).message}`, 2);
  }
  try {
    return { supervisor, verdicts, certs, stats, sampler, snapshot: await supervisor.start(first) };
  } catch (e) {
    await certs.close();
    if (e instanceof PortInUseError) return refuse(`outrigger: ${e.message}`, 1);
    throw e;
  }
}

/**
 * The main thread's once-a-second jobs, run from its event-loop delay sampler's timer so that at
 * rest they cost one wake-up a second, not one each (timers started a few ms apart fire apart):
 * its event-loop delay into the stats, like the workers', the dashboard's traffic sample, the
 * check whether the process is busy enough for TurboFan (compilers.ts), and malloc's trim at rest
 * (idle_memory.ts).
 */
function everySecond(stats: StatsAggregator, sampler: TrafficSampler, optimizer: OptimizerWhenBusy): void {
  const trimmer = new MallocTrimWhenIdle();
  const monitor: LoopDelayMonitor = new LoopDelayMonitor('main', {
    job: {
      everyMs: SAMPLE_INTERVAL_MS,
      run: () => {
        const sample = monitor.take();
        if (sample !== null) stats.loopDelay.add(sample);
        sampler.tick(Date.now());
        optimizer.tick();
        trimmer.tick();
      },
    },
  });
}

/**
 * The OTLP exporter of the workers' span records, for the tracing settings in force: its
 * counters in /metrics (declared at 0) and its queue in /stats (`tracing`).
 */
function traceExporter(stats: StatsAggregator, log: Logger, spec: () => TracingSpec | null): SpanExporter {
  const exported = { metric: 'outrigger_tracing_spans_exported_total', labels: {} };
  stats.counters.declare(exported.metric, exported.labels);
  const exporter = new SpanExporter(
    spec,
    {
      exported: (n) => stats.counters.apply([{ ...exported, value: n }]),
      dropped: (reason, n) => stats.counters.apply([{ metric: 'outrigger_tracing_spans_dropped_total', labels: { reason }, value: n }]),
    },
    log,
  );
  stats.sections.set('tracing', () => exporter.json());
  return exporter;
}

/** The supervisor's reports: stats deltas to the aggregator and the dashboard's sampler, span records to the trace exporter, worker events to the aggregator, try outcomes to the outlier detector. */
function supervisorOptions(
  log: Logger,
  stats: StatsAggregator,
  sampler: TrafficSampler,
  verdicts: EndpointVerdicts,
  exporter: SpanExporter,
  enableTestHooks: boolean,
): SupervisorOptions {
  return {
    log,
    enableTestHooks,
    onSpans: (records, dropped) => exporter.add(records, dropped),
    onOutcomes: (events) => verdicts.record(events),
    onStats: (_id, delta) => {
      stats.apply(delta);
      sampler.record(delta);
    },
    onWorkerExit: (id) => {
      stats.forgetWorker(id);
      stats.incWorkerRestarts();
    },
    onWorkerStall: () => stats.incWorkerStalls(),
    onUnrecoverableStall: (id, stalledMs) => {
      // Node's exit would terminate the stuck worker and abort on its open uWS sockets: _exit
      // instead, after saying why on stderr too (the JSON log line is written synchronously).
      process.stderr.write(
        `outrigger: worker ${id} stuck for ${stalledMs} ms while serving uws listeners; exiting (70) for the service manager to restart the sidecar\n`,
      );
      exitNow(70);
    },
  };
}

/** The `ready` log line's fields: what scripts and tests wait for. */
function readyLine(
  snapshot: Snapshot,
  supervisor: Pick<Supervisor, 'listeners'>,
  adminHost: string,
  adminPort: number,
  tokenFile: string,
): Record<string, unknown> {
  return {
    version: snapshot.version,
    workers: snapshot.node.workers,
    listeners: supervisor.listeners.map((l) => ({ name: l.name, address: `${l.host}:${l.port}` })),
    admin: `${adminHost.includes(':') ? `[${adminHost}]` : adminHost}:${adminPort}`,
    admin_token_file: tokenFile,
  };
}

/** Says why the sidecar cannot start (one line on stderr) and returns the exit code. */
function refuse(message: string, code: number): number {
  process.stderr.write(`${message}\n`);
  return code;
}

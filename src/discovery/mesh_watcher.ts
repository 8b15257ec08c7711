// The sidecar side of the mesh-wide config: watches `<p>/mesh/current`, builds this service's
// config for that version (local file ⊕ the version's part for `node.service.name`), applies it
// through ConfigStore.apply (the worker-acknowledged reload path; history source "mesh vN"), and
// writes `<p>/sidecars/<id>` under a lease of its own: the version it runs, or why it could not
// apply the current one (it then stays on its previous config; never half-applied).
// Static stability: etcd down leaves the running config alone; the watcher catches up when etcd
// answers again (a reconnected watch re-reads `current`), retrying with jittered backoff.

import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { ApplyOutcome, ConfigInput, ConfigOrigin, ConfigStore } from '../admin/config_store.js';
import type { CompileOptions } from '../config/load.js';
import { formatProblems, loadConfigFile } from '../config/load.js';
import { sameValue } from '../config/equal.js';
import { serviceConfig, validateMesh, type MeshPart } from './mesh_config.js';
import { REVOKE_TIMEOUT_MS, settledWithin, type EtcdKeys } from './etcd_client.js';
import { readCurrentPointer, readMeshVersion, type SidecarStatus } from './mesh_store.js';
import { isoTime } from '../time.js';

export interface MeshWatcherOptions {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  /** `node.service.name`: whose part of the mesh config this sidecar runs. */
  readonly service: string;
  readonly sidecarId: string;
  /** The status key's lease TTL (`node.service.ttl_s`). */
  readonly ttlS: number;
  /** The local config file, read again for each version (its parts the mesh does not set stay). */
  readonly localFile: string;
  readonly compile: CompileOptions;
  readonly store: Pick<ConfigStore, 'apply' | 'source' | 'validate'>;
  readonly log: Logger;
  /** Uniform in [0, 1): the backoff's jitter. */
  readonly random?: () => number;
}

/** Retries after an etcd failure: full jitter over base × 2^n, capped (no thundering herd when etcd returns). */
const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 10_000;

export class MeshWatcher {
  private readonly watcher: Watcher;
  private lease: Lease | null = null;
  private applied: number | null = null;
  /** The applied version and its part for this service: what a reload of the local file keeps. */
  private appliedPart: { readonly version: number; readonly part: MeshPart } | null = null;
  /** Mesh versions and local reloads apply one at a time, each on top of the one before. */
  private applying: Promise<unknown> = Promise.resolve();
  /** The last version tried, applied or not: a version is tried once (a new one, or a rollback, is a new number). */
  private tried = 0;
  private status: SidecarStatus | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private retry: NodeJS.Timeout | null = null;
  private down: { error: string; sinceMs: number } | null = null;
  private closed = false;

  constructor(private readonly o: MeshWatcherOptions) {
    this.watcher = o.client.watch().key(o.keys.meshCurrent).watcher();
    // 'connected' follows the first connection and every reconnection: read `current` then, so
    // a change made while etcd was out of reach is caught up.
    this.watcher.on('connected', () => this.kick());
    this.watcher.on('put', () => this.kick());
    this.watcher.on('disconnected', (err) => this.markDown(err));
    this.watcher.on('error', (err) => this.markDown(err));
    this.kick();
  }

  /**
   * Where the local file's reloads (file watch, SIGHUP) go: the new file with the applied mesh
   * version's part in place of its own, as a version is built, so a local change neither drops
   * the mesh's parts nor moves this sidecar off its version. Before any version: the file alone.
   */
  readonly localReloads: Pick<ConfigStore, 'apply'> = {
    apply: (input, by, origin) => this.serially(() => this.applyLocal(input, by, origin)),
  };

  /** The mesh version this sidecar runs (null before the first one). */
  get appliedVersion(): number | null {
    return this.applied;
  }

  /** For /ready: etcd out of reach (the running config stays), or a version this sidecar could not apply. */
  warnings(): string[] {
    const out: string[] = [];
    if (this.down !== null)
      out.push(`mesh config: etcd unreachable since ${isoTime(this.down.sinceMs)} (${this.down.error}); running mesh version ${this.applied ?? 'none'}`);
    if (this.status?.status === 'error') out.push(`mesh config: version ${this.tried} not applied: ${this.status.error ?? ''}`);
    return out;
  }

  /**
   * Stops watching and revokes the status lease, so the status key goes at once (a crash leaves
   * it to the TTL). A drain awaits this before it closes the etcd client; bounded, so an etcd out
   * of reach does not hold the drain up (the key then goes when the lease expires).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    const outcome = await settledWithin(
      (async () => {
        await this.watcher.cancel().catch(() => undefined);
        await this.running;
        await this.lease?.revoke();
      })(),
      REVOKE_TIMEOUT_MS,
    );
    const lease = this.lease;
    this.lease = null;
    if (outcome === 'done') return;
    lease?.release();
    this.o.log.warn({ error: outcome, ttl_s: this.o.ttlS }, 'mesh config: could not revoke the status lease; the status key goes when it expires');
  }

  /** Runs one sync, or one more after the running one when called meanwhile. */
  private kick(): void {
    if (this.closed) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.sync().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async sync(): Promise<void> {
    try {
      const { version } = await readCurrentPointer(this.o.client, this.o.keys);
      if (version !== 0 && version !== this.tried) await this.applyVersion(version);
      if (this.status !== null) await this.writeStatus(this.status);
      this.failures = 0;
      if (this.down !== null) this.o.log.info({ mesh_version: this.applied }, 'mesh config: etcd reachable again');
      this.down = null;
    } catch (e) {
      this.markDown(e);
      this.scheduleRetry();
    }
  }

  /** Builds and applies this service's config of `version`; records the outcome in `status`. */
  private async applyVersion(version: number): Promise<void> {
    const document = await readMeshVersion(this.o.client, this.o.keys, version);
    this.tried = version;
    const outcome = await this.serially(() => this.applyDocument(document, version));
    if (outcome === null) this.applied = version;
    this.status = {
      service: this.o.service,
      applied_version: this.applied,
      status: outcome === null ? 'ok' : 'error',
      ...(outcome === null ? {} : { error: outcome }),
      updated_at: isoTime(Date.now()),
    };
    if (outcome === null) this.o.log.info({ mesh_version: version, service: this.o.service }, 'mesh config applied');
    else this.o.log.warn({ mesh_version: version, service: this.o.service, error: outcome }, 'mesh config not applied; the previous config stays');
  }

  /** null when applied (or nothing to change), else why not. */
  private async applyDocument(document: unknown, version: number): Promise<string | null> {
    if (document === null) return `the store has no mesh version ${version}`;
    const checked = validateMesh(document, this.o.compile);
    if (!checked.ok) return formatProblems(checked.problems);
    const part: MeshPart = checked.mesh.services[this.o.service] ?? {};
    const local = await loadConfigFile(this.o.localFile, this.o.compile);
    if (!local.ok) return `the local config file is not valid: ${formatProblems(local.problems)}`;
    const config = serviceConfig(local.source, part);
    const outcome = sameValue(config, this.o.store.source) ? null : await this.o.store.apply({ object: config }, `mesh v${version}`, 'file');
    if (outcome === null || outcome.ok) {
      this.appliedPart = { version, part };
      return null;
    }
    return outcome.kind === 'invalid' ? formatProblems(outcome.problems) : outcome.error;
  }

  private async applyLocal(input: ConfigInput, by: string, origin: ConfigOrigin): Promise<ApplyOutcome> {
    const mesh = this.appliedPart;
    if (mesh === null) return this.o.store.apply(input, by, origin);
    // Parsed and checked as the store checks what it is given (an API body with the API's limits and policy).
    const local = await this.o.store.validate(input, origin);
    if (!local.ok) return { ok: false, kind: 'invalid', problems: local.problems };
    return this.o.store.apply({ object: serviceConfig(local.source, mesh.part) }, `${by} with mesh v${mesh.version}`, origin);
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.applying.then(fn);
    this.applying = run.catch(() => undefined);
    return run;
  }

  /** Writes the status under this watcher's lease, granting a new one when it has none (first write, or lost while etcd was away). */
  private async writeStatus(status: SidecarStatus): Promise<void> {
    if (this.lease === null) {
      const lease = this.o.client.lease(this.o.ttlS);
      lease.on('lost', (err) => {
        if (this.lease !== lease) return;
        this.lease = null;
        this.markDown(err);
        this.scheduleRetry();
      });
      this.lease = lease;
    }
    await this.lease.put(this.o.keys.sidecar(this.o.sidecarId)).value(JSON.stringify(status));
  }

  private markDown(e: unknown): void {
    if (this.closed) return;
    const error = e instanceof Error ? e.message : String(e);
    if (this.down === null) {
      this.down = { error, sinceMs: Date.now() };
      this.o.log.warn({ err: error }, 'mesh config: etcd unreachable; the running config stays');
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry !== null) return;
    const capMs = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.failures++);
    this.retry = setTimeout(
      () => {
        this.retry = null;
        this.kick();
      },
      (this.o.random ?? Math.random)() * capMs,
    );
    this.retry.unref();
  }
}

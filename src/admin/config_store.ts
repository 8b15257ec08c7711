// The running config and its history: one path for every change (PUT /config, file watch,
// SIGHUP, rollback): validate → compile with the next version → apply on every worker → record.
// An invalid config is refused with its problem list and the running version stays.
// A config that arrives through the admin API (origin 'api') is parsed with limits
// (body_limits.ts) and held to the API policy (api_policy.ts); one read from the config file
// (origin 'file') is trusted, and what it names is remembered as trusted by the policy.
// The parse, validation and compile are the `check` the store is given (config_check.ts: in a
// worker thread on the sidecar); the policy and the history stay here.

import type { AdminSpec, CompileOptions, RawConfig } from '../config/load.js';
import { compileDelta } from '../config/delta.js';
import { summarizeDelta } from '../config/diff.js';
import { sameValue } from '../config/equal.js';
import type { ConfigProblem, ConfigWarning, Snapshot } from '../config/types.js';
import type { ApiPolicy } from './api_policy.js';
import type { CheckConfig, CheckedConfig, ConfigInput, ConfigOrigin } from './config_check.js';
import { openLogFile } from './log_open.js';
import { closeSync } from 'node:fs';
import { isoTime } from '../time.js';
import { PortInUseError } from '../workers/ports.js';

export type { ConfigInput, ConfigOrigin } from './config_check.js';

export interface HistoryEntry {
  readonly version: number;
  readonly at: string;
  readonly by: string;
  readonly summary: string;
  readonly source: RawConfig;
}

/** What the store needs from the data plane. */
export interface Applier {
  apply(snapshot: Snapshot): Promise<Snapshot>;
}

export type ApplyOutcome =
  | {
      readonly ok: true;
      readonly version: number;
      readonly summary: string;
      readonly warnings: readonly ConfigWarning[];
      /** Settings that changed but take effect only at the next start. */
      readonly restartRequired: readonly string[];
    }
  | { readonly ok: false; readonly kind: 'invalid'; readonly problems: readonly ConfigProblem[] }
  | { readonly ok: false; readonly kind: 'apply_failed'; readonly error: string }
  /** A listener's port is held by another process (workers/ports.ts): a conflict with this host, not a fault. */
  | { readonly ok: false; readonly kind: 'port_in_use'; readonly error: string };

export class ConfigStore {
  private entries: HistoryEntry[] = [];
  private snapshotNow: Snapshot;
  private adminNow: AdminSpec;
  private lastVersion: number;
  /** Access-log files opened for configs from the admin API (log_open.ts), by absolute path: the workers open /proc/self/fd/N. */
  private readonly logFds = new Map<string, number>();

  constructor(
    private readonly applier: Applier,
    private readonly check: CheckConfig,
    private readonly compile: Omit<CompileOptions, 'version'>,
    initial: { snapshot: Snapshot; admin: AdminSpec; source: RawConfig },
    by: string,
    private readonly policy: ApiPolicy | null = null,
  ) {
    policy?.trust(initial.source);
    this.snapshotNow = initial.snapshot;
    this.adminNow = initial.admin;
    this.lastVersion = initial.snapshot.version;
    this.record(initial.snapshot.version, by, 'initial config', initial.source);
  }

  get version(): number {
    return this.snapshotNow.version;
  }
  get snapshot(): Snapshot {
    return this.snapshotNow;
  }
  get admin(): AdminSpec {
    return this.adminNow;
  }
  get source(): RawConfig {
    return this.entries.find((e) => e.version === this.snapshotNow.version)!.source;
  }
  history(): readonly HistoryEntry[] {
    return this.entries;
  }

  /** Dry run: the problems, or the warnings of a config that would apply (as if sent through the admin API). */
  validate(input: ConfigInput, origin: ConfigOrigin = 'api'): Promise<CheckedConfig> {
    return this.load(input, this.lastVersion + 1, origin);
  }

  async apply(input: ConfigInput, by: string, origin: ConfigOrigin): Promise<ApplyOutcome> {
    const version = this.lastVersion + 1;
    const loaded = await this.load(input, version, origin);
    if (!loaded.ok) return { ok: false, kind: 'invalid', problems: loaded.problems };
    const opened = origin === 'api' ? this.openAccessLogs(loaded.snapshot) : { ok: true as const, snapshot: loaded.snapshot };
    if (!opened.ok) return { ok: false, kind: 'apply_failed', error: opened.error };
    this.lastVersion = version;
    const prev = this.snapshotNow;
    const restartRequired: string[] = [];
    if (!sameValue(loaded.admin, this.adminNow)) restartRequired.push('admin');
    if (!sameValue(loaded.snapshot.tls, prev.tls)) restartRequired.push('tls');
    // The snapshot was compiled with the running worker count (load() fixes it); a different
    // wish takes effect at the next start.
    if (loaded.wantedWorkers !== prev.node.workers) restartRequired.push('node.workers');
    const snapshot = opened.snapshot;
    let applied: Snapshot;
    try {
      applied = await this.applier.apply(snapshot);
    } catch (e) {
      this.closeUnusedLogs(prev);
      return { ok: false, kind: e instanceof PortInUseError ? 'port_in_use' : 'apply_failed', error: e instanceof Error ? e.message : String(e) };
    }
    this.closeUnusedLogs(applied);
    const summary = summarizeDelta(compileDelta(withDiscoveredEndpoints(prev, applied), applied, null));
    if (origin === 'file') this.policy?.trust(loaded.source);
    this.snapshotNow = applied;
    this.record(version, by, summary, loaded.source);
    return { ok: true, version, summary, warnings: loaded.warnings, restartRequired };
  }

  /**
   * Applies version `toVersion`'s config again (null: not in the history), through `via` — the
   * mesh watcher's local path on a sidecar that follows mesh config, so that the mesh version's
   * parts stay in place.
   */
  async rollback(toVersion: number, by: string, via: Pick<ConfigStore, 'apply'> = this): Promise<ApplyOutcome | null> {
    const entry = this.entries.find((e) => e.version === toVersion);
    if (entry === undefined) return null;
    return via.apply({ object: entry.source }, `${by} (rollback to v${toVersion})`, 'api');
  }

  private async load(input: ConfigInput, version: number, origin: ConfigOrigin): Promise<CheckedConfig> {
    const opts: CompileOptions = { ...this.compile, version, fixedWorkers: this.snapshotNow.node.workers };
    const loaded = await this.check({ input, origin, opts });
    if (!loaded.ok || origin !== 'api' || this.policy === null) return loaded;
    const refused = this.policy.check(loaded.source);
    return refused.length === 0 ? loaded : { ok: false, problems: refused };
  }

  /**
   * Opens each access-log file a config from the admin API names that the config file did not
   * (log_open.ts: no symlink followed in the last component, no directory created, the open file
   * inside the allowed directories) and points the listener at the open file (/proc/self/fd/N).
   */
  private openAccessLogs(snapshot: Snapshot): { ok: true; snapshot: Snapshot } | { ok: false; error: string } {
    if (this.policy === null) return { ok: true, snapshot };
    const policy = this.policy;
    let error: string | null = null;
    const listeners = snapshot.listeners.map((l) => {
      const abs = l.accessLog === null || error !== null ? null : policy.untrustedAccessLog(l.accessLog.path);
      if (abs === null || l.accessLog === null) return l;
      let fd = this.logFds.get(abs);
      if (fd === undefined) {
        const o = openLogFile(abs, policy.allowedDirs);
        if (!o.ok) {
          error = `listener ${l.name}: ${o.error}`;
          return l;
        }
        fd = o.fd;
        this.logFds.set(abs, fd);
      }
      return { ...l, accessLog: { ...l.accessLog, path: `/proc/self/fd/${fd}` } };
    });
    if (error !== null) {
      this.closeUnusedLogs(this.snapshotNow);
      return { ok: false, error };
    }
    return { ok: true, snapshot: { ...snapshot, listeners } };
  }

  /** Closes the opened access-log files `inForce` does not write to. */
  private closeUnusedLogs(inForce: Snapshot): void {
    const used = new Set(inForce.listeners.map((l) => l.accessLog?.path));
    for (const [abs, fd] of this.logFds) {
      if (used.has(`/proc/self/fd/${fd}`)) continue;
      closeSync(fd);
      this.logFds.delete(abs);
    }
  }

  private record(version: number, by: string, summary: string, source: RawConfig): void {
    this.entries.push({ version, at: isoTime(Date.now()), by, summary, source });
    const limit = Math.max(1, this.adminNow.historyLimit);
    if (this.entries.length > limit) this.entries.splice(0, this.entries.length - limit);
  }
}

/**
 * `prev` with the endpoints of the clusters discovered before and after taken from `now`: the
 * endpoints discovery changed since the last reload (thousands, under churn) are not this
 * reload's change, and its summary does not list them.
 */
function withDiscoveredEndpoints(prev: Snapshot, now: Snapshot): Snapshot {
  const discovered = new Map(now.clusters.filter((c) => c.discovery !== null).map((c) => [c.name, c.endpoints]));
  const clusters = prev.clusters.map((c) => {
    const endpoints = c.discovery === null ? undefined : discovered.get(c.name);
    return endpoints === undefined ? c : { ...c, endpoints };
  });
  return { ...prev, clusters };
}

// A cluster's endpoints from etcd (`discovery: {etcd: {service}}`): every sidecar registered
// under `<p>/services/<service>/`. Reads the whole prefix, then watches it from the revision read;
// each change rebuilds the whole set from the keys held (a burst of events gives one update).
// When the watch breaks, the last set stays (static stability) and health says since when; the
// etcd3 watch manager reconnects with its own jittered backoff and resumes from the last revision
// seen, so no change is missed. A watch etcd cancels (its revision compacted) starts over with a
// fresh read, after a jittered delay.
import { isIP } from 'node:net';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { EtcdKeys } from './etcd_client.js';
import { Backoff } from './backoff.js';
import type { DiscoveredEndpoint, DiscoverySource, SourceHealth } from './source.js';

export interface EtcdSourceDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
}

export function etcdServiceSource(deps: EtcdSourceDeps, service: string): DiscoverySource {
  return new EtcdServiceSource(deps.client, deps.keys.servicePrefix(service), `etcd service ${service}`);
}

class EtcdServiceSource implements DiscoverySource {
  /** Registration key → its endpoint (keys whose value is not a registration are left out). */
  private readonly held = new Map<string, DiscoveredEndpoint>();
  private watcher: Watcher | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private flushPending = false;
  private stopped = false;
  private healthy: boolean | null = null;
  private readonly backoff = new Backoff();
  private update: (endpoints: readonly DiscoveredEndpoint[]) => void = () => {};
  private health: (h: SourceHealth) => void = () => {};

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    readonly describe: string,
  ) {}

  start(update: (endpoints: readonly DiscoveredEndpoint[]) => void, health: (h: SourceHealth) => void): void {
    this.update = update;
    this.health = health;
    void this.sync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    await this.closeWatcher();
  }

  /** Reads the whole prefix, publishes it, then watches from the next revision. */
  private async sync(): Promise<void> {
    try {
      const res = await this.client.getAll().prefix(this.prefix).exec();
      if (this.stopped) return;
      this.held.clear();
      for (const kv of res.kvs) this.hold(kv);
      this.flush();
      const from = String(BigInt(res.header.revision) + 1n);
      const watcher = await this.client.watch().prefix(this.prefix).startRevision(from).create();
      if (this.stopped) return void watcher.cancel();
      this.watcher = watcher;
      watcher
        .on('put', (kv) => this.changed(() => this.hold(kv)))
        .on('delete', (kv) => this.changed(() => this.held.delete(kv.key.toString())))
        .on('disconnected', (err) => this.setHealth({ ok: false, error: `watch: ${err.message}`, sinceMs: Date.now() }))
        .on('connected', () => this.setHealth({ ok: true }))
        .on('error', (err) => this.restart(`watch cancelled: ${err.message}`));
      this.backoff.reset();
      this.setHealth({ ok: true });
    } catch (e) {
      this.restart((e as Error).message);
    }
  }

  /** Keeps the last set, reports the failure, and reads everything again after a jittered delay. */
  private restart(error: string): void {
    if (this.stopped) return;
    this.setHealth({ ok: false, error, sinceMs: Date.now() });
    void this.closeWatcher();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.sync();
    }, this.backoff.next());
  }

  private async closeWatcher(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => {});
  }

  private hold(kv: IKeyValue): void {
    const endpoint = parseRegistration(kv.value.toString());
    if (endpoint === null) this.held.delete(kv.key.toString());
    else this.held.set(kv.key.toString(), endpoint);
  }

  /** Applies one event; the whole set goes out once the events that arrived together are applied. */
  private changed(apply: () => void): void {
    apply();
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => {
      this.flushPending = false;
      if (!this.stopped) this.flush();
    });
  }

  private flush(): void {
    this.update([...this.held.values()]);
  }

  /** Reports transitions only (a reconnect after a reconnect is no news). */
  private setHealth(h: SourceHealth): void {
    if (this.healthy === h.ok) return;
    this.healthy = h.ok;
    this.health(h);
  }
}

/** A registration's value, `{address, port, weight?, metadata?}` (registration.ts writes it); null when it is not one. */
export function parseRegistration(text: string): DiscoveredEndpoint | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { address, port, weight, metadata } = v as Record<string, unknown>;
  if (typeof address !== 'string' || isIP(address) === 0 || !Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return null;
  const host = isIP(address) === 6 ? `[${address}]` : address;
  return {
    address: `${host}:${port as number}`,
    ...(Number.isInteger(weight) && (weight as number) >= 1 ? { weight: weight as number } : {}),
    ...(isStringRecord(metadata) ? { metadata } : {}),
  };
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string');
}

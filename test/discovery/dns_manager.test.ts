// The discovery manager's own rules, with a plane that holds each apply until the test releases it
// (the real one, Supervisor.update, is exercised by dns_discovery/dns_reload through a sidecar):
// at most one apply in flight and the newest set wins, an unchanged set applies nothing, sets are
// validated, sorted and their weights kept in the config's range; a stale source shows in status()
// and the Prometheus text. Also the DNS source's refresh and backoff delays.
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import type { ClusterSpec, Snapshot } from '../../src/config/types.js';
import { backoffDelayMs, MIN_REFRESH_MS, refreshDelayMs } from '../../src/discovery/dns.js';
import { DiscoveryManager } from '../../src/discovery/manager.js';
import type { DiscoveredEndpoint, DiscoverySource, SourceHealth } from '../../src/discovery/source.js';
import { OPTS } from '../config/helpers.js';

class HandSource implements DiscoverySource {
  readonly describe = 'hand';
  update: (e: readonly DiscoveredEndpoint[]) => void = () => undefined;
  health: (h: SourceHealth) => void = () => undefined;
  stopped = false;
  start(update: (e: readonly DiscoveredEndpoint[]) => void, health: (h: SourceHealth) => void): void {
    this.update = update;
    this.health = health;
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
}

function snapshot(): Snapshot {
  const r = compileConfig(
    {
      listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'api' }] }],
      clusters: [{ name: 'api', discovery: { dns: { name: 'api.mesh.local', port: 80 } } }],
    },
    OPTS,
  );
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.snapshot;
}

function setup(): { manager: DiscoveryManager; source: HandSource; made: Snapshot[]; release: () => Promise<void>; applied: Snapshot[] } {
  let running = snapshot();
  const source = new HandSource();
  const made: Snapshot[] = [];
  const applied: Snapshot[] = [];
  const waiting: Array<() => void> = [];
  const manager = new DiscoveryManager({
    plane: {
      update: (make) => {
        const next = make(running);
        made.push(next);
        return new Promise((resolve) => waiting.push(() => resolve((running = next))));
      },
    },
    applied: (s) => applied.push(s),
    makeSource: () => source,
    log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  manager.reconcile(running);
  // Releases the apply in flight and lets its continuation (the next apply, if any) run.
  const release = async (): Promise<void> => {
    waiting.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { manager, source, made, release, applied };
}

const addresses = (s: Snapshot | undefined): string[] => (s?.clusters[0] as ClusterSpec).endpoints.map((e) => e.address);

describe('DiscoveryManager', () => {
  it('keeps one apply in flight; sets that arrive meanwhile coalesce and the newest wins', async () => {
    const { source, made, release, applied } = setup();
    source.update([{ address: '10.0.0.1:80' }]);
    source.update([{ address: '10.0.0.2:80' }]);
    source.update([{ address: '10.0.0.3:80' }, { address: '10.0.0.1:80' }]);
    expect(made.map(addresses)).toEqual([['10.0.0.1:80']]);
    await release();
    expect(made.map(addresses)).toEqual([['10.0.0.1:80'], ['10.0.0.1:80', '10.0.0.3:80']]);
    await release();
    expect(applied.map(addresses)).toEqual([['10.0.0.1:80'], ['10.0.0.1:80', '10.0.0.3:80']]);
    // The same set again (a refresh that found nothing new) applies nothing.
    source.update([{ address: '10.0.0.1:80' }, { address: '10.0.0.3:80' }]);
    expect(made).toHaveLength(2);
  });

  it('leaves out addresses that are not ip:port, once per address, weights in 1..1000', async () => {
    const { source, made, release } = setup();
    source.update([
      { address: 'api:80' },
      { address: '10.0.0.1:80', weight: 0 },
      { address: '10.0.0.1:80', weight: 0 },
      { address: '[::1]:80', weight: 65535 },
    ]);
    await release();
    expect((made[0]?.clusters[0] as ClusterSpec).endpoints).toEqual([
      { address: '10.0.0.1:80', host: '10.0.0.1', port: 80, weight: 1 },
      { address: '[::1]:80', host: '::1', port: 80, weight: 1000 },
    ]);
  });

  it('overlays the newest set on a reloaded snapshot; status and metrics say stale, then fresh', async () => {
    const { manager, source, release } = setup();
    expect(manager.overlay(snapshot()).clusters[0]?.endpoints).toEqual([]);
    source.update([{ address: '10.0.0.1:80' }]);
    await release();
    expect(addresses(manager.overlay(snapshot()))).toEqual(['10.0.0.1:80']);
    source.health({ ok: false, error: 'dns A api.mesh.local: ENOTFOUND', sinceMs: Date.UTC(2026, 0, 1) });
    expect(manager.status()).toEqual([
      expect.objectContaining({
        cluster: 'api',
        source: 'hand',
        ok: false,
        error: 'dns A api.mesh.local: ENOTFOUND',
        since: '2026-01-01T00:00:00.000Z',
        endpoints: 1,
        updates: 1,
      }),
    ]);
    expect(manager.prometheus()).toContain('outrigger_discovery_healthy{cluster="api",source="hand"} 0\n');
    expect(manager.prometheus()).toContain('outrigger_discovery_updates_total{cluster="api"} 1\n');
    source.health({ ok: true });
    expect(manager.status()[0]).toMatchObject({ ok: true });
    expect(manager.status()[0]).not.toHaveProperty('error');
    await manager.stop();
    expect(source.stopped).toBe(true);
  });
});

describe('DNS source delays', () => {
  it('refreshes at the shorter of TTL and refresh_ms, never sooner than the floor', () => {
    expect(refreshDelayMs(30, 5000)).toBe(5000);
    expect(refreshDelayMs(2, 5000)).toBe(2000);
    expect(refreshDelayMs(0, 5000)).toBe(MIN_REFRESH_MS);
    expect(refreshDelayMs(null, 7000)).toBe(7000);
  });

  it('backs off doubling up to refresh_ms, jittered within [half, all]', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelayMs(n, 60_000, 1))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffDelayMs(30, 60_000, 1)).toBe(60_000);
    expect(backoffDelayMs(30, 60_000, 0)).toBe(30_000);
    expect(backoffDelayMs(3, 60_000, 0.5)).toBe(3000);
  });
});

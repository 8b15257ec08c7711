// The config delta compiler (src/config/delta.ts), in process: every kind of change between two
// compiled snapshots, nothing changed → an empty delta, key order irrelevant, placement per
// worker, and the history summary made from a delta.
import { describe, expect, it } from 'vitest';
import { compileDelta, isEmptyDelta, routesChanged } from '../../src/config/delta.js';
import { summarizeDelta } from '../../src/config/diff.js';
import { sameValue } from '../../src/config/equal.js';
import { compileConfig } from '../../src/config/load.js';
import { listenerPlacement } from '../../src/config/placement.js';
import type { Snapshot } from '../../src/config/types.js';
import { OPTS, ok } from './helpers.js';

type Raw = Record<string, unknown>;

/** Two listeners, two clusters; each test tweaks a copy. */
function base(): Raw {
  return {
    node: { workers: 2, identity: 'spiffe://cluster.local/ns/default/sa/web' },
    tls: { trust_bundle: './ca.pem', cert: './web.pem', key: './web.key' },
    listeners: [
      {
        name: 'out',
        address: '127.0.0.1:15001',
        routes: [
          { name: 'api', match: { host: 'api', path_prefix: '/v1/' }, cluster: 'api', rate_limit: { requests_per_second: 10 } },
          { name: 'web', match: { host: 'web' }, cluster: 'web' },
        ],
      },
      { name: 'admin-ish', address: '127.0.0.1:15002', tls: { mode: 'mtls' }, routes: [{ cluster: 'web' }], authorization: [{ paths: ['/x'] }] },
    ],
    clusters: [
      { name: 'api', lb: 'round_robin', endpoints: [{ address: '127.0.0.1:8080' }, { address: '127.0.0.1:8081', weight: 2 }] },
      { name: 'web', endpoints: [{ address: '127.0.0.1:9090' }] },
    ],
  };
}

function snap(raw: Raw, version = 1): Snapshot {
  return ok(compileConfig(raw, { ...OPTS, version })).snapshot;
}

function edit(fn: (raw: Raw) => void): Snapshot {
  const raw = structuredClone(base());
  fn(raw);
  return snap(raw, 2);
}

const listeners = (raw: Raw): Raw[] => raw['listeners'] as Raw[];
const clusters = (raw: Raw): Raw[] => raw['clusters'] as Raw[];
const routes = (l: Raw): Raw[] => l['routes'] as Raw[];

describe('compileDelta', () => {
  it('from nothing: everything is added, node settings included', () => {
    const next = snap(base());
    const d = compileDelta(null, next, 1);
    expect(d.fromVersion).toBeNull();
    expect(d.node).toEqual(next.node);
    expect(d.listeners.added.map((l) => l.name)).toEqual(['out', 'admin-ish']);
    expect(d.clusters.added.map((c) => c.name)).toEqual(['api', 'web']);
    expect(d.listeners.changed).toEqual([]);
    expect(d.clusters.removed).toEqual([]);
    expect(summarizeDelta(d)).toBe('initial config');
  });

  it('nothing changed: an empty delta', () => {
    const d = compileDelta(snap(base()), snap(base(), 2), 1);
    expect(isEmptyDelta(d)).toBe(true);
    expect(d.fromVersion).toBe(1);
    expect(d.version).toBe(2);
    expect(summarizeDelta(d)).toBe('no change');
  });

  it("key order is irrelevant (the same snapshot with every object's keys reversed)", () => {
    const reorderKeys = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reorderKeys)
        : v !== null && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reorderKeys(x)]),
            )
          : v;
    const prev = snap(base());
    const next = { ...(reorderKeys(snap(base())) as Snapshot), version: 2 };
    expect(JSON.stringify(prev.listeners)).not.toBe(JSON.stringify(next.listeners));
    expect(isEmptyDelta(compileDelta(prev, next, 1))).toBe(true);
    expect(isEmptyDelta(compileDelta(prev, next, null))).toBe(true);
  });

  it('a listener added', () => {
    const next = edit((r) => listeners(r).push({ name: 'extra', address: '127.0.0.1:15003', routes: [{ cluster: 'api' }] }));
    const d = compileDelta(snap(base()), next, 1);
    expect(d.listeners.added.map((l) => l.name)).toEqual(['extra']);
    expect(d.listeners.changed).toEqual([]);
    expect(d.listeners.removed).toEqual([]);
    expect(d.clusters).toEqual({ added: [], changed: [], removed: [] });
    expect(summarizeDelta(d)).toBe('+listener extra');
  });

  it('a listener removed', () => {
    const next = edit((r) => listeners(r).pop());
    const d = compileDelta(snap(base()), next, 2);
    expect(d.listeners.removed).toEqual(['admin-ish']);
    expect(d.listeners.added).toEqual([]);
    expect(summarizeDelta(d)).toBe('-listener admin-ish');
  });

  it('a listener moved: rebind, routes untouched', () => {
    const next = edit((r) => (listeners(r)[0]!['address'] = '127.0.0.1:15009'));
    const [c] = compileDelta(snap(base()), next, 1).listeners.changed;
    expect(c?.spec.port).toBe(15009);
    expect(c?.moved).toBe(true);
    expect(c?.rebind).toBe(true);
    expect(routesChanged(c!.routes)).toBe(false);
    expect(c?.routeRateLimits).toEqual([]);
  });

  it('a listener changed in place: TLS-free settings, rate limit, authorization, access log', () => {
    const next = edit((r) => {
      const l = listeners(r)[1]!;
      l['rate_limit'] = { requests_per_second: 5 };
      l['authorization'] = [{ paths: ['/y'] }];
      l['access_log'] = { path: 'stdout' };
      l['max_request_headers_bytes'] = 4096;
    });
    const d = compileDelta(snap(base()), next, 1);
    expect(d.listeners.changed).toHaveLength(1);
    const c = d.listeners.changed[0]!;
    expect(c.spec.name).toBe('admin-ish');
    expect(c).toMatchObject({ rebind: false, moved: false, rateLimit: true, authorization: true, accessLog: true });
    expect(routesChanged(c.routes)).toBe(false);
  });

  it('an engine change rebinds on the same address', () => {
    const next = edit((r) => (listeners(r)[0]!['engine'] = 'uws'));
    const before = edit((r) => (listeners(r)[0]!['engine'] = 'node'));
    const [c] = compileDelta(before, next, 1).listeners.changed;
    expect(c).toMatchObject({ rebind: true, moved: false });
  });

  it('a route changed: named, with its rate limit flagged; the other route kept', () => {
    const next = edit((r) => {
      const api = routes(listeners(r)[0]!)[0]!;
      api['rate_limit'] = { requests_per_second: 20 };
      api['timeout_ms'] = 1234;
    });
    const d = compileDelta(snap(base()), next, 1);
    const c = d.listeners.changed[0]!;
    expect(c.routes).toEqual({ added: [], changed: ['api'], removed: [], reordered: false });
    expect(c.routeRateLimits).toEqual(['api']);
    expect(c).toMatchObject({ rebind: false, rateLimit: false, authorization: false, accessLog: false });
    expect(summarizeDelta(d)).toBe('listener out routes changed, listener out rate limits changed');
  });

  it('routes added, removed and reordered', () => {
    const next = edit((r) => {
      const rs = routes(listeners(r)[0]!);
      rs.reverse();
      rs.push({ name: 'new', match: { host: 'new' }, cluster: 'web', rate_limit: { requests_per_second: 1 } });
    });
    const c = compileDelta(snap(base()), next, 1).listeners.changed[0]!;
    expect(c.routes).toEqual({ added: ['new'], changed: [], removed: [], reordered: true });
    expect(c.routeRateLimits).toEqual(['new']);
    const fewer = edit((r) => routes(listeners(r)[0]!).pop());
    expect(compileDelta(snap(base()), fewer, 1).listeners.changed[0]!.routes).toEqual({ added: [], changed: [], removed: ['web'], reordered: false });
  });

  it('cluster endpoints added, re-weighted and removed', () => {
    const next = edit((r) => {
      clusters(r)[0]!['endpoints'] = [{ address: '127.0.0.1:8081', weight: 5 }, { address: '127.0.0.1:8082' }];
    });
    const d = compileDelta(snap(base()), next, 1);
    expect(d.listeners.changed).toEqual([]);
    expect(d.clusters.changed).toHaveLength(1);
    const c = d.clusters.changed[0]!;
    expect(c.name).toBe('api');
    expect(c.endpoints.added.map((e) => e.address)).toEqual(['127.0.0.1:8082']);
    expect(c.endpoints.changed.map((e) => [e.address, e.weight])).toEqual([['127.0.0.1:8081', 5]]);
    expect(c.endpoints.removed).toEqual(['127.0.0.1:8080']);
    expect(c).toMatchObject({ tls: false, settings: false });
    expect(summarizeDelta(d)).toBe('cluster api +127.0.0.1:8082, cluster api -127.0.0.1:8080');
  });

  it('a change of endpoints alone carries the changes, not the cluster spec; a settings change carries the spec', () => {
    const prev = snap(base());
    const api = prev.clusters[0]!;
    const [kept, gone] = api.endpoints;
    // As the discovery manager makes it: the kept endpoint is the same object, one swapped for a new one.
    const fresh = { address: '127.0.0.1:8089', host: '127.0.0.1', port: 8089, weight: 1 };
    const swapped = { ...prev, version: 2, clusters: [{ ...api, endpoints: [kept!, fresh] }, prev.clusters[1]!] };
    const c = compileDelta(prev, swapped, 1).clusters.changed[0]!;
    expect(c).toEqual({ name: 'api', spec: null, endpoints: { added: [fresh], changed: [], removed: [gone!.address] }, tls: false, settings: false });

    const reweighted = { ...prev, version: 2, clusters: [{ ...api, endpoints: [{ ...kept!, weight: 7 }, gone!] }, prev.clusters[1]!] };
    expect(compileDelta(prev, reweighted, 1).clusters.changed[0]).toMatchObject({
      spec: null,
      endpoints: { changed: [{ address: kept!.address, weight: 7 }] },
    });

    // A new endpoints array holding the same endpoints is no change.
    const copied = { ...prev, version: 2, clusters: [{ ...api, endpoints: [...api.endpoints] }, prev.clusters[1]!] };
    expect(compileDelta(prev, copied, 1).clusters.changed).toEqual([]);

    const settings = edit((r) => (clusters(r)[0]!['lb'] = 'random'));
    expect(compileDelta(prev, settings, 1).clusters.changed[0]!.spec).toBe(settings.clusters[0]);
  });

  it('cluster settings and TLS changes are told apart', () => {
    const settings = edit((r) => (clusters(r)[1]!['lb'] = 'random'));
    expect(compileDelta(snap(base()), settings, 1).clusters.changed[0]).toMatchObject({ tls: false, settings: true });
    const tls = edit((r) => (clusters(r)[1]!['tls'] = { mode: 'mtls', identity: 'spiffe://cluster.local/ns/default/sa/web' }));
    const c = compileDelta(snap(base()), tls, 1).clusters.changed[0]!;
    expect(c).toMatchObject({ tls: true, settings: false });
    expect(c.endpoints).toEqual({ added: [], changed: [], removed: [] });
  });

  it('clusters added and removed', () => {
    const next = edit((r) => {
      clusters(r).push({ name: 'extra', endpoints: [{ address: '127.0.0.1:7070' }] });
    });
    const d = compileDelta(snap(base()), next, 1);
    expect(d.clusters.added.map((c) => c.name)).toEqual(['extra']);
    expect(compileDelta(next, snap(base(), 3), 1).clusters.removed).toEqual(['extra']);
  });

  it('node settings changes are carried', () => {
    const next = edit((r) => ((r['node'] as Raw)['random_seed'] = 7));
    const d = compileDelta(snap(base()), next, 1);
    expect(d.node?.randomSeed).toBe(7);
    expect(summarizeDelta(d)).toBe('node settings changed');
  });

  it('placement: every worker serves every listener; each worker gets the listeners placed on it', () => {
    const s = snap(base());
    for (const l of s.listeners) expect(listenerPlacement(l, 2)).toEqual([1, 2]);
    expect(compileDelta(null, s, 2).listeners.added.map((l) => l.name)).toEqual(['out', 'admin-ish']);
    expect(compileDelta(null, s, null).listeners.added).toHaveLength(2);
  });

  it('the delta is plain data (survives structured clone)', () => {
    const next = edit((r) => (clusters(r)[0]!['lb'] = 'random'));
    const d = compileDelta(snap(base()), next, 1);
    expect(structuredClone(d)).toEqual(d);
  });
});

describe('sameValue', () => {
  it('compares plain data structurally', () => {
    expect(sameValue({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 })).toBe(true);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined })).toBe(true);
    expect(sameValue([1, 2], [2, 1])).toBe(false);
    expect(sameValue({ a: null }, { a: 0 })).toBe(false);
    expect(sameValue({ a: [] }, { a: {} })).toBe(false);
    expect(sameValue(null, {})).toBe(false);
    expect(sameValue(Number.NaN, Number.NaN)).toBe(true);
  });
});

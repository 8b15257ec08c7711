// `outrigger mesh apply | status | rollback` against a real 3-member etcd cluster and three real
// sidecars of service `web` (each with discovery.etcd and node.service): an invalid mesh file is
// refused with every problem and writes nothing; a valid one reaches every sidecar through the
// acknowledged reload path (history "mesh vN", the new route answers); a version one sidecar cannot
// apply leaves it on its previous one and `mesh status` says why; rollback writes an old version's
// content as a new one; one member killed under load with an apply fails no request. (A whole-etcd
// outage is etcd_outage.test.ts.)

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import {
  adminCall,
  closeAll,
  eventually,
  routedTo,
  startApp,
  startLoad,
  startSidecar,
  startUpstream,
  stopWithoutFailures,
  moreRequests,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { mesh, meshFile, meshStatus, rowOf, untilAllAt, type MeshStatus } from './mesh_fixtures.js';

const why = etcdUnavailable();

const upstreamNamed = (name: string): Promise<Upstream> => startUpstream({ name, mode: 'ok', body: (r) => `${name} ${r.url}` });

/** A `main` listener on an ephemeral port: `/new` to `newCluster` (when given), the rest to `app`. */
function mainListener(newCluster?: string): Record<string, unknown> {
  const routes: Array<Record<string, unknown>> = [{ match: { path_prefix: '/' }, cluster: 'app' }];
  if (newCluster !== undefined) routes.unshift({ match: { path_prefix: '/new' }, cluster: newCluster });
  return { name: 'main', address: '127.0.0.1:0', routes };
}

describe.skipIf(why !== null)(`outrigger mesh with three sidecars on a 3-member etcd${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let etcd: EtcdCluster;
  let app: Upstream;
  let blue: Upstream;
  let extra: Upstream;
  let sidecars: Sidecar[];
  let etcdFlag: string;

  const configVersion = async (sc: Sidecar): Promise<{ version: number; by: string }> => {
    const h = await adminCall(sc, 'GET', '/config/history');
    const last = h.json.versions[h.json.versions.length - 1] as { version: number; by: string };
    return last;
  };
  const status = (): Promise<MeshStatus> => meshStatus(etcdFlag);
  const allAt = (scs: readonly Sidecar[], version: number): Promise<void> => untilAllAt(etcdFlag, scs, version);
  /** The mesh file that sends `/new` to cluster `blue` (its own upstream) and the rest to `app`. */
  const blueMesh = (extraListeners: readonly Record<string, unknown>[] = []): string =>
    meshFile({
      services: {
        web: {
          listeners: [mainListener('blue'), ...extraListeners],
          clusters: [
            { name: 'app', endpoints: [{ address: app.address }] },
            { name: 'blue', endpoints: [{ address: blue.address }] },
          ],
        },
      },
    });

  beforeAll(async () => {
    etcd = await startEtcdCluster();
    etcdFlag = etcd.endpoints.join(',');
    [app, blue, extra] = await Promise.all([startApp(), upstreamNamed('blue'), upstreamNamed('extra')]);
    const local = (withExtra: boolean): Record<string, unknown> => ({
      node: { workers: 1, drain_timeout_ms: 1000, service: { name: 'web', address: '127.0.0.1', port: 8080, ttl_s: 5 } },
      discovery: { etcd: { endpoints: etcd.endpoints } },
      listeners: [mainListener()],
      clusters: [{ name: 'app', endpoints: [{ address: app.address }] }, ...(withExtra ? [{ name: 'extra', endpoints: [{ address: extra.address }] }] : [])],
    });
    // The third sidecar's local file has no cluster `extra`.
    sidecars = await Promise.all([startSidecar(local(true)), startSidecar(local(true)), startSidecar(local(false))]);
  }, 120_000);
  afterAll(closeAll);

  it('refuses an invalid mesh file with every problem by path and writes nothing', async () => {
    const file = meshFile({
      services: {
        web: { listeners: [mainListener('nowhere')], clusters: [{ name: 'app', endpoints: [{ address: app.address }] }] },
        api: { clusters: [{ name: 'api', lb: 'fastest', endpoints: [] }] },
        'bad/name': { listeners: [] },
      },
    });
    const r = await mesh(['apply', '-f', file, '--etcd', etcdFlag]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('services.web.listeners[0].routes[0].cluster: unknown cluster "nowhere"');
    expect(r.stderr).toContain('services.api.clusters[0].lb');
    expect(r.stderr).toContain('services["bad/name"]');
    expect(r.stderr).toContain('nothing was written');
    expect(await etcd.ctl(['get', '--prefix', '/outrigger/mesh'])).toBe('');
  });

  it('reaches the three sidecars: new config version from "mesh v1", the new route answers, status at lag 0', async () => {
    const r = await mesh(['apply', '-f', blueMesh(), '--etcd', etcdFlag]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('mesh version 1 written');
    await allAt(sidecars, 1);
    for (const sc of sidecars) {
      expect(await configVersion(sc)).toMatchObject({ version: 2, by: 'mesh v1' });
      expect(await routedTo(sc, '/new/thing')).toBe('blue');
      expect(await routedTo(sc, '/other')).toBe('app');
    }
    const s = await status();
    expect(s.current_version).toBe(1);
    // Each one's registration (node.service) is alive beside its status line.
    for (const sc of sidecars) expect(rowOf(s.sidecars, sc)).toMatchObject({ service: 'web', registered: true });
  });

  it('a version one sidecar cannot apply leaves it on its previous one, reported with the reason; the others apply it', async () => {
    // Listeners only: each sidecar keeps its local clusters, and the third has no `extra`.
    const r = await mesh(['apply', '-f', meshFile({ services: { web: { listeners: [mainListener('extra')] } } }), '--etcd', etcdFlag]);
    expect(r.code, r.stderr).toBe(0);
    const [a, b, c] = sidecars as [Sidecar, Sidecar, Sidecar];
    await allAt([a, b], 2);
    const row = await eventually(
      async () => {
        const got = rowOf((await status()).sidecars, c);
        return got?.status === 'error' ? got : undefined;
      },
      'the third sidecar reports an error',
      30_000,
      200,
    );
    expect(row).toMatchObject({ applied_version: 1, lag: 1 });
    expect(row.error).toContain('unknown cluster "extra"');
    expect(await configVersion(c)).toMatchObject({ version: 2, by: 'mesh v1' });
    expect(await routedTo(c, '/new/thing')).toBe('blue');
    for (const sc of [a, b]) expect(await routedTo(sc, '/new/thing')).toBe('extra');
    const ready = await adminCall(c, 'GET', '/ready');
    expect(JSON.stringify(ready.json.warnings)).toContain('version 2 not applied');
  });

  it('rollback --to 1 writes version 1 content as version 3; every sidecar applies it', async () => {
    const r = await mesh(['rollback', '--to', '1', '--etcd', etcdFlag]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('mesh version 3 written');
    expect(await etcd.ctl(['get', '/outrigger/mesh/versions/3', '--print-value-only'])).toBe(
      await etcd.ctl(['get', '/outrigger/mesh/versions/1', '--print-value-only']),
    );
    await allAt(sidecars, 3);
    for (const sc of sidecars) expect(await routedTo(sc, '/new/thing')).toBe('blue');
    expect((await mesh(['rollback', '--to', '99', '--etcd', etcdFlag])).code).toBe(2);
  });

  it('one member killed during continuous traffic and an apply: not one request fails', async () => {
    const steady = sidecars.map((sc) => startLoad(sc.port(), { connections: 4, path: (i) => `/other/${i}` }));
    await Promise.all(steady.map((l) => moreRequests(l, 50)));
    await etcd.members[1]!.kill();
    const r = await mesh(['apply', '-f', blueMesh(), '--etcd', etcdFlag]);
    expect(r.code, r.stderr).toBe(0);
    await allAt(sidecars, 4);
    await Promise.all(steady.map((l) => moreRequests(l, 50)));
    for (const l of steady) await stopWithoutFailures(l);
    for (const sc of sidecars) expect(await routedTo(sc, '/new/thing')).toBe('blue');
  });

  it('a drained sidecar leaves mesh status at once (its status lease revoked, its registration gone)', async () => {
    const c = sidecars[2]!;
    expect(rowOf((await status()).sidecars, c)).toBeDefined();
    expect(await c.stop()).toBe(0);
    // Both revokes answered before the drain closed the etcd client (none left to the TTL).
    expect(c.entries().filter((e) => /could not revoke/.test(String(e.msg)))).toEqual([]);
    expect(rowOf((await status()).sidecars, c)).toBeUndefined();
  });

  it('a version whose listener port another process holds is refused by the workers: both sidecars stay on version 4, status error', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const held = (holder.address() as net.AddressInfo).port;
    try {
      const taken = { name: 'taken', address: `127.0.0.1:${held}`, routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] };
      const r = await mesh(['apply', '-f', blueMesh([taken]), '--etcd', etcdFlag]);
      expect(r.code, r.stderr).toBe(0);
      const live = sidecars.slice(0, 2);
      const rows = await eventually(
        async () => {
          const { sidecars: all } = await status();
          const got = live.map((sc) => rowOf(all, sc));
          return got.every((row) => row?.status === 'error') ? got : undefined;
        },
        'both sidecars report version 5 not applied',
        30_000,
        200,
      );
      for (const row of rows) expect(row).toMatchObject({ applied_version: 4, lag: 1 });
      expect(rows[0]!.error).toContain(String(held));
      for (const sc of live) {
        expect(await configVersion(sc)).toMatchObject({ by: 'mesh v4' });
        expect(await routedTo(sc, '/new/thing')).toBe('blue');
      }
    } finally {
      holder.close();
    }
  });
});

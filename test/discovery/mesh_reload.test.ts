// A local config reload on a sidecar that follows the mesh-wide config (one etcd member): the
// file watch and SIGHUP build the running config as a mesh version does — the new local file
// with the applied mesh version's part in place of its own — so the mesh's route stays, the
// file's own change (outside the mesh's parts) takes effect, and mesh status stays true. The
// next mesh version is then built on the reloaded file.

import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aliasBombYaml } from '../helpers/configs.js';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import {
  adminCall,
  closeAll,
  eventually,
  rewriteConfig,
  routedTo,
  spawnCli,
  startSidecar,
  startUpstream,
  tempDir,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

const why = etcdUnavailable();

describe.skipIf(why !== null)(`a local reload on a sidecar that follows the mesh config${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let etcd: EtcdCluster;
  let app: Upstream;
  let blue: Upstream;
  let sc: Sidecar;
  afterAll(closeAll);

  /** Listener `main`, as the local file and the mesh both write it: `/new` to `newTo` (none: no such route), the rest to app. */
  const mainListener = (newTo: 'app' | 'blue' | null): Record<string, unknown> => ({
    name: 'main',
    address: '127.0.0.1:0',
    routes: [...(newTo === null ? [] : [{ match: { path_prefix: '/new' }, cluster: newTo }]), { match: { path_prefix: '/' }, cluster: 'app' }],
  });

  /** The sidecar's local file: `/` (and `/new` when `newToApp`) to app; `drainMs` marks which version of the file runs. */
  const local = (drainMs: number, newToApp = false): Record<string, unknown> => ({
    node: { workers: 1, drain_timeout_ms: drainMs, service: { name: 'web', address: '127.0.0.1', port: 8080, ttl_s: 5 } },
    discovery: { etcd: { endpoints: etcd.endpoints } },
    listeners: [mainListener(newToApp ? 'app' : null)],
    clusters: [{ name: 'app', endpoints: [{ address: app.address }] }],
  });

  const mesh = async (args: readonly string[]): Promise<void> => {
    const p = spawnCli(['mesh', ...args, '--etcd', etcd.endpoints.join(',')]);
    expect(await p.exit(30_000), p.stderr()).toBe(0);
  };
  const lastVersion = async (): Promise<{ version: number; by: string }> => {
    const h = await adminCall(sc, 'GET', '/config/history');
    return h.json.versions[h.json.versions.length - 1] as { version: number; by: string };
  };
  const drainMs = async (): Promise<number> => (await adminCall(sc, 'GET', '/config')).json.config.node.drain_timeout_ms as number;
  /** This sidecar's row of `mesh status --json`. */
  const statusRow = async (): Promise<Record<string, unknown> | undefined> => {
    const p = spawnCli(['mesh', 'status', '--json', '--etcd', etcd.endpoints.join(',')]);
    expect(await p.exit(30_000), p.stderr()).toBe(0);
    const rows = (JSON.parse(p.stdout()) as { sidecars: Array<Record<string, unknown>> }).sidecars;
    return rows.find((r) => r['id'] === `${os.hostname()}-${sc.pid}`);
  };

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    [app, blue] = await Promise.all([
      startUpstream({ name: 'app', mode: 'ok', body: (r) => `app ${r.url}` }),
      startUpstream({ name: 'blue', mode: 'ok', body: (r) => `blue ${r.url}` }),
    ]);
    sc = await startSidecar(local(1000));
    const meshFile = path.join(tempDir('outrigger-mesh-'), 'mesh.json');
    writeFileSync(
      meshFile,
      JSON.stringify({
        services: {
          web: {
            listeners: [mainListener('blue')],
            clusters: [
              { name: 'app', endpoints: [{ address: app.address }] },
              { name: 'blue', endpoints: [{ address: blue.address }] },
            ],
          },
        },
      }),
    );
    await mesh(['apply', '-f', meshFile]);
    await eventually(async () => ((await lastVersion()).by === 'mesh v1' ? true : undefined), 'mesh v1 applied', 30_000, 200);
    expect(await routedTo(sc, '/new/x')).toBe('blue');
  }, 120_000);

  it('a file change keeps the mesh route and applies the file’s own change', async () => {
    rewriteConfig(sc, local(1500));
    await eventually(async () => ((await drainMs()) === 1500 ? true : undefined), 'the changed file applied', 15_000, 100);
    expect(await routedTo(sc, '/new/x')).toBe('blue');
    expect(await lastVersion()).toMatchObject({ by: expect.stringMatching(/^file change of .* with mesh v1$/) as unknown });
    expect(await statusRow()).toMatchObject({ applied_version: 1, status: 'ok', lag: 0 });
  });

  it('SIGHUP keeps the mesh route; a change to the parts the mesh sets does not win over it', async () => {
    // The file's own listener now sends /new to app: the mesh's listeners still replace it.
    rewriteConfig(sc, local(2000, true));
    await eventually(async () => ((await drainMs()) === 2000 ? true : undefined), 'the changed file applied', 15_000, 100);
    const before = (await lastVersion()).version;
    process.kill(sc.pid, 'SIGHUP');
    await eventually(async () => ((await lastVersion()).version > before ? true : undefined), 'the SIGHUP reload', 15_000, 100);
    expect(await routedTo(sc, '/new/x')).toBe('blue');
    expect((await lastVersion()).by).toMatch(/^SIGHUP of .* with mesh v1$/);
    expect(await routedTo(sc, '/other')).toBe('app');
  });

  it('the next mesh version is built on the reloaded file', async () => {
    const meshFile = path.join(tempDir('outrigger-mesh-'), 'mesh.json');
    writeFileSync(meshFile, JSON.stringify({ services: { web: { clusters: [{ name: 'app', endpoints: [{ address: blue.address }] }] } } }));
    await mesh(['apply', '-f', meshFile]);
    await eventually(async () => ((await lastVersion()).by === 'mesh v2' ? true : undefined), 'mesh v2 applied', 30_000, 200);
    expect(await drainMs()).toBe(2000);
    // v2 sets clusters only: the file's listener (its /new route to app, now blue's address) is back.
    expect(await routedTo(sc, '/new/x')).toBe('blue');
    expect(await routedTo(sc, '/other')).toBe('blue');
    expect(await statusRow()).toMatchObject({ applied_version: 2, status: 'ok', lag: 0 });
  });

  it('PUT /config and rollbacks are rebuilt with the mesh version’s parts in place', async () => {
    // The API's limits hold on this path too: an alias bomb is refused, nothing changes.
    const refusedBomb = await adminCall(sc, 'PUT', '/config', aliasBombYaml());
    expect(refusedBomb.status).toBe(400);
    expect(refusedBomb.json.problems[0].message).toMatch(/aliases counted each time they are used/);
    expect(await drainMs()).toBe(2000);
    // Mesh v2 sets clusters only (app → blue's address). A PUT of the local file with another
    // drain time keeps them.
    const put = await adminCall(sc, 'PUT', '/config', local(2500, true));
    expect(put.status, JSON.stringify(put.json)).toBe(200);
    expect(await drainMs()).toBe(2500);
    expect(await routedTo(sc, '/other')).toBe('blue');
    expect((await lastVersion()).by).toMatch(/PUT \/config.* with mesh v2$/);
    const versions = (await adminCall(sc, 'GET', '/config/history')).json.versions as Array<{ version: number; by: string }>;
    // A version of mesh v1's time routes /new to v1's cluster blue, which v2's clusters replace:
    // rebuilt on v2 it is invalid, so it is refused with the problem and the running config stays.
    const v1Era = versions.find((v) => /^file change of .* with mesh v1$/.test(v.by));
    const refused = await adminCall(sc, 'POST', '/config/rollback', { version: v1Era!.version });
    expect(refused.status).toBe(400);
    expect(refused.json.problems).toEqual([expect.objectContaining({ path: 'listeners[0].routes[0].cluster', message: 'unknown cluster "blue"' })]);
    expect(await drainMs()).toBe(2500);
    // Mesh v2's own version applies again, with v2's clusters.
    const v2 = versions.find((v) => v.by === 'mesh v2');
    const back = await adminCall(sc, 'POST', '/config/rollback', { version: v2!.version });
    expect(back.status, JSON.stringify(back.json)).toBe(200);
    expect(await drainMs()).toBe(2000);
    expect(await routedTo(sc, '/other')).toBe('blue');
    expect(await statusRow()).toMatchObject({ applied_version: 2, status: 'ok', lag: 0 });
  });
});

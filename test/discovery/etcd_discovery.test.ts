// Cluster `discovery: {etcd: {service}}` against a real 3-member etcd: a sidecar routes to every
// sidecar registered for the service, drops a SIGKILLed one once its lease expires, keeps serving
// through a killed etcd member and through a whole-cluster outage on its last-known endpoints
// (/stats says so), and picks up a registration made after etcd returns.

import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster } from '../helpers/etcd.js';
import { adminCall, closeAll, eventually, startUpstream, untilCluster, type Sidecar, type Upstream } from '../helpers/sidecar.js';
import { discoveringSidecar, serviceSidecar, traffic } from './etcd_fixtures.js';

const why = etcdUnavailable();

/** The client sidecar's discovery status for cluster `api` (/stats `discovery`). */
async function apiDiscovery(sc: Sidecar): Promise<{ ok: boolean; endpoints: number | null; error?: string }> {
  const a = await adminCall(sc, 'GET', '/stats');
  const rows = (a.json as { discovery?: Array<{ cluster: string; ok: boolean; endpoints: number | null; error?: string }> }).discovery ?? [];
  const row = rows.find((r) => r.cluster === 'api');
  if (row === undefined) throw new Error(`no discovery row for api in /stats: ${a.text.slice(0, 300)}`);
  return row;
}

const served = (ups: readonly Upstream[]): number[] => ups.map((u) => u.requests.length);

describe.skipIf(why !== null)(`etcd discovery (clusters[].discovery.etcd)${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('routes to every registered sidecar; a SIGKILLed one leaves the set after its lease expires while traffic keeps succeeding', async () => {
    const etcd = await startEtcdCluster();
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1'), startUpstream('u2')]);
    const sides = await Promise.all(ups.map((u, i) => serviceSidecar(etcd.endpoints, u, i === 0 ? 2 : 10)));
    const client = await discoveringSidecar(etcd.endpoints);
    const addresses = sides.map((s) => `127.0.0.1:${s.port}`).sort();
    await untilCluster(client, 'api', (c) => c.endpoints.length === 3, 'three discovered endpoints', 15_000);
    expect((await untilCluster(client, 'api', () => true, 'view')).endpoints.map((e) => e.address).sort()).toEqual(addresses);

    const load = traffic(client);
    await eventually(() => (served(ups).every((n) => n > 0) ? true : undefined), 'every registered sidecar served', 15_000);
    sides[0]!.sc.child.kill('SIGKILL');
    await sides[0]!.sc.exit();
    await untilCluster(client, 'api', (c) => c.endpoints.length === 2, 'the killed sidecar dropped once its 2 s lease expired', 20_000);
    const after = served(ups);
    await eventually(() => (served(ups)[1]! > after[1]! + 20 && served(ups)[2]! > after[2]! + 20 ? true : undefined), 'the rest serve', 15_000);
    const { ok, failed } = await load.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    const killed = `127.0.0.1:${sides[0]!.port}`;
    expect((await untilCluster(client, 'api', () => true, 'view')).endpoints.map((e) => e.address).sort()).toEqual(addresses.filter((a) => a !== killed));
  });

  it('one etcd member killed under traffic: no failed request, and a registration made meanwhile is picked up', async () => {
    const etcd = await startEtcdCluster();
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1')]);
    await Promise.all(ups.map((u) => serviceSidecar(etcd.endpoints, u)));
    const client = await discoveringSidecar(etcd.endpoints);
    await untilCluster(client, 'api', (c) => c.endpoints.length === 2, 'two discovered endpoints', 15_000);
    const load = traffic(client);
    await etcd.members[0]!.kill();
    const late = await startUpstream('u-late');
    await serviceSidecar(etcd.endpoints, late);
    await untilCluster(client, 'api', (c) => c.endpoints.length === 3, 'the registration made with a member down', 30_000);
    await eventually(() => (late.requests.length > 0 ? true : undefined), 'the new sidecar served', 15_000);
    const { ok, failed } = await load.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
  });

  it('every etcd member stopped: traffic flows on the last-known endpoints (15 s), /stats reports it; after etcd returns a new registration is picked up', async () => {
    const etcd = await startEtcdCluster();
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1')]);
    await Promise.all(ups.map((u) => serviceSidecar(etcd.endpoints, u)));
    const client = await discoveringSidecar(etcd.endpoints);
    await untilCluster(client, 'api', (c) => c.endpoints.length === 2, 'two discovered endpoints', 15_000);
    const load = traffic(client);
    await etcd.stopAll();
    const stoppedAt = Date.now();
    const down = await eventually(
      async () => {
        const d = await apiDiscovery(client);
        return d.ok ? undefined : d;
      },
      'discovery reported unhealthy',
      30_000,
      200,
    );
    expect(down.endpoints).toBe(2);
    // Keep the cluster down for 15 s of traffic (the issue's minute costs too much here).
    const before = served(ups);
    await eventually(() => (Date.now() - stoppedAt >= 15_000 ? true : undefined), '15 s with etcd down', 20_000, 250);
    expect(served(ups).every((n, i) => n > before[i]!)).toBe(true);
    expect((await untilCluster(client, 'api', () => true, 'view')).endpoints).toHaveLength(2);

    await etcd.startAll();
    const late = await startUpstream('u-late');
    await serviceSidecar(etcd.endpoints, late);
    // The watch reconnects with etcd3's jittered backoff (at most 30 s apart), then resumes.
    await untilCluster(client, 'api', (c) => c.endpoints.length === 3, 'the registration made after etcd returned', 60_000);
    await eventually(async () => ((await apiDiscovery(client)).ok ? true : undefined), 'discovery healthy again', 60_000, 200);
    await eventually(() => (late.requests.length > 0 ? true : undefined), 'the new sidecar served', 15_000);
    const { ok, failed } = await load.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
  });
});

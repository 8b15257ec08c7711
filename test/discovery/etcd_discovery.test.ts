// Cluster `discovery: {etcd: {service}}` against a real 3-member etcd: a sidecar routes to every
// sidecar registered for the service, drops a SIGKILLed one once its lease expires, and keeps
// serving through a killed etcd member. (A whole-cluster outage is etcd_outage.test.ts.)

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { closeAll, eventually, startUpstream, untilCluster, type Upstream } from '../helpers/sidecar.js';
import { discoveringSidecar, freshSpace, serviceSidecar, traffic } from './etcd_fixtures.js';

const why = etcdUnavailable();

const served = (ups: readonly Upstream[]): number[] => ups.map((u) => u.requests.length);

describe.skipIf(why !== null)(`etcd discovery (clusters[].discovery.etcd)${why === null ? '' : ` (skipped: ${why})`}`, () => {
  // One cluster for the file: each test meets its sidecars under a prefix of its own (freshSpace).
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcdCluster();
  });
  // A test that kills a member leaves the cluster whole again for the next one.
  afterEach(async () => {
    await Promise.all(etcd.members.map((m) => m.start()));
  });
  afterAll(closeAll);

  it('routes to every registered sidecar; a SIGKILLed one leaves the set after its lease expires while traffic keeps succeeding', async () => {
    const space = freshSpace(etcd);
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1'), startUpstream('u2')]);
    const sides = await Promise.all(ups.map((u, i) => serviceSidecar(space, u, i === 0 ? 2 : 10)));
    const client = await discoveringSidecar(space);
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
    const space = freshSpace(etcd);
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1')]);
    await Promise.all(ups.map((u) => serviceSidecar(space, u)));
    const client = await discoveringSidecar(space);
    await untilCluster(client, 'api', (c) => c.endpoints.length === 2, 'two discovered endpoints', 15_000);
    const load = traffic(client);
    await etcd.members[0]!.kill();
    const late = await startUpstream('u-late');
    await serviceSidecar(space, late);
    await untilCluster(client, 'api', (c) => c.endpoints.length === 3, 'the registration made with a member down', 30_000);
    await eventually(() => (late.requests.length > 0 ? true : undefined), 'the new sidecar served', 15_000);
    const { ok, failed } = await load.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
  });
});

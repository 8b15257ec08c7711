// node.service registration in a real 3-member etcd (test/helpers/etcd.ts): sidecars put
// `<p>/services/<name>/<hostname>-<pid>` under a lease; a SIGKILLed sidecar's key goes when its
// lease expires; a draining sidecar deletes its key before it stops accepting. (A lease lost in a
// whole-etcd outage, granted again when etcd returns: etcd_outage.test.ts.)

import net from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { closeAll, eventually, httpGet, startUpstream, track } from '../helpers/sidecar.js';
import { freshSpace, keyOf, registrations, serviceSidecar } from './etcd_fixtures.js';

const why = etcdUnavailable();

/**
 * A TCP relay in front of one etcd member whose etcd→sidecar direction the test can hold: etcd
 * still gets (and acts on) what the sidecar sends, the sidecar gets no answer until release.
 */
async function holdableRelay(target: string): Promise<{ endpoint: string; hold(): void; release(): void }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  /** etcd-side socket → the sidecar-side one it relays to. */
  const fromEtcd = new Map<net.Socket, net.Socket>();
  let held = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    client.pipe(upstream);
    if (!held) upstream.pipe(client);
    fromEtcd.set(upstream, client);
    const end = (): void => {
      fromEtcd.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return {
    endpoint: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    hold: () => {
      held = true;
      for (const s of fromEtcd.keys()) s.unpipe().pause();
    },
    release: () => {
      held = false;
      for (const [s, client] of fromEtcd) s.pipe(client);
    },
  };
}

describe.skipIf(why !== null)(`etcd registration (node.service)${why === null ? '' : ` (skipped: ${why})`}`, () => {
  // One cluster for the file: each test registers under a prefix of its own (freshSpace).
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcdCluster();
    client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
    track({ close: () => Promise.resolve(client.close()) });
  });
  afterAll(closeAll);

  it('three sidecars register under their lease; a SIGKILLed one disappears once its lease expires, the others stay', async () => {
    const space = freshSpace(etcd);
    const ups = await Promise.all([startUpstream('u0'), startUpstream('u1'), startUpstream('u2')]);
    const sides = await Promise.all(ups.map((u, i) => serviceSidecar(space, u, i === 0 ? 2 : 10)));

    const all = await eventually(async () => {
      const r = await registrations(etcd, space);
      return r.size === 3 ? r : undefined;
    }, 'three registrations');
    for (const { sc, port } of sides) expect(all.get(keyOf(space, sc))).toEqual({ address: '127.0.0.1', port, weight: 1, metadata: { zone: 'a' } });
    // Each key is under a lease with the sidecar's ttl_s.
    const victim = sides[0]!.sc;
    const lease = (await client.get(keyOf(space, victim)).exec()).kvs[0]!.lease;
    const ttl = await etcd.ctl(['lease', 'timetolive', BigInt(lease).toString(16)]);
    expect(ttl).toMatch(/granted with TTL\(2s\)/);

    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exit();
    await eventually(
      async () => ((await registrations(etcd, space)).has(keyOf(space, victim)) ? undefined : true),
      'the killed sidecar’s key expires',
      15_000,
      100,
    );
    // etcd expires a lease no earlier than its TTL after the last keepalive (sent at most ttl/3 before the kill).
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(((2 * 2) / 3) * 1000 - 100);
    const left = await registrations(etcd, space);
    expect([...left.keys()].sort()).toEqual([keyOf(space, sides[1]!.sc), keyOf(space, sides[2]!.sc)].sort());
  });

  it('a draining sidecar deletes its key before it stops accepting', async () => {
    const relay = await holdableRelay(etcd.endpoints[0]!);
    const up = await startUpstream('u');
    const space = { ...freshSpace(etcd), endpoints: [relay.endpoint] };
    const { sc } = await serviceSidecar(space, up);
    const key = keyOf(space, sc);
    await eventually(async () => ((await client.get(key).string()) !== null ? true : undefined), 'registered');

    // etcd's answers to the sidecar are held: it revokes its lease (etcd deletes the key) and then
    // waits for the answer before it drains its workers.
    const watcher = await client.watch().key(key).create();
    const deleted = new Promise<void>((resolve) => watcher.on('delete', () => resolve()));
    relay.hold();
    sc.child.kill('SIGTERM');
    await deleted;
    expect(await client.get(key).string()).toBeNull();
    // The key is gone and the listener still answers, on a new connection.
    const answer = await httpGet(sc.url('/after-deregistration'));
    expect(answer.status).toBe(200);
    expect(up.requests.map((r) => r.url)).toContain('/after-deregistration');
    relay.release();
    expect(await sc.exit(20_000)).toBe(0);
    expect(sc.entries().some((e) => e.msg === 'etcd: deregistered')).toBe(true);
  });
});

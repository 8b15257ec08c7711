// SRV priorities (RFC 2782) through a real sidecar, dnsmasq on a loopback port as the DNS server
// (TTL 1 s): a cluster gets the targets of the lowest priority only, weighted; when none of them
// exists (NXDOMAIN) the next priority serves, and traffic returns to the lower one once a target
// of it exists again. A lower priority whose target lookups fail (a timeout, not an absence) is
// not skipped: the source is stale and the fallback gets no traffic.
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { adminCall, startSidecar, type Sidecar } from '../helpers/sidecar.js';
import { bodies, named, type Named } from './dns_fixtures.js';

const SRV_NAME = '_api._tcp.mesh.local';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(name: string): Promise<Named> {
  const n = await named(name, '127.0.0.1');
  cleanups.push(() => n.close());
  return n;
}

/** `_api._tcp.mesh.local` → target on `n`'s port, as dnsmasq's --srv-host takes it. */
const srv = (target: string, n: Pick<Named, 'port'>, priority: number, weight: number): string => `${SRV_NAME},${target},${n.port},${priority},${weight}`;

async function srvSidecar(resolver: string): Promise<Sidecar> {
  const sc = await startSidecar({
    node: { workers: 1, drain_timeout_ms: 1000 },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'api' }] }],
    clusters: [{ name: 'api', lb: 'round_robin', discovery: { dns: { name: SRV_NAME, type: 'SRV', resolvers: [resolver] } } }],
  });
  cleanups.push(() => sc.stop());
  return sc;
}

/** `api`'s endpoints in /clusters, as sorted `address weight` strings. */
async function endpoints(sc: Sidecar): Promise<string[]> {
  const clusters = (await adminCall(sc, 'GET', '/clusters')).json.clusters as Array<{ name: string; endpoints: Array<{ address: string; weight: number }> }>;
  return (clusters.find((c) => c.name === 'api')?.endpoints ?? []).map((e) => `${e.address} ${e.weight}`).sort();
}

describe('DNS SRV priorities (dnsmasq on loopback)', () => {
  it('only the lowest priority serves, with its weights; the higher one gets no traffic', async () => {
    const [a, b, backup] = await Promise.all([server('a'), server('b'), server('backup')]);
    const dns = await startDnsmasq({
      hostRecords: ['a.mesh.local,127.0.0.1', 'backup.mesh.local,127.0.0.1'],
      srv: [srv('a.mesh.local', a, 10, 10), srv('a.mesh.local', b, 10, 30), srv('backup.mesh.local', backup, 20, 50)],
    });
    cleanups.push(() => dns.stop());
    const sc = await srvSidecar(dns.address);
    await expect.poll(() => endpoints(sc), { timeout: 10_000 }).toEqual([`127.0.0.1:${a.port} 10`, `127.0.0.1:${b.port} 30`].sort());
    // Weighted round robin over 10 + 30: 40 requests are 10 to a and 30 to b.
    const got = await bodies(sc, 40);
    expect(got.filter((x) => x === 'a')).toHaveLength(10);
    expect(got.filter((x) => x === 'b')).toHaveLength(30);
    expect(backup.connections).toBe(0);
  });

  it('the next priority serves while no target of the lowest exists, and traffic returns once one does', async () => {
    const [primary, backup] = await Promise.all([server('primary'), server('backup')]);
    // primary.mesh.local is in no record yet: NXDOMAIN.
    const dns = await startDnsmasq({
      hostRecords: ['backup.mesh.local,127.0.0.1'],
      srv: [srv('primary.mesh.local', primary, 0, 1), srv('backup.mesh.local', backup, 1, 1)],
    });
    cleanups.push(() => dns.stop());
    const sc = await srvSidecar(dns.address);
    await expect.poll(() => bodies(sc, 1), { timeout: 10_000 }).toEqual(['backup']);
    expect(await endpoints(sc)).toEqual([`127.0.0.1:${backup.port} 1`]);

    dns.setHosts(['127.0.0.1 primary.mesh.local']);
    await expect.poll(() => endpoints(sc), { timeout: 10_000 }).toEqual([`127.0.0.1:${primary.port} 1`]);
    expect(await bodies(sc, 4)).toEqual(['primary', 'primary', 'primary', 'primary']);

    dns.setHosts([]);
    await expect.poll(() => endpoints(sc), { timeout: 10_000 }).toEqual([`127.0.0.1:${backup.port} 1`]);
    expect(await bodies(sc, 2)).toEqual(['backup', 'backup']);
  });

  it('a lowest priority whose target lookup times out is not skipped: stale, and the next priority gets nothing', async () => {
    const [primary, backup] = await Promise.all([server('primary'), server('backup')]);
    // dnsmasq forwards slow.mesh.local to a socket that never answers.
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => silent.close(() => r())));
    const dns = await startDnsmasq({
      hostRecords: ['backup.mesh.local,127.0.0.1'],
      servers: [`/slow.mesh.local/127.0.0.1#${silent.address().port}`],
      srv: [srv('primary.slow.mesh.local', primary, 0, 1), srv('backup.mesh.local', backup, 1, 1)],
    });
    cleanups.push(() => dns.stop());
    const sc = await srvSidecar(dns.address);
    const readyError = async (): Promise<string> =>
      String(((await adminCall(sc, 'GET', '/ready')).json?.discovery?.[0] as Record<string, unknown> | undefined)?.['error']);
    await expect.poll(readyError, { timeout: 15_000 }).toContain('no SRV target of priority 0 resolved (primary.slow.mesh.local:');
    expect(await endpoints(sc)).toEqual([]);
    expect(await bodies(sc, 1)).toEqual(['503 no_healthy_endpoint']);
    expect(backup.connections).toBe(0);
  });
});

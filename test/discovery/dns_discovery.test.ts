// DNS discovery through a real sidecar: dnsmasq on a loopback port (TTL 1 s) is the DNS server,
// real HTTP upstreams are the endpoints. A, AAAA and SRV answers become the cluster's endpoints and
// traffic reaches them; a changed record is picked up when its TTL runs out (refresh_ms is far
// longer); an update that adds an endpoint keeps the pooled connection to the one that stays;
// NXDOMAIN, a stopped server (refused) and a silent one (timeouts) keep the last-known set serving while /ready (still 200), /stats
// and /metrics say the source is stale, and it is fresh again once DNS answers.
import { createSocket } from 'node:dgram';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { adminCall, parsePrometheus, sampleValue, startSidecar, type Sample, type Sidecar } from '../helpers/sidecar.js';
import { bodies, named } from './dns_fixtures.js';

function discoveryConfig(discovery: Record<string, unknown>): Record<string, unknown> {
  return {
    node: { workers: 1, drain_timeout_ms: 1000 },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'api' }] }],
    clusters: [{ name: 'api', lb: 'round_robin', discovery }],
  };
}

/** /ready's status and discovery entry for `api`, and its discovery series in the whole /metrics text (parsed strictly). */
async function source(sc: Sidecar): Promise<{ ready: number; entry: Record<string, unknown>; healthy: Sample[]; updates: number | undefined }> {
  const ready = await adminCall(sc, 'GET', '/ready');
  const samples = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
  return {
    ready: ready.status,
    entry: (ready.json?.discovery?.[0] ?? {}) as Record<string, unknown>,
    healthy: samples.filter((x) => x.name === 'outrigger_discovery_healthy'),
    updates: sampleValue(samples, 'outrigger_discovery_updates_total', { cluster: 'api' }),
  };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('DNS discovery (dnsmasq on loopback)', () => {
  it('A records: traffic flows, a TTL refresh adds an endpoint keeping the pooled connection, NXDOMAIN and a dead server keep the last set', async () => {
    const one = await named('one', '127.0.0.1');
    cleanups.push(() => one.close());
    // Same port on another loopback address: A records carry no port.
    const two = await named('two', '127.0.0.2', one.port);
    cleanups.push(() => two.close());
    const dns: Dnsmasq = await startDnsmasq({ hosts: ['127.0.0.1 api.mesh.local'] });
    cleanups.push(() => dns.stop());
    // refresh_ms far beyond the test: only the 1 s TTL can make the sidecar look up again.
    const sc = await startSidecar(discoveryConfig({ dns: { name: 'api.mesh.local', port: one.port, refresh_ms: 600_000, resolvers: [dns.address] } }));
    cleanups.push(() => sc.stop());

    await expect.poll(async () => (await bodies(sc, 1))[0], { timeout: 10_000 }).toBe('one');
    expect(await bodies(sc, 5)).toEqual(['one', 'one', 'one', 'one', 'one']);
    // Sequential requests reuse one pooled connection.
    expect(one.connections).toBe(1);
    const fresh = await source(sc);
    expect(fresh.ready).toBe(200);
    expect(fresh.entry).toMatchObject({ cluster: 'api', source: 'dns A api.mesh.local', ok: true, endpoints: 1, updates: 1 });
    expect(fresh.healthy).toEqual([{ name: 'outrigger_discovery_healthy', labels: { cluster: 'api', source: 'dns A api.mesh.local' }, value: 1 }]);
    expect(fresh.updates).toBe(1);
    const version = (await adminCall(sc, 'GET', '/config')).json.version as number;

    // A second address: picked up at the TTL, both serve; the kept endpoint's connection survived.
    dns.setHosts(['127.0.0.1 api.mesh.local', '127.0.0.2 api.mesh.local']);
    await expect.poll(async () => new Set(await bodies(sc, 4)), { timeout: 10_000 }).toEqual(new Set(['one', 'two']));
    expect(one.connections).toBe(1);
    expect(two.connections).toBe(1);
    // An endpoint update is not a config version.
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(version);
    expect((await adminCall(sc, 'GET', '/config/history')).json.versions).toHaveLength(1);
    expect((await source(sc)).entry).toMatchObject({ ok: true, endpoints: 2, updates: 2 });

    // NXDOMAIN: the last-known set keeps serving; /ready stays 200 and says stale.
    dns.setHosts([]);
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 10_000 }).toBe(false);
    const stale = await source(sc);
    expect(stale.ready).toBe(200);
    expect(String(stale.entry['error'])).toContain('ENOTFOUND');
    expect(typeof stale.entry['since']).toBe('string');
    expect(stale.entry['endpoints']).toBe(2);
    expect(stale.healthy.map((x) => x.value)).toEqual([0]);
    expect(stale.updates).toBe(2);
    expect(new Set(await bodies(sc, 4))).toEqual(new Set(['one', 'two']));
    const statsStale = (await adminCall(sc, 'GET', '/stats')).json.discovery;
    expect(statsStale).toEqual([expect.objectContaining({ cluster: 'api', ok: false, endpoints: 2 })]);

    // Back: fresh again (the set is the same, so no update is applied).
    dns.setHosts(['127.0.0.1 api.mesh.local', '127.0.0.2 api.mesh.local']);
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 10_000 }).toBe(true);

    // A stopped server (its port refuses the queries): the same static stability.
    await dns.stop();
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 15_000 }).toBe(false);
    expect((await source(sc)).ready).toBe(200);
    expect(new Set(await bodies(sc, 4))).toEqual(new Set(['one', 'two']));
    await dns.restart();
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 15_000 }).toBe(true);
    expect(new Set(await bodies(sc, 4))).toEqual(new Set(['one', 'two']));
    expect(one.connections).toBe(1);
  });

  it('a DNS server that stops answering (queries time out): the last set serves, stale with ETIMEOUT, fresh again after', async () => {
    const one = await named('one', '127.0.0.1');
    cleanups.push(() => one.close());
    const dns = await startDnsmasq({ hosts: ['127.0.0.1 api.mesh.local'] });
    cleanups.push(() => dns.stop());
    const sc = await startSidecar(discoveryConfig({ dns: { name: 'api.mesh.local', port: one.port, resolvers: [dns.address] } }));
    cleanups.push(() => sc.stop());
    await expect.poll(async () => (await bodies(sc, 1))[0], { timeout: 10_000 }).toBe('one');
    // A socket on the server's port that reads queries and never answers.
    await dns.stop();
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(dns.port, '127.0.0.1', r));
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 20_000 }).toBe(false);
    const stale = await source(sc);
    expect(stale.ready).toBe(200);
    expect(String(stale.entry['error'])).toContain('ETIMEOUT');
    expect(await bodies(sc, 3)).toEqual(['one', 'one', 'one']);
    await new Promise<void>((r) => silent.close(() => r()));
    await dns.restart();
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 20_000 }).toBe(true);
  });

  it('SRV records: each target on its own port, with its weight', async () => {
    const a = await named('a', '127.0.0.1');
    const b = await named('b', '127.0.0.1');
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const dns = await startDnsmasq({
      hostRecords: ['a.mesh.local,127.0.0.1'],
      srv: [`_api._tcp.mesh.local,a.mesh.local,${a.port},0,10`, `_api._tcp.mesh.local,a.mesh.local,${b.port},0,30`],
    });
    cleanups.push(() => dns.stop());
    const sc = await startSidecar(discoveryConfig({ dns: { name: '_api._tcp.mesh.local', type: 'SRV', resolvers: [dns.address] } }));
    cleanups.push(() => sc.stop());
    await expect.poll(async () => new Set(await bodies(sc, 8)), { timeout: 10_000 }).toEqual(new Set(['a', 'b']));
    const clusters = (await adminCall(sc, 'GET', '/clusters')).json;
    const api = (clusters.clusters as Array<{ name: string; endpoints: Array<{ address: string; weight: number }> }>).find((c) => c.name === 'api');
    expect(api?.endpoints.map((e) => [e.address, e.weight]).sort()).toEqual(
      [
        [`127.0.0.1:${a.port}`, 10],
        [`127.0.0.1:${b.port}`, 30],
      ].sort(),
    );
  });

  it('AAAA records: an IPv6 endpoint on the configured port', async () => {
    const six = await named('six', '::1');
    cleanups.push(() => six.close());
    const dns = await startDnsmasq({ hostRecords: ['api6.mesh.local,::1'] });
    cleanups.push(() => dns.stop());
    const sc = await startSidecar(discoveryConfig({ dns: { name: 'api6.mesh.local', type: 'AAAA', port: six.port, resolvers: [dns.address] } }));
    cleanups.push(() => sc.stop());
    await expect.poll(async () => (await bodies(sc, 1))[0], { timeout: 10_000 }).toBe('six');
    expect((await source(sc)).entry).toMatchObject({ source: 'dns AAAA api6.mesh.local', ok: true, endpoints: 1 });
  });

  it('before the first answer the cluster has no endpoint: 503 no_healthy_endpoint, then traffic once DNS answers', async () => {
    const one = await named('late', '127.0.0.1');
    cleanups.push(() => one.close());
    const dns = await startDnsmasq({ hosts: [] });
    cleanups.push(() => dns.stop());
    const sc = await startSidecar(discoveryConfig({ dns: { name: 'late.mesh.local', port: one.port, resolvers: [dns.address] } }));
    cleanups.push(() => sc.stop());
    expect(await bodies(sc, 1)).toEqual(['503 no_healthy_endpoint']);
    await expect.poll(async () => (await source(sc)).entry['ok'], { timeout: 10_000 }).toBe(false);
    expect((await source(sc)).entry['endpoints']).toBeNull();
    dns.setHosts(['127.0.0.1 late.mesh.local']);
    await expect.poll(async () => (await bodies(sc, 1))[0], { timeout: 10_000 }).toBe('late');
  });
});

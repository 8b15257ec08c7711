// Config reloads and discovered endpoints: a reload that does not touch a discovered cluster keeps
// its endpoints (and their pooled connections) although the file lists none; a reload that changes
// its DNS name restarts the source and the new name's endpoints take over; a cluster turned static
// stops its source (/ready no longer lists it). dnsmasq on a loopback port, a real sidecar.
import { afterEach, describe, expect, it } from 'vitest';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { adminCall, httpGet, keepAlive, rewriteConfig, startSidecar, type Sidecar } from '../helpers/sidecar.js';
import { named } from './dns_fixtures.js';

function config(api: Record<string, unknown>, extraRoute: boolean): Record<string, unknown> {
  const routes = [{ name: 'all', match: { path_prefix: '/' }, cluster: 'api' }];
  if (extraRoute) routes.unshift({ name: 'other', match: { path_prefix: '/other' }, cluster: 'api' });
  return {
    node: { workers: 2, drain_timeout_ms: 1000 },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes }],
    clusters: [{ name: 'api', lb: 'round_robin', ...api }],
  };
}

const agent = keepAlive(1);
async function body(sc: Sidecar): Promise<string> {
  const a = await httpGet(sc.url('/'), { agent });
  return a.status === 200 ? a.text : String(a.status);
}

async function appliedVersion(sc: Sidecar): Promise<number> {
  return (await adminCall(sc, 'GET', '/ready')).json.version as number;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('DNS discovery across config reloads', () => {
  it('keeps discovered endpoints through an unrelated reload, follows a changed name, stops on a static cluster', async () => {
    const one = await named('one', '127.0.0.1');
    const two = await named('two', '127.0.0.2', one.port);
    cleanups.push(
      () => one.close(),
      () => two.close(),
    );
    const dns = await startDnsmasq({ hosts: ['127.0.0.1 api.mesh.local', '127.0.0.2 other.mesh.local'] });
    cleanups.push(() => dns.stop());
    const byName = (name: string): Record<string, unknown> => ({ discovery: { dns: { name, port: one.port, resolvers: [dns.address] } } });
    const sc = await startSidecar(config(byName('api.mesh.local'), false));
    cleanups.push(() => sc.stop());
    await expect.poll(() => body(sc), { timeout: 10_000 }).toBe('one');
    const connectionsBefore = one.connections;

    // An unrelated change: the file still lists no endpoint for api, the workers keep theirs.
    rewriteConfig(sc, config(byName('api.mesh.local'), true));
    await expect.poll(() => appliedVersion(sc), { timeout: 10_000 }).toBe(2);
    for (let i = 0; i < 6; i++) expect(await body(sc)).toBe('one');
    expect(one.connections).toBe(connectionsBefore);

    // Another name: the source restarts and its answer replaces the set.
    rewriteConfig(sc, config(byName('other.mesh.local'), true));
    await expect.poll(() => body(sc), { timeout: 10_000 }).toBe('two');
    const ready = await adminCall(sc, 'GET', '/ready');
    expect(ready.json.discovery).toEqual([expect.objectContaining({ cluster: 'api', source: 'dns A other.mesh.local', ok: true, endpoints: 1 })]);

    // Static endpoints: the source stops, /ready lists none.
    rewriteConfig(sc, config({ endpoints: [{ address: `127.0.0.1:${one.port}` }] }, true));
    await expect.poll(() => body(sc), { timeout: 10_000 }).toBe('one');
    expect((await adminCall(sc, 'GET', '/ready')).json.discovery).toBeUndefined();
  });
});

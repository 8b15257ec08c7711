// The history summary of a reload (src/admin/config_store.ts) names what the config changed, not
// the endpoints discovery changed since the previous reload: in process, with an applier that
// fills a discovered cluster's endpoints as the discovery manager's overlay does.
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/admin/config_check.js';
import { ConfigStore } from '../../src/admin/config_store.js';
import { compileConfig } from '../../src/config/load.js';
import type { EndpointSpec, Snapshot } from '../../src/config/types.js';
import { OPTS, ok } from '../config/helpers.js';

function config(lb: string): Record<string, unknown> {
  return {
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'api' }] }],
    clusters: [
      { name: 'api', lb, discovery: { etcd: { service: 'api' } } },
      { name: 'static', endpoints: [{ address: '127.0.0.1:9000' }] },
    ],
  };
}

const endpoint = (port: number): EndpointSpec => ({ address: `10.0.0.1:${port}`, host: '10.0.0.1', port, weight: 1 });

describe('ConfigStore history summary', () => {
  it('a reload after discovery changed endpoints lists the config change only', async () => {
    let discovered = [endpoint(1), endpoint(2)];
    const overlay = (s: Snapshot): Snapshot => ({ ...s, clusters: s.clusters.map((c) => (c.discovery === null ? c : { ...c, endpoints: discovered })) });
    const applier = { apply: (s: Snapshot) => Promise.resolve(overlay(s)) };
    const initial = ok(compileConfig(config('round_robin'), OPTS));
    const store = new ConfigStore(applier, checkConfig, OPTS, { snapshot: overlay(initial.snapshot), admin: initial.admin, source: initial.source }, 'test');

    // Discovery swaps an endpoint between reloads (applied outside the store).
    discovered = [endpoint(1), endpoint(3)];
    const outcome = await store.apply({ object: config('random') }, 'test', 'file');
    expect(outcome).toMatchObject({ ok: true, summary: 'cluster api settings changed' });
    expect(store.snapshot.clusters[0]!.endpoints).toEqual(discovered);

    // A static cluster's endpoints are the config's: their change is listed.
    const moved = config('random');
    (moved['clusters'] as Array<Record<string, unknown>>)[1]!['endpoints'] = [{ address: '127.0.0.1:9001' }];
    expect(await store.apply({ object: moved }, 'test', 'file')).toMatchObject({
      ok: true,
      summary: 'cluster static +127.0.0.1:9001, cluster static -127.0.0.1:9000',
    });
  });
});

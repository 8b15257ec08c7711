// The discovery manager under churn (issue 17), in process with a plane that applies at once:
// after every change of a 500-endpoint set (swaps and re-weights, several at a time), the snapshot
// holds exactly the source's set sorted by address, kept endpoints are the same objects as before,
// and the delta a worker gets names only what changed, without the cluster's spec.
import { describe, expect, it } from 'vitest';
import { compileDelta } from '../../src/config/delta.js';
import { compileConfig } from '../../src/config/load.js';
import type { ClusterSpec, Snapshot } from '../../src/config/types.js';
import { DiscoveryManager } from '../../src/discovery/manager.js';
import type { DiscoveredEndpoint } from '../../src/discovery/source.js';
import { OPTS } from '../config/helpers.js';

function snapshot(): Snapshot {
  const r = compileConfig(
    {
      listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'api' }] }],
      clusters: [{ name: 'api', discovery: { etcd: { service: 'api' } } }],
    },
    OPTS,
  );
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.snapshot;
}

const api = (s: Snapshot): ClusterSpec => s.clusters[0]!;
const address = (i: number): string => `10.0.${i >> 8}.${i & 255}:8080`;

describe('DiscoveryManager under churn', () => {
  it('every applied set is the source sorted, with kept endpoints reused and only the change in the delta', async () => {
    let running = snapshot();
    let report: (set: readonly DiscoveredEndpoint[]) => void = () => undefined;
    const manager = new DiscoveryManager({
      plane: { update: (make) => Promise.resolve((running = make(running))) },
      applied: () => undefined,
      makeSource: () => ({ describe: 'hand', start: (update) => void (report = update), stop: () => Promise.resolve() }),
      log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    manager.reconcile(running);

    // The source's set: address -> weight, reported in insertion order (not sorted).
    const set = new Map<string, number>();
    for (let i = 0; i < 500; i++) set.set(address(Math.floor(Math.random() * 60_000)), 1);
    let next = 60_000;
    const publish = async (): Promise<Snapshot> => {
      report([...set].map(([a, weight]) => ({ address: a, weight })));
      // The plane resolves at once: its continuation (the next apply, if any) runs before this.
      await new Promise((r) => setImmediate(r));
      return running;
    };
    let prev = await publish();

    for (let round = 0; round < 50; round++) {
      const addresses = [...set.keys()];
      const removed = addresses.slice(0, 1 + (round % 3)).map(() => addresses.splice(Math.floor(Math.random() * addresses.length), 1)[0]!);
      for (const a of removed) set.delete(a);
      const added = removed.map(() => address(next++));
      for (const a of added) set.set(a, 1);
      const reweighted = addresses[round % addresses.length]!;
      set.set(reweighted, 2 + round);

      const now = await publish();
      const endpoints = api(now).endpoints;
      expect(endpoints.map((e) => e.address)).toEqual([...set.keys()].sort());
      expect(endpoints.every((e) => e.weight === set.get(e.address))).toBe(true);
      const before = new Map(api(prev).endpoints.map((e) => [e.address, e]));
      const reused = endpoints.filter((e) => before.get(e.address) === e).length;
      expect(reused).toBe(set.size - added.length - 1);

      const change = compileDelta(prev, now, 1).clusters.changed[0]!;
      expect(change.spec).toBeNull();
      expect(change.endpoints.added.map((e) => e.address).sort()).toEqual([...added].sort());
      expect([...change.endpoints.removed].sort()).toEqual([...removed].sort());
      expect(change.endpoints.changed.map((e) => [e.address, e.weight])).toEqual([[reweighted, 2 + round]]);
      prev = now;
    }
    await manager.stop();
  });
});

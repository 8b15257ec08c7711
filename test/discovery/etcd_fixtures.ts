// Shared parts of the etcd discovery tests: sidecars registered as service `api`, a sidecar that
// discovers `api` through etcd, continuous traffic that counts failures, and etcd's view. Each
// test meets its sidecars under a key prefix of its own (an EtcdSpace), so the tests of a file
// can share one etcd cluster.

import type { Agent } from 'node:http';
import { hostname } from 'node:os';
import { adminCall, deadPort, httpGet, keepAlive, startSidecar, type Sidecar, type Upstream } from '../helpers/sidecar.js';
import type { EtcdCluster } from '../helpers/etcd.js';

/** Where one test's sidecars meet: the etcd endpoints they are given and the key prefix they use (`discovery.etcd`). */
export interface EtcdSpace {
  readonly endpoints: readonly string[];
  readonly prefix: string;
}

/** A space, or a bare endpoint list: the default prefix. */
export type EtcdAt = EtcdSpace | readonly string[];

export const PREFIX = '/outrigger';

const spaceOf = (at: EtcdAt): EtcdSpace => ('prefix' in at ? at : { endpoints: at, prefix: PREFIX });

let spaces = 0;

/** A key prefix no other test of this process uses, on `etcd`. */
export function freshSpace(etcd: Pick<EtcdCluster, 'endpoints'>): EtcdSpace {
  return { endpoints: etcd.endpoints, prefix: `/outrigger-test-${++spaces}` };
}

const discoveryOf = (at: EtcdAt): Record<string, unknown> => {
  const { endpoints, prefix } = spaceOf(at);
  return { etcd: { endpoints, prefix } };
};

/** A sidecar serving `upstream` on a fixed port, registered in etcd as service `api` at that port. */
export async function serviceSidecar(at: EtcdAt, upstream: Upstream, ttlS = 10): Promise<{ sc: Sidecar; port: number }> {
  const port = await deadPort();
  const sc = await startSidecar({
    node: { workers: 1, drain_timeout_ms: 2000, service: { name: 'api', address: '127.0.0.1', port, ttl_s: ttlS, metadata: { zone: 'a' } } },
    discovery: discoveryOf(at),
    listeners: [{ name: 'main', address: `127.0.0.1:${port}`, routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'app' }] }],
    clusters: [{ name: 'app', endpoints: [{ address: upstream.address }] }],
  });
  return { sc, port };
}

/** A sidecar whose cluster `api` is every sidecar registered for service `api`; a connect failure is retried on another. */
export function discoveringSidecar(at: EtcdAt, workers = 1): Promise<Sidecar> {
  return startSidecar({
    node: { workers, drain_timeout_ms: 2000 },
    discovery: discoveryOf(at),
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'api', retries: { attempts: 3, on: ['connect-failure', 'reset'] } }],
      },
    ],
    // Every connect failure to a dead, still-registered sidecar may be retried (the default budget
    // of 10 retries/s is below this test traffic's failure rate until the lease expires).
    clusters: [
      {
        name: 'api',
        lb: 'round_robin',
        discovery: { etcd: { service: 'api' } },
        retry_budget: { percent: 100, min_retries_per_second: 10_000, min_concurrent: 16 },
      },
    ],
  });
}

/** A discovered cluster's row in /stats `discovery` (the same rows /ready shows). */
export interface DiscoveryRow {
  cluster: string;
  source: string;
  ok: boolean;
  endpoints: number | null;
  error?: string;
  since?: string;
}

/** `sc`'s discovery row for `cluster` in /stats; throws when there is none. */
export async function discoveryRow(sc: Sidecar, cluster = 'api'): Promise<DiscoveryRow> {
  const a = await adminCall(sc, 'GET', '/stats');
  const rows = (a.json as { discovery?: DiscoveryRow[] }).discovery ?? [];
  const row = rows.find((r) => r.cluster === cluster);
  if (row === undefined) throw new Error(`no discovery row for ${cluster} in /stats: ${a.text.slice(0, 300)}`);
  return row;
}

/** What /stats `registration` shows of `sc`'s node.service registration. */
export interface RegistrationRow {
  key: string;
  state: string;
  lease_id: string | null;
  leases_granted: number;
}

export async function registrationOf(sc: Sidecar): Promise<RegistrationRow> {
  return ((await adminCall(sc, 'GET', '/stats')).json as { registration: RegistrationRow }).registration;
}

export const keyOf = (space: EtcdSpace, sc: Pick<Sidecar, 'pid'>): string => `${space.prefix}/services/api/${hostname()}-${sc.pid}`;

/** The registrations under `<p>/services/api/`, key → value, as etcdctl prints them. */
export async function registrations(etcd: EtcdCluster, space: EtcdSpace): Promise<Map<string, Record<string, unknown>>> {
  const lines = (await etcd.ctl(['get', '--prefix', `${space.prefix}/services/api/`])).trim().split('\n').filter(Boolean);
  const out = new Map<string, Record<string, unknown>>();
  for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i]!, JSON.parse(lines[i + 1]!) as Record<string, unknown>);
  return out;
}

/** What traffic has had so far: the answered requests and a line per failure. */
export interface Tally {
  ok: number;
  readonly failed: string[];
}

/** One request to the sidecar, counted in `tally`: a 200 is ok, anything else (or no answer) a failure. */
export async function countedGet(sc: Sidecar, agent: Agent, tally: Tally): Promise<void> {
  try {
    const a = await httpGet(sc.url('/t'), { agent, timeoutMs: 10_000 });
    if (a.status === 200) tally.ok++;
    else tally.failed.push(`${a.status} ${a.error ?? ''} ${a.text.slice(0, 100)}`);
  } catch (e) {
    tally.failed.push((e as Error).message);
  }
}

/** Requests sent one after another (on a few keep-alive sockets) until stop(); every non-200 is a failure. */
export function traffic(sc: Sidecar, concurrency = 4): { stop(): Promise<{ ok: number; failed: string[] }>; readonly ok: number; failures(): string[] } {
  const agent = keepAlive(concurrency);
  let running = true;
  const tally: Tally = { ok: 0, failed: [] };
  const loop = async (): Promise<void> => {
    while (running) await countedGet(sc, agent, tally);
  };
  const loops = Array.from({ length: concurrency }, () => loop());
  return {
    get ok() {
      return tally.ok;
    },
    /** The failures so far (a copy), while the traffic goes on. */
    failures: () => [...tally.failed],
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok: tally.ok, failed: tally.failed };
    },
  };
}

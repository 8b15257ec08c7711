// Churn (issue 17): a service of 500 registered endpoints (real HTTP servers) where one endpoint is
// swapped for another 100 times a second for 30 s, under continuous traffic through a discovering
// sidecar. Every request succeeds, the sidecar ends on exactly the set etcd holds, and the
// sidecar's CPU per change is reported (from /proc: the whole process, and its main thread),
// with the CPU rate of the same traffic without churn subtracted: a measurement, not a threshold.
// The traffic is paced (a steady rate, not as fast as the sidecar answers) so that it costs the
// same in both windows whatever else the machine runs.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster } from '../helpers/etcd.js';
import { adminCall, closeAll, eventually, keepAlive, listenTracked, track, untilCluster, type Sidecar } from '../helpers/sidecar.js';
import { countedGet, discoveringSidecar, PREFIX, type Tally } from './etcd_fixtures.js';

const why = etcdUnavailable();
const SERVICE_SIZE = 500;
/** Endpoints not registered at a time; a swapped-out one joins them once its swap is committed. */
const SPARE = 100;
const CHANGES_PER_S = 100;
const CHURN_MS = 30_000;
/** Long enough to measure the traffic's own CPU per request. */
const BASELINE_MS = 5_000;
/** Swaps committing at once: enough for etcd's commit latency to leave the pace at CHANGES_PER_S. */
const MAX_IN_FLIGHT = 32;

const REQUESTS_PER_S = 200;

/** CPU time (user + system) so far, ms: of a whole process (all threads), or of one thread (`tid`; the main thread's is the pid). */
function cpuMs(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (clock ticks, 100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The sidecar's CPU so far: the process's and its main thread's (discovery, deltas; the worker proxies). */
function sidecarCpu(sc: Sidecar): { all: number; main: number; t: number } {
  return { all: cpuMs(sc.pid), main: cpuMs(sc.pid, sc.pid), t: Date.now() };
}

/** Requests at a steady rate until stop(); every non-200 is a failure. */
function pacedTraffic(sc: Sidecar, perSecond: number): { readonly ok: number; stop(): Promise<{ ok: number; failed: string[] }> } {
  const agent = keepAlive(16);
  const tally: Tally = { ok: 0, failed: [] };
  const inFlight = new Set<Promise<void>>();
  const t0 = Date.now();
  let sent = 0;
  const timer = setInterval(() => {
    for (const due = Math.floor(((Date.now() - t0) * perSecond) / 1000); sent < due; sent++) {
      const p: Promise<void> = countedGet(sc, agent, tally).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  }, 10);
  return {
    get ok() {
      return tally.ok;
    },
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
      agent.destroy();
      return { ok: tally.ok, failed: tally.failed };
    },
  };
}

async function okServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => res.end('ok'));
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const address = await listenTracked(server, sockets);
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

async function discoveredCount(sc: Sidecar): Promise<number | null> {
  const a = await adminCall(sc, 'GET', '/stats');
  const rows = (a.json as { discovery?: Array<{ cluster: string; endpoints: number | null }> }).discovery ?? [];
  return rows.find((r) => r.cluster === 'api')?.endpoints ?? null;
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

describe.skipIf(why !== null)(`etcd discovery churn${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it(`${SERVICE_SIZE} endpoints, ${CHANGES_PER_S} changes/s for ${CHURN_MS / 1000} s under traffic: no failed request, the final set is etcd's`, async () => {
    const etcd = await startEtcdCluster();
    const ports = await Promise.all(Array.from({ length: SERVICE_SIZE + SPARE }, () => okServer()));
    const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
    track({ close: () => Promise.resolve(client.close()) });
    const servicePrefix = `${PREFIX}/services/api/`;
    const key = (port: number): string => `${servicePrefix}churn-${port}`;
    const value = (port: number): string => JSON.stringify({ address: '127.0.0.1', port, weight: 1, metadata: {} });
    const active = ports.slice(0, SERVICE_SIZE);
    const spare = ports.slice(SERVICE_SIZE);
    await Promise.all(active.map((p) => client.put(key(p)).value(value(p))));

    const sc = await discoveringSidecar(etcd.endpoints);
    await eventually(async () => ((await discoveredCount(sc)) === SERVICE_SIZE ? true : undefined), `${SERVICE_SIZE} endpoints discovered`, 30_000, 200);
    const load = pacedTraffic(sc, REQUESTS_PER_S);
    // Round robin over the whole set: once every endpoint has answered twice, each has a pooled
    // connection, and the baseline measures requests, not connection setup.
    await eventually(() => (load.ok >= 2 * SERVICE_SIZE ? true : undefined), 'a pooled connection to every endpoint', 30_000, 100);

    // The same traffic without churn: its CPU rate is subtracted from the churn window's.
    const base0 = sidecarCpu(sc);
    await eventually(() => (Date.now() - base0.t >= BASELINE_MS ? true : undefined), 'baseline window', BASELINE_MS + 5000, 100);
    const base1 = sidecarCpu(sc);

    // One swap: a random registered endpoint out, a spare one in, in one transaction. Both leave
    // the pools they are drawn from until it commits, so that no other swap touches their keys.
    const swap = async (): Promise<void> => {
      const out = active.splice(Math.floor(Math.random() * active.length), 1)[0]!;
      const incoming = spare.shift()!;
      const txn = await client
        .if(key(out), 'Version', '>', 0)
        .then(client.delete().key(key(out)), client.put(key(incoming)).value(value(incoming)))
        .commit();
      if (!txn.succeeded) throw new Error(`swap ${out} -> ${incoming}: ${key(out)} was not registered`);
      active.push(incoming);
      spare.push(out);
    };

    // Paced at CHANGES_PER_S from the window's start, at most MAX_IN_FLIGHT uncommitted.
    const churn0 = sidecarCpu(sc);
    const inFlight = new Set<Promise<void>>();
    const swapErrors: string[] = [];
    let changes = 0;
    while (Date.now() - churn0.t < CHURN_MS) {
      const due = ((Date.now() - churn0.t) * CHANGES_PER_S) / 1000;
      if (changes >= due || inFlight.size >= MAX_IN_FLIGHT || spare.length === 0) {
        await tick();
        continue;
      }
      const p: Promise<void> = swap()
        .catch((e: unknown) => void swapErrors.push((e as Error).message))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      changes++;
    }
    await Promise.all(inFlight);
    const churnCommittedMs = Date.now() - churn0.t;
    expect(swapErrors).toEqual([]);

    // etcd's set, read back, is what the sidecar must end on.
    const registered = Object.values(await client.getAll().prefix(servicePrefix).strings()).map((v) => {
      const r = JSON.parse(v) as { address: string; port: number };
      return `${r.address}:${r.port}`;
    });
    const expected = registered.sort();
    expect(expected).toEqual(active.map((p) => `127.0.0.1:${p}`).sort());
    await untilCluster(
      sc,
      'api',
      (c) =>
        c.endpoints
          .map((e) => e.address)
          .sort()
          .join() === expected.join(),
      "etcd's final set",
      30_000,
    );
    // The window ends once the sidecar runs the last set: every change's work is in it.
    const churn1 = sidecarCpu(sc);
    const { ok, failed } = await load.stop();
    const stats = (await adminCall(sc, 'GET', '/stats')).json as { discovery: Array<{ cluster: string; updates: number }> };
    const updates = stats.discovery.find((r) => r.cluster === 'api')!.updates;
    // CPU of the churn window above the baseline's rate, per change.
    const perChange = (of: 'all' | 'main'): number => {
      const baseRate = (base1[of] - base0[of]) / (base1.t - base0.t);
      const extra = churn1[of] - churn0[of] - baseRate * (churn1.t - churn0.t);
      return Number((extra / changes).toFixed(3));
    };
    console.log(
      JSON.stringify({
        endpoints: SERVICE_SIZE,
        changes,
        changes_per_s: Math.round((changes * 1000) / churnCommittedMs),
        applied_updates: updates,
        requests_per_s: REQUESTS_PER_S,
        baseline: { ms: base1.t - base0.t, cpu_ms: base1.all - base0.all, main_thread_cpu_ms: base1.main - base0.main },
        churn: { ms: churn1.t - churn0.t, cpu_ms: churn1.all - churn0.all, main_thread_cpu_ms: churn1.main - churn0.main },
        cpu_ms_per_change: perChange('all'),
        main_thread_cpu_ms_per_change: perChange('main'),
        requests_ok: ok,
      }),
    );
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect(expected).toHaveLength(SERVICE_SIZE);
    expect(changes).toBeGreaterThan(0);
  });
});

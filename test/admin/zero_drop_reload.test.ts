// The zero-drop reload test (issue 5): a 2-worker sidecar under continuous keep-alive load from
// autocannon takes well over 100 PUT /config applies in a row that add and remove endpoints,
// add and remove a cluster, move routes between clusters and change split weights. Every request
// must succeed, every apply must answer 200 with the next version, and the pool of the endpoint
// that is in every version ("stable") must survive every reload: the TCP connections the stable
// upstream accepts stay within connections_per_worker × workers however many reloads there were.

import autocannonUntyped from 'autocannon';
import { afterAll, expect, it, onTestFinished } from 'vitest';
import { adminCall, closeAll, eventually, request, startSidecar, startUpstream, untilCluster, type Config, type Upstream } from '../helpers/sidecar.js';

afterAll(closeAll);

// autocannon ships no types: the part used here.
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  resets: number;
  mismatches: number;
  '2xx': number;
  requests: { total: number; sent: number };
}
interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  stop(): void;
  on(event: 'response', f: (client: unknown, statusCode: number) => void): void;
  on(event: 'reqError', f: (err: Error) => void): void;
}
const autocannon = autocannonUntyped as unknown as (opts: Record<string, unknown>) => AutocannonInstance;

const WORKERS = 2;
const CONNECTIONS_PER_WORKER = 4;
const APPLIES = 300;
const POOL = { connections_per_worker: CONNECTIONS_PER_WORKER, idle_timeout_ms: 300_000, connect_timeout_ms: 1000 };

/** Deterministic PRNG (mulberry32), so a failing sequence can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Version `i` of the config. Cluster `a` always holds the stable endpoint (plus some others);
 * `b` always exists with 1–3 endpoints; `c` comes and goes. Routes /r1 (one cluster), /r2 (a split),
 * /r3 (present or not) and the catch-all move between the clusters; weights change every time.
 */
function versionConfig(i: number, rnd: () => number, stable: Upstream, others: readonly Upstream[]): Config {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const subset = (min: number): Upstream[] => {
    for (;;) {
      const s = others.filter(() => rnd() < 0.5);
      if (s.length >= min) return s;
    }
  };
  const weight = (): number => 1 + Math.floor(rnd() * 100);
  const ep = (u: Upstream): { address: string; weight: number } => ({ address: u.address, weight: weight() });
  const clusters: Array<Record<string, unknown>> = [
    { name: 'a', lb: pick(['least_request', 'round_robin', 'random']), endpoints: [ep(stable), ...subset(0).map(ep)], pool: POOL },
    { name: 'b', endpoints: subset(1).map(ep), pool: POOL },
  ];
  if (i % 2 === 0 || rnd() < 0.3) clusters.push({ name: 'c', lb: 'round_robin', endpoints: subset(1).map(ep), pool: POOL });
  if (rnd() < 0.5) clusters.reverse();
  const names = clusters.map((c) => c.name as string);
  const split = (): Array<{ cluster: string; weight: number }> => {
    const parts = names.filter(() => rnd() < 0.7).map((cluster) => ({ cluster, weight: Math.floor(rnd() * 100) }));
    if (parts.length === 0 || parts.every((p) => p.weight === 0))
      parts.push({ cluster: pick(names.filter((n) => !parts.some((p) => p.cluster === n))) ?? 'a', weight: 1 });
    return parts;
  };
  const action = (): Record<string, unknown> => (rnd() < 0.5 ? { cluster: pick(names) } : { split: split() });
  const routes: Array<Record<string, unknown>> = [
    { name: 'r1', match: { path_prefix: '/r1' }, cluster: pick(names) },
    { name: 'r2', match: { path_prefix: '/r2' }, split: split() },
  ];
  if (rnd() < 0.5) routes.push({ name: 'r3', match: { path_prefix: '/r3' }, ...action() });
  routes.push({ name: 'all', match: { path_prefix: '/' }, ...action() });
  return {
    node: { workers: WORKERS, drain_timeout_ms: 5000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes }],
    clusters,
  };
}

it(`zero-drop: ${APPLIES} applies under continuous keep-alive load, no failed request, stable pool kept`, async () => {
  // Answers take 0–3 ms, so that requests are in flight on every endpoint while configs swap.
  const delayMs = (): number => Math.floor(Math.random() * 4);
  const stable = await startUpstream('S', { delayMs });
  const others = [await startUpstream('E1', { delayMs }), await startUpstream('E2', { delayMs }), await startUpstream('E3', { delayMs })];
  const rnd = prng(0x0a7a1);
  const first: Config = {
    node: { workers: WORKERS, drain_timeout_ms: 5000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'a' }] }],
    clusters: [{ name: 'a', endpoints: [{ address: stable.address }], pool: POOL }],
  };
  const sc = await startSidecar(first);

  const load = autocannon({
    url: sc.url('/'),
    connections: 10,
    pipelining: 1,
    duration: 300, // stopped by the test
    timeout: 10,
    requests: [{ path: '/r1' }, { path: '/r2' }, { path: '/r3' }, { path: '/x' }],
  });
  onTestFinished(() => load.stop()); // also when an assertion fails midway
  const bad = new Map<string, number>();
  const note = (k: string): void => void bad.set(k, (bad.get(k) ?? 0) + 1);
  load.on('response', (_c, status) => {
    if (status < 200 || status > 299) note(`status ${status}`);
  });
  load.on('reqError', (e) => note(`error ${e.message}`));

  // Let the load warm the stable pool.
  await expect.poll(() => stable.requests.length).toBeGreaterThanOrEqual(200);

  const stableConnectionsBefore = stable.connections;
  // /ready is polled all along: a reload must not make the sidecar look unready.
  const readyCodes = new Map<number, number>();
  let polling = true;
  onTestFinished(() => {
    polling = false;
  });
  const readyPoller = (async () => {
    while (polling) {
      const r = await adminCall(sc, 'GET', '/ready');
      readyCodes.set(r.status, (readyCodes.get(r.status) ?? 0) + 1);
    }
  })();
  const served = (): number => stable.requests.length + others.reduce((n, o) => n + o.requests.length, 0);
  const versions: number[] = [];
  const applyMs: number[] = [];
  for (let i = 2; i < APPLIES + 2; i++) {
    const t0 = performance.now();
    const r = await adminCall(sc, 'PUT', '/config', versionConfig(i, rnd, stable, others));
    applyMs.push(performance.now() - t0);
    expect(r.status, `apply ${i}: ${r.text}`).toBe(200);
    versions.push(r.json.version as number);
    // The first half back to back; in the second half each version serves some load first.
    if (i >= APPLIES / 2) {
      const before = served();
      await expect.poll(served).toBeGreaterThanOrEqual(before + 10);
    }
  }
  polling = false;
  await readyPoller;
  // Some load on the last version, then stop.
  const before = served();
  await expect.poll(served).toBeGreaterThanOrEqual(before + 200);
  load.stop();
  const result = await load;

  const view = (await adminCall(sc, 'GET', '/clusters')).json as {
    workers: number;
    clusters: Array<{ name: string; endpoints: Array<{ address: string; connections_opened_total: number }> }>;
  };
  const stableView = view.clusters.find((c) => c.name === 'a')!.endpoints.find((e) => e.address === stable.address)!;
  const sorted = [...applyMs].sort((x, y) => x - y);
  const report = {
    requests: result.requests.total,
    '2xx': result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    resets: result.resets,
    bad: Object.fromEntries(bad),
    applies: versions.length,
    apply_ms_median: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(1)),
    apply_ms_max: Number(sorted.at(-1)!.toFixed(1)),
    ready_answers: Object.fromEntries(readyCodes),
    stable_connections_before_applies: stableConnectionsBefore,
    stable_connections: stable.connections,
    stable_connections_opened_total: stableView.connections_opened_total,
    stable_requests: stable.requests.length,
    other_requests: others.map((o) => o.requests.length),
    other_connections: others.map((o) => o.connections),
  };
  console.log(`zero-drop reload: ${JSON.stringify(report)}`);

  expect(result.errors, JSON.stringify(report)).toBe(0);
  expect(result.timeouts, JSON.stringify(report)).toBe(0);
  expect(result.non2xx, JSON.stringify(report)).toBe(0);
  expect(bad.size, JSON.stringify(report)).toBe(0);
  expect(result['2xx']).toBe(result.requests.total);
  expect(result.requests.total).toBeGreaterThan(1000);

  expect([...readyCodes.keys()], JSON.stringify(report)).toEqual([200]);
  expect(versions).toHaveLength(APPLIES);
  versions.forEach((v, k) => expect(v).toBe(2 + k));
  expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(APPLIES + 1);

  // The stable endpoint's pool survived every reload: no more connections than one pool per worker can hold.
  expect(stable.requests.length).toBeGreaterThan(0);
  expect(stable.connections).toBeGreaterThan(0);
  expect(stable.connections).toBeLessThanOrEqual(CONNECTIONS_PER_WORKER * WORKERS);
  expect(stableView.connections_opened_total).toBe(stable.connections);
  // Every other endpoint did get traffic during the run.
  for (const o of others) expect(o.requests.length, o.name).toBeGreaterThan(0);

  // The proxy's own counters agree: no failure on the listener.
  const stats = await eventually(
    async () => {
      const s = (await adminCall(sc, 'GET', '/stats')).json as {
        listeners: Array<{ name: string; requests: number; responses: Record<string, number> }>;
      };
      const main = s.listeners.find((l) => l.name === 'main');
      return main !== undefined && main.requests >= result.requests.total ? main : undefined;
    },
    'stats of the whole run',
    5000,
    200,
  );
  expect(stats.responses['5xx']).toBe(0);
  expect(stats.responses['4xx']).toBe(0);
  // "none" (no response) counts only the requests autocannon abandoned when it was stopped.
  expect(stats.responses['none']).toBeLessThanOrEqual(10);
  expect(await sc.stop()).toBe(0);
}, 90_000);

it('requests queued for a connection to an endpoint that a reload removes are still answered', async () => {
  // One connection per worker to `old`, which closes each connection after its answer: the
  // 2nd and 3rd requests wait in the pool's queue while the 1st is in flight. Then a reload
  // removes `old`. The queued requests were accepted before the reload; they must not be dropped.
  const old = await startUpstream('OLD', { delayMs: 300, close: true });
  const fresh = await startUpstream('NEW');
  const cfg = (endpoint: Upstream): Config => ({
    node: { workers: 1, drain_timeout_ms: 5000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'app', timeout_ms: 4000 }] }],
    clusters: [{ name: 'app', endpoints: [{ address: endpoint.address }], pool: { connections_per_worker: 1 } }],
  });
  const sc = await startSidecar(cfg(old));
  const answers = [1, 2, 3].map((n) =>
    request(sc.url(`/q${n}`), { timeoutMs: 10_000 }).then(
      (a) => ({ status: a.status, text: a.text }),
      (e: Error) => ({ status: 0, text: e.message }),
    ),
  );
  await expect.poll(() => old.requests.length).toBeGreaterThanOrEqual(1);
  // All three admitted: the 1st at `old`, the other two queued in the pool for its one connection.
  await untilCluster(sc, 'app', (c) => c.active === 3, 'three requests active');
  const put = await adminCall(sc, 'PUT', '/config', cfg(fresh));
  expect(put.status, put.text).toBe(200);
  const got = await Promise.all(answers);
  expect(
    got.map((a) => a.status),
    JSON.stringify(got),
  ).toEqual([200, 200, 200]);
  await sc.stop();
}, 30_000);

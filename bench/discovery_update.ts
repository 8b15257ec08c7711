// Cost of one discovered endpoint set applied to the data plane (issue 17): real worker threads
// (Supervisor), a snapshot with a 20-endpoint cluster, one of whose endpoints is swapped per
// update as the discovery manager does (Supervisor.update: the running snapshot with the
// cluster's endpoints replaced, posted as a delta, every worker's ack awaited). Reports the
// process CPU (main + workers, process.cpuUsage) and the wall time per acknowledged update,
// idle CPU over as long subtracted. Not part of npm test.
//
// Usage: npm run build && node dist/bench/discovery_update.js [--workers 2] [--updates 500]

import { compileConfig } from '../src/config/load.js';
import type { EndpointSpec, Snapshot } from '../src/config/types.js';
import { Supervisor } from '../src/workers/supervisor.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? def : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} needs a positive integer`);
  return v;
}

const workers = arg('workers', 2);
const updates = arg('updates', 500);
const quiet = { info: () => undefined, warn: () => undefined, error: (f: Record<string, unknown>, m: string) => console.error(m, f) };

const loaded = compileConfig(
  {
    node: { workers },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'api' }] }],
    clusters: [{ name: 'api', discovery: { dns: { name: 'api.mesh.local', port: 8080 } } }],
  },
  { version: 1, availableParallelism: workers, enableTestHooks: false },
);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));

function endpoints(swap: number): EndpointSpec[] {
  return Array.from({ length: 20 }, (_, i) => {
    const host = `10.0.0.${i === 0 ? 100 + (swap % 100) : i}`;
    return { address: `${host}:8080`, host, port: 8080, weight: 1 };
  });
}

function withEndpoints(running: Snapshot, eps: EndpointSpec[]): Snapshot {
  return { ...running, clusters: running.clusters.map((c) => (c.name === 'api' ? { ...c, endpoints: eps } : c)) };
}

const supervisor = new Supervisor({ log: quiet, enableTestHooks: false });
await supervisor.start(loaded.snapshot);
await supervisor.update((s) => withEndpoints(s, endpoints(0)));

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const t0 = performance.now();
const c0 = cpuMs();
for (let i = 1; i <= updates; i++) await supervisor.update((s) => withEndpoints(s, endpoints(i)));
const wallMs = performance.now() - t0;
const busyMs = cpuMs() - c0;
// Idle (heartbeats, timers) over as long, to subtract.
const c1 = cpuMs();
await new Promise((r) => setTimeout(r, wallMs));
const idleMs = cpuMs() - c1;
await supervisor.stop();

const per = (ms: number): string => `${((ms / updates) * 1000).toFixed(0)} µs`;
console.log(
  `${updates} updates, ${workers} workers, 20 endpoints (one swapped each): CPU ${per(busyMs - idleMs)} per update (main + workers; idle ${per(idleMs)} subtracted), wall ${per(wallMs)} per acknowledged update`,
);

// A real etcd cluster for tests (Debian's etcd-server, v3.4): three members on loopback ports,
// each with its data in a temp dir, started together and health-checked with etcdctl. A member
// can be killed (SIGKILL), stopped, and started again on the same ports and data, as an operator
// would restart one. closeAll() (live.ts) kills every member and removes the data.
// `etcdUnavailable()` says why the tests cannot run here (no etcd binary), for a describe.skipIf.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { eventually, tempDir, track } from './live.js';
import { deadPort } from './upstream.js';

const run = promisify(execFile);

/** Why etcd tests cannot run here (null when they can). */
export function etcdUnavailable(): string | null {
  for (const bin of ['etcd', 'etcdctl']) {
    const probe = spawnSync(bin, ['--version'], { stdio: 'ignore', env: { ...process.env, ETCDCTL_API: '3' } });
    if (probe.error !== undefined) return `${bin} is not installed (Debian: etcd-server, etcd-client; .ci/run installs them)`;
  }
  return null;
}

export interface EtcdMember {
  readonly name: string;
  /** `127.0.0.1:<client port>`. */
  readonly endpoint: string;
  running(): boolean;
  /** SIGKILL: the member dies at once, as on a crash. */
  kill(): Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Starts the member again on its ports and data (it rejoins the cluster); resolves once it answers. */
  start(): Promise<void>;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client endpoint, `127.0.0.1:<port>`. */
  readonly endpoints: readonly string[];
  /** Runs `etcdctl --endpoints <the running members> args` (ETCDCTL_API=3); resolves with stdout. */
  ctl(args: readonly string[]): Promise<string>;
  stopAll(): Promise<void>;
  startAll(): Promise<void>;
}

/** Starts a 3-member cluster on free loopback ports; resolves once every member is healthy. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const dir = tempDir();
  const token = `outrigger-test-${process.pid}-${Date.now()}`;
  const specs = [];
  for (let i = 0; i < size; i++) specs.push({ name: `m${i}`, client: await deadPort(), peer: await deadPort() });
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const endpoints = specs.map((s) => `127.0.0.1:${s.client}`);

  const ctl = async (args: readonly string[], eps: readonly string[] = endpoints): Promise<string> => {
    const { stdout } = await run('etcdctl', ['--endpoints', eps.join(','), '--dial-timeout', '2s', '--command-timeout', '10s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    return stdout;
  };

  const members = specs.map((s) => {
    let child: ChildProcess | null = null;
    let started = false;
    const args = (): string[] => [
      '--name',
      s.name,
      '--data-dir',
      path.join(dir, s.name),
      '--listen-client-urls',
      `http://127.0.0.1:${s.client}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${s.client}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${s.peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${s.peer}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      token,
      // The first start bootstraps the cluster; a restart rejoins with the data it has.
      '--initial-cluster-state',
      started ? 'existing' : 'new',
      // etcd's defaults (100 ms heartbeats, 1 s elections): shorter ones flap on a loaded 2-core machine.
      '--heartbeat-interval',
      '100',
      '--election-timeout',
      '1000',
      '--log-level',
      'warn',
    ];
    const exited = (c: ChildProcess): Promise<void> =>
      c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((resolve) => c.once('exit', () => resolve()));
    const member: EtcdMember = {
      name: s.name,
      endpoint: `127.0.0.1:${s.client}`,
      running: () => child !== null && child.exitCode === null && child.signalCode === null,
      kill: async () => {
        if (child === null) return;
        const c = child;
        c.kill('SIGKILL');
        await exited(c);
        child = null;
      },
      stop: async () => {
        if (child === null) return;
        const c = child;
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await exited(c);
        clearTimeout(timer);
        child = null;
      },
      start: async () => {
        if (member.running()) return;
        child = spawn('etcd', args(), { stdio: ['ignore', 'ignore', 'pipe'] });
        started = true;
        let err = '';
        child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
        const c = child;
        c.once('exit', (code) => {
          if (child === c && code !== 0 && code !== null) err += `\n(etcd ${s.name} exited ${code})`;
        });
        await eventually(() => ctl(['endpoint', 'health'], [member.endpoint]), `etcd member ${s.name} healthy`, 30_000, 100).catch((e: unknown) => {
          throw new Error(`etcd member ${s.name} did not become healthy: ${String(e)}\n${err}`);
        });
      },
    };
    return member;
  });

  const cluster: EtcdCluster = {
    members,
    endpoints,
    // etcdctl 3.4 can stay on a dead first endpoint until its deadline: name only the running members.
    ctl: (args) =>
      ctl(
        args,
        members.filter((m) => m.running()).map((m) => m.endpoint),
      ),
    stopAll: async () => {
      await Promise.all(members.map((m) => m.stop()));
    },
    startAll: async () => {
      // Members wait for a quorum before they answer: start them together.
      await Promise.all(members.map((m) => m.start()));
    },
  };
  // Teardown kills: the data is thrown away, and a graceful stop of every member at once waits on leader transfers.
  track({ close: () => Promise.all(members.map((m) => m.kill())) });
  await cluster.startAll();
  return cluster;
}

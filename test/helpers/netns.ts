// Network namespaces for tests that need a "host" of their own: iptables interception, original
// destinations, a multi-host mesh. Everything lives inside namespaces the test creates: each host
// is a namespace with loopback up, and hosts are joined through a "switch" namespace holding a
// bridge, so no address, link or rule is ever added to the machine's own namespace. closeAll()
// (live.ts) deletes the namespaces, which removes their links and rules with them.
// Needs root and `ip` (iproute2); `netnsUnavailable()` says why not, for a describe.skipIf.

import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { track } from './live.js';

const run = promisify(execFile);

/** Why network-namespace tests cannot run here (null when they can): they need root and iproute2. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
  const probe = spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  if (probe.error !== undefined) return '`ip` (iproute2) is not installed';
  if (probe.status !== 0) return '`ip netns` does not work here';
  return null;
}

/** One network namespace the test created. */
export interface Netns {
  readonly name: string;
  /** Runs `cmd args` inside the namespace; rejects (with stderr in the message) on a non-zero exit. */
  exec(cmd: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }>;
  /** Runs `cmd args` inside the namespace; resolves with the exit code and output, whatever the code. */
  try(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts `cmd args` inside the namespace (stopped with SIGTERM, then SIGKILL, by closeAll()). */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** The `ip netns exec <name>` prefix, for launchers that build their own command line. */
  readonly prefix: readonly string[];
}

/** Creates a namespace with loopback up; deleted by closeAll(). `tag`: a few letters naming it in `ip netns list`. */
export async function createNetns(tag: string): Promise<Netns> {
  const name = `or-${tag}-${randomBytes(3).toString('hex')}`;
  await run('ip', ['netns', 'add', name]);
  track({ close: () => run('ip', ['netns', 'del', name]).catch(() => undefined) });
  const prefix = ['ip', 'netns', 'exec', name] as const;
  const ns: Netns = {
    name,
    prefix,
    exec: async (cmd, args) => {
      try {
        return await run('ip', [...prefix.slice(1), cmd, ...args], { maxBuffer: 64 * 1024 * 1024 });
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`in ${name}: ${cmd} ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
      }
    },
    try: async (cmd, args) => {
      try {
        const { stdout, stderr } = await run('ip', [...prefix.slice(1), cmd, ...args], { maxBuffer: 64 * 1024 * 1024 });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    },
    spawn: (cmd, args, opts = {}) => {
      const child = spawn('ip', [...prefix.slice(1), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      track({ close: () => stopChild(child) });
      return child;
    },
  };
  await ns.exec('ip', ['link', 'set', 'lo', 'up']);
  return ns;
}

/** A "host" on a LAN: its namespace, its address on the LAN, and its interface's name there. */
export interface Host extends Netns {
  readonly address: string;
  readonly ifname: string;
}

/** A LAN: a bridge in a namespace of its own, and the hosts plugged into it. */
export interface Lan {
  readonly switch: Netns;
  /** `10.<n>.0.0/24`: the LAN's subnet. */
  readonly subnet: string;
  /** Plugs a new host into the LAN at `10.<n>.0.<index>`; its default route points at the LAN, so any address is routable (service VIPs included). */
  addHost(tag: string, index: number): Promise<Host>;
  /** The name, in the switch namespace, of the bridge port of `host` (where tcpdump sees that host's traffic). */
  portOf(host: Host): string;
}

/** Creates a LAN `10.<octet>.0.0/24` (octet 200–250 are free for tests). */
export async function createLan(octet: number): Promise<Lan> {
  const sw = await createNetns('sw');
  await sw.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await sw.exec('ip', ['link', 'set', 'br0', 'up']);
  const subnet = `10.${octet}.0.0/24`;
  const ports = new Map<string, string>();
  return {
    switch: sw,
    subnet,
    portOf: (host) => ports.get(host.name)!,
    addHost: async (tag, index) => {
      const ns = await createNetns(tag);
      const port = `p${index}-${randomBytes(2).toString('hex')}`; // ≤ 15 characters (IFNAMSIZ)
      // The veth pair is made inside the switch namespace, then one end moves to the host: nothing touches the root namespace.
      await sw.exec('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await sw.exec('ip', ['link', 'set', port, 'master', 'br0']);
      await sw.exec('ip', ['link', 'set', port, 'up']);
      const address = `10.${octet}.0.${index}`;
      await ns.exec('ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ns.exec('ip', ['link', 'set', 'eth0', 'up']);
      await ns.exec('ip', ['route', 'add', 'default', 'dev', 'eth0']);
      ports.set(ns.name, port);
      return { ...ns, address, ifname: 'eth0' };
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

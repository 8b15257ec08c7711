// What the interception tests share: the built CLI run inside a test namespace, the namespace's
// nat table as iptables-save prints it (counters and comments dropped, so two listings compare),
// and probe.mjs (TCP listeners that report the original destination, and clients) started there,
// optionally as another uid through setpriv.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from '../helpers/process.js';
import type { Netns } from '../helpers/netns.js';

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'probe.mjs');

/** `outrigger iptables ...args` inside `ns`, as root; the exit code and output whatever the code. */
export function outrigger(ns: Netns, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return ns.try(process.execPath, [CLI, ...args]);
}

/** The same, as `uid` (setpriv drops root after `ip netns exec` has entered the namespace). */
export function outriggerAs(ns: Netns, uid: number, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return ns.try('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, CLI, ...args]);
}

/** `iptables-save -t nat` (or ip6tables-save) of `ns`, without its comment lines and counters. */
export async function natTable(ns: Netns, family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<string> {
  const { stdout } = await ns.exec(family === 'ipv4' ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat']);
  return stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');
}

/** One answer of a probe listener: its name and, on the ":orig" listeners, the original destination and what the lookups took (probe.mjs). */
export interface ProbeAnswer {
  listener?: string;
  original?: string | null;
  ns?: number;
  repeatNs?: number;
  error?: string;
}

/** Starts probe.mjs listeners in `ns` (`NAME=HOST:PORT[:orig]` each); resolves once all are bound. closeAll() stops it. */
export async function startProbe(ns: Netns, listeners: readonly string[]): Promise<void> {
  const child = ns.spawn(process.execPath, [PROBE, 'serve', ...listeners]);
  let out = '';
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes('listening\n')) resolve();
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('exit', (code) => reject(new Error(`probe in ${ns.name} exited (${String(code)}): ${err}`)));
  });
}

/** Connects from `ns` as `uid` to host:port `count` times; one answer per connection. */
export async function probeConnect(ns: Netns, uid: number, host: string, port: number, count = 1): Promise<ProbeAnswer[]> {
  const { stdout } = await ns.exec('setpriv', [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    '--clear-groups',
    process.execPath,
    PROBE,
    'connect',
    host,
    String(port),
    String(count),
  ]);
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ProbeAnswer);
}

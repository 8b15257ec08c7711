// Where `outrigger mesh` finds etcd: a sidecar config's top-level discovery.etcd (-c CONFIG),
// with each flag in place of its field: --etcd, --prefix, and TLS as etcdctl names it (--cacert,
// --cert, --key). Reads the config file and checks that the TLS files can be read; the etcd
// client itself is made by discovery/etcd_client.ts, as the sidecar makes its own.

import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import { compileEtcd, type EtcdSpec, type EtcdTlsSpec } from '../config/etcd.js';
import { formatProblems, loadConfigFile } from '../config/load.js';

export interface ConnectionFlags {
  readonly config?: string | undefined;
  readonly etcd?: string | undefined;
  readonly prefix?: string | undefined;
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

const DEFAULT_PREFIX = '/outrigger';

/** The etcd cluster to talk to; a bad flag, config or unreadable TLS file throws `new Usage(why)`. */
export async function meshConnection(flags: ConnectionFlags, Usage: new (message: string) => Error): Promise<EtcdSpec> {
  const base = flags.config === undefined ? null : await configConnection(flags.config, Usage);
  const endpoints = flags.etcd === undefined ? base?.endpoints : flags.etcd.split(',').map((h) => h.trim());
  if (endpoints === undefined || endpoints.length === 0 || endpoints.includes(''))
    throw new Usage('--etcd HOST:PORT,... (or -c CONFIG with discovery.etcd) is needed');
  const prefix = flags.prefix === undefined ? (base?.prefix ?? DEFAULT_PREFIX) : flags.prefix.replace(/\/+$/, '');
  if (!prefix.startsWith('/')) throw new Usage(`--prefix "${prefix}" must start with /`);
  const tls = tlsOf(flags, base?.tls ?? null, Usage);
  return { endpoints, prefix, tls };
}

/** `discovery.etcd` of the sidecar config `file` (checked as `outrigger validate` checks it). */
async function configConnection(file: string, Usage: new (message: string) => Error): Promise<EtcdSpec> {
  const loaded = await loadConfigFile(file, { version: 1, availableParallelism: os.availableParallelism(), enableTestHooks: false });
  if (!loaded.ok) throw new Usage(`-c ${file} is not a valid config:\n${formatProblems(loaded.problems)}`);
  const spec = compileEtcd(loaded.source.discovery);
  if (spec === null) throw new Usage(`-c ${file} has no discovery.etcd`);
  return spec;
}

/** The config's TLS with the flags in place of its fields; null (plain http) when neither gives any. */
function tlsOf(flags: ConnectionFlags, base: EtcdTlsSpec | null, Usage: new (message: string) => Error): EtcdTlsSpec | null {
  if ((flags.cert === undefined) !== (flags.key === undefined)) throw new Usage('--cert and --key go together');
  const ca = flags.cacert ?? base?.ca;
  const cert = flags.cert ?? base?.cert ?? null;
  const key = flags.key ?? base?.key ?? null;
  if (ca === undefined) {
    if (cert !== null) throw new Usage("--cert needs --cacert FILE (the CA that signs the etcd members' certificates)");
    return null;
  }
  for (const file of [ca, cert, key]) if (file !== null) readable(file, Usage);
  return { ca, cert, key };
}

function readable(file: string, Usage: new (message: string) => Error): void {
  try {
    accessSync(file, constants.R_OK);
  } catch (e) {
    throw new Usage(`cannot read the TLS file "${file}" (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/**
 * A failed etcd call as one line: grpc's status text without the resolution note and timestamp it
 * appends, OpenSSL's error stack cut to its reason, and what to do when etcd refused the handshake
 * for want of a client certificate it trusts.
 */
export function etcdErrorLine(e: unknown): string {
  const text = (e instanceof Error ? e.message : String(e))
    .replace(/\s*Resolution note:[\s\S]*$/, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)\.?/, '')
    .replace(/\s+/g, ' ')
    .trim();
  const ssl = /\S*error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):.*$/.exec(text);
  if (ssl === null) return text;
  const reason = ssl[1]!;
  const hint = /bad certificate|certificate required/.test(reason) ? ': etcd wants a client certificate it trusts (--cert FILE --key FILE)' : '';
  return `${text.slice(0, ssl.index)}TLS handshake failed (${reason})${hint}`;
}

/**
 * grpc-js sends an IP-literal etcd member's address as the TLS server name, and node deprecates
 * that (DEP0123) with a two-line warning on stderr: noise before every answer from an etcd
 * addressed by IP. Drops that one warning; every other still reaches node's printer.
 */
export function quietIpServerNameWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code !== 'DEP0123') for (const print of printers) print(w);
  });
}

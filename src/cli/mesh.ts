// `outrigger mesh apply | status | rollback`: the mesh-wide config in etcd (discovery/mesh_store.ts
// has the key layout). apply validates the whole file (every problem, nothing written when one is
// wrong) and writes it as the next version; status shows every sidecar's applied version and lag;
// rollback writes an earlier version's content as a new version.
// Exit codes: 0 ok, 1 the store cannot be reached or fails, 2 a user mistake (bad flag, bad file).

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Etcd3 } from 'etcd3';
import { formatProblems } from '../config/load.js';
import { parseMeshText, validateMesh } from '../discovery/mesh_config.js';
import { etcdClient, etcdKeys, type EtcdKeys } from '../discovery/etcd_client.js';
import { publishMeshVersion, readCurrentPointer, readMeshVersion, registrationsPrefix, type SidecarStatus } from '../discovery/mesh_store.js';
import { parseArgsOr } from './args.js';
import { etcdErrorLine, meshConnection, quietIpServerNameWarning, type ConnectionFlags } from './mesh_connection.js';

const HELP = `Usage: outrigger mesh apply -f FILE CONNECTION
       outrigger mesh status CONNECTION [--json]
       outrigger mesh rollback --to N CONNECTION
  CONNECTION: --etcd HOST:PORT,... [--prefix P] [--cacert FILE [--cert FILE --key FILE]]
          or: -c CONFIG (a sidecar config: its discovery.etcd), each flag above in place of its field
  The mesh-wide config: services: {<name>: {listeners?, clusters?}}, whose parts replace the
  local config file's parts on every sidecar of that service (node.service.name).
      -f, --file FILE     the mesh file (YAML or JSON); checked like \`outrigger validate\` first
      -c, --config FILE   take etcd's endpoints, prefix and TLS from this config's discovery.etcd
      --etcd H:P,...      etcd client endpoints
      --prefix P          the key prefix (default /outrigger)
      --cacert FILE       https to etcd, trusting this CA (etcdctl's names, as for the flags below)
      --cert FILE         client certificate, for an etcd with --client-cert-auth (its CN is the etcd user)
      --key FILE          its private key
      --to N              the version whose content becomes the new version
      --json              status as JSON
  Exit: 0, 1 when etcd cannot be reached or fails, 2 for bad arguments or an invalid file.
`;

class MeshUsage extends Error {}

interface MeshIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

export async function runMesh(argv: string[], io: MeshIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let client: Etcd3 | null = null;
  try {
    const opts = meshOptions(argv);
    if (opts === null) {
      io.stdout.write(HELP);
      return 0;
    }
    // The file is read and checked before etcd is contacted: a bad file never reaches the store.
    const document = opts.command === 'apply' ? await checkedMeshFile(opts.file) : null;
    const connection = await meshConnection(opts.connection, MeshUsage);
    if (connection.tls !== null) quietIpServerNameWarning();
    client = await etcdClient(connection);
    const keys = etcdKeys(connection.prefix);
    if (opts.command === 'apply') {
      const version = await publishMeshVersion(client, keys, document);
      io.stdout.write(`mesh version ${version} written\n`);
    } else if (opts.command === 'rollback') {
      const version = await rollback(client, keys, opts.to);
      io.stdout.write(`mesh version ${version} written (the content of version ${opts.to})\n`);
    } else {
      const status = await meshStatus(client, keys, registrationsPrefix(connection.prefix));
      io.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
    }
    return 0;
  } catch (e) {
    if (e instanceof MeshUsage) {
      io.stderr.write(`outrigger mesh: ${e.message}\n`);
      return 2;
    }
    io.stderr.write(`outrigger mesh: etcd: ${etcdErrorLine(e)}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

type MeshOptions = { readonly connection: ConnectionFlags } & (
  | { readonly command: 'apply'; readonly file: string }
  | { readonly command: 'status'; readonly json: boolean }
  | { readonly command: 'rollback'; readonly to: number }
);

/** The parsed command line, or null for --help. */
function meshOptions(argv: string[]): MeshOptions | null {
  const { values, positionals } = parseArgsOr(
    {
      args: argv,
      allowPositionals: true,
      options: {
        file: { type: 'string', short: 'f' },
        config: { type: 'string', short: 'c' },
        etcd: { type: 'string' },
        prefix: { type: 'string' },
        cacert: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        to: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    },
    MeshUsage,
  );
  if (values.help === true) return null;
  const [command, extra] = positionals;
  if (extra !== undefined) throw new MeshUsage(`unexpected argument "${extra}"`);
  const { config, etcd, prefix, cacert, cert, key } = values;
  const connection = { config, etcd, prefix, cacert, cert, key };
  switch (command) {
    case 'apply':
      if (values.file === undefined) throw new MeshUsage('apply needs -f FILE');
      return { command, file: values.file, connection };
    case 'status':
      return { command, json: values.json, connection };
    case 'rollback': {
      const to = Number(values.to);
      if (values.to === undefined || !Number.isSafeInteger(to) || to < 1) throw new MeshUsage('rollback needs --to N (a version number)');
      return { command, to, connection };
    }
    default:
      throw new MeshUsage(command === undefined ? 'missing command (apply, status, rollback)' : `unknown mesh command "${command}" (apply, status, rollback)`);
  }
}

/** The mesh file's document, or a MeshUsage error listing every problem. */
async function checkedMeshFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new MeshUsage(`cannot read "${file}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const parsed = parseMeshText(text, { version: 1, availableParallelism: os.availableParallelism(), enableTestHooks: false });
  if (!parsed.ok) throw new MeshUsage(`${file} is not valid; nothing was written:\n${formatProblems(parsed.problems)}`);
  return parsed.mesh;
}

/** Writes version `to`'s content as a new version; its number. */
async function rollback(client: Etcd3, keys: EtcdKeys, to: number): Promise<number> {
  const document = await readMeshVersion(client, keys, to);
  if (document === null) throw new MeshUsage(`the store has no mesh version ${to}`);
  const checked = validateMesh(document, { version: 1, availableParallelism: os.availableParallelism(), enableTestHooks: false });
  if (!checked.ok) throw new MeshUsage(`mesh version ${to} does not pass today's checks:\n${formatProblems(checked.problems)}`);
  return publishMeshVersion(client, keys, document);
}

export interface SidecarRow {
  readonly id: string;
  readonly service: string | null;
  /** Its registration (`<p>/services/<service>/<id>`) is alive: the sidecar runs and keeps its lease. */
  readonly registered: boolean;
  readonly applied_version: number | null;
  /** `unknown`: registered, but no status line (no mesh watcher, or not written yet). */
  readonly status: 'ok' | 'error' | 'unknown';
  readonly error?: string;
  /** current − applied; null when either is unknown. */
  readonly lag: number | null;
  readonly updated_at?: string;
}

export interface MeshStatus {
  readonly current_version: number | null;
  readonly sidecars: readonly SidecarRow[];
}

async function meshStatus(client: Etcd3, keys: EtcdKeys, registrations: string): Promise<MeshStatus> {
  const [{ version }, statuses, registrationKeys] = await Promise.all([
    readCurrentPointer(client, keys),
    client.getAll().prefix(keys.sidecarsPrefix).strings(),
    client.getAll().prefix(registrations).keys(),
  ]);
  const current = version === 0 ? null : version;
  const registered = new Map<string, string>();
  for (const key of registrationKeys) {
    const [service, id] = key.slice(registrations.length).split('/');
    if (service !== undefined && id !== undefined) registered.set(id, service);
  }
  const rows: SidecarRow[] = [];
  for (const [key, text] of Object.entries(statuses)) {
    const id = key.slice(keys.sidecarsPrefix.length);
    rows.push(statusRow(id, text, registered.has(id), current));
  }
  for (const [id, service] of registered) {
    if (!(keys.sidecar(id) in statuses)) rows.push({ id, service, registered: true, applied_version: null, status: 'unknown', lag: null });
  }
  rows.sort((a, b) => (a.service ?? '').localeCompare(b.service ?? '') || a.id.localeCompare(b.id));
  return { current_version: current, sidecars: rows };
}

function statusRow(id: string, text: string, registered: boolean, current: number | null): SidecarRow {
  let s: SidecarStatus;
  try {
    s = JSON.parse(text) as SidecarStatus;
  } catch {
    return { id, service: null, registered, applied_version: null, status: 'error', error: `unreadable status: ${text.slice(0, 80)}`, lag: null };
  }
  const applied = s.applied_version;
  return {
    id,
    service: s.service,
    registered,
    applied_version: applied,
    status: s.status,
    ...(s.error === undefined ? {} : { error: s.error }),
    lag: current === null || applied === null ? null : current - applied,
    updated_at: s.updated_at,
  };
}

function renderStatus(status: MeshStatus): string {
  const head = `mesh version: ${status.current_version ?? '(none applied)'}\n`;
  const rows = [['SIDECAR', 'SERVICE', 'REGISTERED', 'APPLIED', 'LAG', 'STATUS']];
  for (const r of status.sidecars) {
    rows.push([
      r.id,
      r.service ?? '-',
      r.registered ? 'yes' : 'no',
      r.applied_version === null ? '-' : String(r.applied_version),
      r.lag === null ? '-' : String(r.lag),
      r.error === undefined ? r.status : `${r.status}: ${r.error}`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return head + rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

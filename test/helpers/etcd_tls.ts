// One etcd member over TLS that asks every client for a certificate (--client-cert-auth), with
// RBAC on, as README "Running a mesh" sets it up: etcd takes a client certificate's CN as the
// user name. The PKI (a CA, etcd's server certificate for 127.0.0.1, client certificates by CN)
// is made with openssl in a temp dir; closeAll() (live.ts) stops the member and removes the dir.

import { execFile, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { eventually, tempDir, track } from './live.js';
import { deadPort } from './upstream.js';

const run = promisify(execFile);

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface TlsEtcd {
  /** `127.0.0.1:<client port>` (https). */
  readonly endpoint: string;
  /** The CA that signs etcd's server certificate and every client certificate. */
  readonly ca: string;
  /** A client certificate whose CN is `cn` (issued on first use; `root` is the etcd root user's). */
  readonly cert: (cn: string) => CertFiles;
  /** `etcdctl` as the root user (with root's certificate); resolves with stdout. */
  readonly ctl: (args: readonly string[]) => Promise<string>;
}

/** What a role may do on every key under a prefix. */
export type Grant = readonly ['read' | 'readwrite', string];

/**
 * `etcdctl role add` with its prefix grants, and a user without a password (authenticated by a
 * client certificate whose CN is `user`) that holds it: README "Running a mesh", one call.
 */
export async function addRoleUser(etcd: Pick<TlsEtcd, 'ctl'>, user: string, role: string, grants: readonly Grant[]): Promise<void> {
  await etcd.ctl(['role', 'add', role]);
  for (const [permission, prefix] of grants) await etcd.ctl(['role', 'grant-permission', role, permission, prefix, '--prefix=true']);
  await etcd.ctl(['user', 'add', user, '--no-password']);
  await etcd.ctl(['user', 'grant-role', user, role]);
}

/** Starts the member, creates the root user (its certificate's CN) and turns auth on; resolves once it answers. */
export async function startTlsEtcd(): Promise<TlsEtcd> {
  const dir = tempDir('outrigger-etcd-tls-');
  const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl(['req', '-x509', ...newKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test etcd ca']);
  const leaf = (name: string, cn: string, ext: string): CertFiles => {
    ssl(['req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    execFileSync('sh', ['-c', `printf '%s\\n' '${ext}' > ${name}.ext`], { cwd: dir });
    ssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ]);
    return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  };
  const issued = new Map<string, CertFiles>();
  const cert = (cn: string): CertFiles => {
    let files = issued.get(cn);
    if (files === undefined) {
      files = leaf(`client-${issued.size}`, cn, 'extendedKeyUsage=clientAuth');
      issued.set(cn, files);
    }
    return files;
  };
  const ca = path.join(dir, 'ca.pem');
  const server = leaf('server', 'etcd', 'subjectAltName=IP:127.0.0.1');

  const [client, peer] = [await deadPort(), await deadPort()];
  const endpoint = `127.0.0.1:${client}`;
  const member = spawn(
    'etcd',
    [
      ...['--name', 's', '--data-dir', path.join(dir, 'data'), '--log-level', 'warn'],
      ...['--listen-client-urls', `https://${endpoint}`, '--advertise-client-urls', `https://${endpoint}`],
      ...['--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`],
      ...['--initial-cluster', `s=http://127.0.0.1:${peer}`],
      ...['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', ca, '--client-cert-auth'],
    ],
    { stdio: 'ignore' },
  );
  track({ close: () => new Promise<void>((resolve) => (member.exitCode !== null ? resolve() : (member.once('exit', () => resolve()), member.kill()))) });
  const ctl = async (args: readonly string[]): Promise<string> => {
    const root = cert('root');
    const { stdout } = await run('etcdctl', ['--endpoints', `https://${endpoint}`, '--cacert', ca, '--cert', root.cert, '--key', root.key, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    return stdout;
  };
  await eventually(() => ctl(['endpoint', 'health']), 'etcd over TLS healthy', 30_000, 100);
  await ctl(['user', 'add', 'root', '--new-user-password', 'unused-with-certificates']);
  await ctl(['user', 'grant-role', 'root', 'root']);
  await ctl(['auth', 'enable']);
  return { endpoint, ca, cert, ctl };
}

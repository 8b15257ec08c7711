// etcd over TLS with client certificates and RBAC, as README "Running a mesh" sets it up: one
// etcd member with --client-cert-auth (the certificate's CN is the etcd user), a role per
// service. A sidecar of service api, with api's certificate, registers; one that claims service
// web with the same certificate is refused by etcd (its /stats registration says so) while it
// keeps serving; api's user cannot write under another service's prefix.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable } from '../helpers/etcd.js';
import { adminCall, closeAll, deadPort, eventually, httpGet, startSidecar, startUpstream, tempDir, track } from '../helpers/sidecar.js';

const why = etcdUnavailable();
const run = promisify(execFile);

/** A CA, etcd's server certificate (IP 127.0.0.1) and client certificates whose CN names the etcd user, made with openssl. */
function makePki(dir: string): { ca: string; cert(name: string): { cert: string; key: string } } {
  const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=test etcd ca',
  ]);
  const leaf = (name: string, cn: string, ext: string): void => {
    ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
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
  };
  leaf('server', 'etcd', 'subjectAltName=IP:127.0.0.1');
  leaf('root', 'root', 'extendedKeyUsage=clientAuth');
  leaf('api', 'api.default', 'extendedKeyUsage=clientAuth');
  return { ca: path.join(dir, 'ca.pem'), cert: (name) => ({ cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) }) };
}

describe.skipIf(why !== null)(`etcd with client certificates and RBAC${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('a service role lets its sidecars register under their service only', async () => {
    const dir = tempDir();
    const pki = makePki(dir);
    const [client, peer] = [await deadPort(), await deadPort()];
    const endpoint = `127.0.0.1:${client}`;
    const server = pki.cert('server');
    const member = spawn(
      'etcd',
      [
        ...['--name', 's', '--data-dir', path.join(dir, 'data'), '--log-level', 'warn'],
        ...['--listen-client-urls', `https://${endpoint}`, '--advertise-client-urls', `https://${endpoint}`],
        ...['--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`],
        ...['--initial-cluster', `s=http://127.0.0.1:${peer}`],
        ...['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', pki.ca, '--client-cert-auth'],
      ],
      { stdio: 'ignore' },
    );
    track({ close: () => new Promise<void>((resolve) => (member.exitCode !== null ? resolve() : (member.once('exit', () => resolve()), member.kill()))) });
    const root = pki.cert('root');
    const ctl = async (args: string[]): Promise<string> =>
      (
        await run('etcdctl', ['--endpoints', `https://${endpoint}`, '--cacert', pki.ca, '--cert', root.cert, '--key', root.key, ...args], {
          env: { ...process.env, ETCDCTL_API: '3' },
        })
      ).stdout;
    await eventually(() => ctl(['endpoint', 'health']), 'etcd over TLS healthy', 30_000, 100);

    // README "Running a mesh": the role of service api, its user (the certificate's CN), auth on.
    await ctl(['user', 'add', 'root', '--new-user-password', 'unused-with-certificates']);
    await ctl(['user', 'grant-role', 'root', 'root']);
    await ctl(['role', 'add', 'svc-api']);
    await ctl(['role', 'grant-permission', 'svc-api', 'readwrite', '/outrigger/services/api/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'readwrite', '/outrigger/sidecars/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'read', '/outrigger/services/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'read', '/outrigger/mesh/', '--prefix=true']);
    await ctl(['user', 'add', 'api.default', '--no-password']);
    await ctl(['user', 'grant-role', 'api.default', 'svc-api']);
    await ctl(['auth', 'enable']);

    const up = await startUpstream('u');
    const sidecar = async (service: string) => {
      const port = await deadPort();
      return startSidecar({
        node: { workers: 1, service: { name: service, address: '127.0.0.1', port } },
        discovery: { etcd: { endpoints: [endpoint], tls: { ca: pki.ca, ...pki.cert('api') } } },
        listeners: [{ name: 'main', address: `127.0.0.1:${port}`, routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'app' }] }],
        clusters: [{ name: 'app', endpoints: [{ address: up.address }] }],
      });
    };
    const api = await sidecar('api');
    await eventually(
      async () => ((await ctl(['get', '--prefix', '--keys-only', '/outrigger/services/api/'])).includes(`api/`) ? true : undefined),
      'api registered',
      15_000,
    );

    const impostor = await sidecar('web');
    const state = await eventually(
      async () => {
        const s = ((await adminCall(impostor, 'GET', '/stats')).json as { registration?: { state: string; error: string | null } }).registration;
        return s?.state === 'retrying' ? s : undefined;
      },
      'the web registration refused',
      15_000,
    );
    expect(state.error).toMatch(/permission denied/);
    expect((await httpGet(impostor.url('/still-serving'))).status).toBe(200);
    expect(await ctl(['get', '--prefix', '--keys-only', '/outrigger/services/web/'])).toBe('');

    // The same user, directly: no write under another service's prefix.
    const asApi = new Etcd3({
      hosts: `https://${endpoint}`,
      credentials: {
        rootCertificate: readFileSync(pki.ca),
        certChain: readFileSync(pki.cert('api').cert),
        privateKey: readFileSync(pki.cert('api').key),
      },
    });
    track({ close: () => Promise.resolve(asApi.close()) });
    await expect(asApi.put('/outrigger/services/web/forged').value('{}')).rejects.toThrow(/permission denied/);
    expect(await asApi.getAll().prefix('/outrigger/services/api/').keys()).toHaveLength(1);
    expect((await httpGet(api.url('/x'))).status).toBe(200);
  });
});

// etcd over TLS with client certificates and RBAC, as README "Running a mesh" sets it up: one
// etcd member with --client-cert-auth (the certificate's CN is the etcd user), a role per
// service. A sidecar of service api, with api's certificate, registers; one that claims service
// web with the same certificate is refused by etcd (its /stats registration says so) while it
// keeps serving; api's user cannot write under another service's prefix, but can write any key
// of its own (what a role per service does not enforce). A role per host, on the key prefix
// `<p>/services/<service>/<hostname>-` (sidecar ids are `<hostname>-<pid>`), lets a sidecar
// register while the same user cannot write another host's registration or status line.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable } from '../helpers/etcd.js';
import { addRoleUser, startTlsEtcd, type TlsEtcd } from '../helpers/etcd_tls.js';
import { adminCall, closeAll, deadPort, eventually, httpGet, startSidecar, startUpstream, track, type Sidecar } from '../helpers/sidecar.js';

const why = etcdUnavailable();

/** An etcd client authenticated as the user `cn` (its client certificate). */
function clientAs(etcd: TlsEtcd, cn: string): Etcd3 {
  const client = new Etcd3({
    hosts: `https://${etcd.endpoint}`,
    credentials: { rootCertificate: readFileSync(etcd.ca), certChain: readFileSync(etcd.cert(cn).cert), privateKey: readFileSync(etcd.cert(cn).key) },
  });
  track({ close: () => Promise.resolve(client.close()) });
  return client;
}

/** A sidecar registering as `service` with `cn`'s client certificate, its listener to a fresh upstream. */
async function registeringSidecar(etcd: TlsEtcd, service: string, cn: string): Promise<Sidecar> {
  const up = await startUpstream('u');
  const port = await deadPort();
  return startSidecar({
    node: { workers: 1, service: { name: service, address: '127.0.0.1', port } },
    discovery: { etcd: { endpoints: [etcd.endpoint], tls: { ca: etcd.ca, ...etcd.cert(cn) } } },
    listeners: [{ name: 'main', address: `127.0.0.1:${port}`, routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'app' }] }],
    clusters: [{ name: 'app', endpoints: [{ address: up.address }] }],
  });
}

describe.skipIf(why !== null)(`etcd with client certificates and RBAC${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('a service role lets its sidecars register under their service only', async () => {
    const etcd = await startTlsEtcd();

    // README "Running a mesh": the role of service api and its user (the certificate's CN); auth is on.
    await addRoleUser(etcd, 'api.default', 'svc-api', [
      ['readwrite', '/outrigger/services/api/'],
      ['readwrite', '/outrigger/sidecars/'],
      ['read', '/outrigger/services/'],
      ['read', '/outrigger/mesh/'],
    ]);

    const api = await registeringSidecar(etcd, 'api', 'api.default');
    await eventually(
      async () => ((await etcd.ctl(['get', '--prefix', '--keys-only', '/outrigger/services/api/'])).includes(`api/`) ? true : undefined),
      'api registered',
      15_000,
    );

    const impostor = await registeringSidecar(etcd, 'web', 'api.default');
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
    expect(await etcd.ctl(['get', '--prefix', '--keys-only', '/outrigger/services/web/'])).toBe('');

    // The same user, directly: no write under another service's prefix.
    const asApi = clientAs(etcd, 'api.default');
    await expect(asApi.put('/outrigger/services/web/forged').value('{}')).rejects.toThrow(/permission denied/);
    expect(await asApi.getAll().prefix('/outrigger/services/api/').keys()).toHaveLength(1);
    expect((await httpGet(api.url('/x'))).status).toBe(200);
    // What a role per service does not enforce: any key of its service, another sidecar's included.
    await asApi.put('/outrigger/services/api/otherhost-1').value('{"address":"127.0.0.1","port":9}');
    expect(await asApi.getAll().prefix('/outrigger/services/api/').keys()).toHaveLength(2);
  });

  it("a role per host limits a sidecar to its own host's registrations and status lines", async () => {
    const etcd = await startTlsEtcd();
    // README "Running a mesh": the per-host role; its user is the CN of that host's certificate.
    const own = `${os.hostname()}-`;
    const role = 'sidecar-api-thishost';
    await addRoleUser(etcd, 'api.thishost', role, [
      ['readwrite', `/outrigger/services/api/${own}`],
      ['readwrite', `/outrigger/sidecars/${own}`],
      ['read', '/outrigger/services/'],
      ['read', '/outrigger/mesh/'],
    ]);

    const api = await registeringSidecar(etcd, 'api', 'api.thishost');
    const key = `/outrigger/services/api/${os.hostname()}-${api.pid}`;
    await eventually(async () => ((await etcd.ctl(['get', '--keys-only', key])).includes(key) ? true : undefined), 'api registered', 15_000);

    const asHost = clientAs(etcd, 'api.thishost');
    await expect(asHost.put('/outrigger/services/api/otherhost-1').value('{}')).rejects.toThrow(/permission denied/);
    await expect(asHost.put('/outrigger/sidecars/otherhost-1').value('{}')).rejects.toThrow(/permission denied/);
    await asHost.put(`/outrigger/sidecars/${own}1`).value('{}');
    expect(await etcd.ctl(['get', '--prefix', '--keys-only', '/outrigger/services/api/'])).toBe(`${key}\n\n`);
  });
});

// etcd over TLS with client certificates and RBAC, as README "Running a mesh" sets it up: one
// etcd member with --client-cert-auth (the certificate's CN is the etcd user), a role per
// service. A sidecar of service api, with api's certificate, registers; one that claims service
// web with the same certificate is refused by etcd (its /stats registration says so) while it
// keeps serving; api's user cannot write under another service's prefix.

import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable } from '../helpers/etcd.js';
import { startTlsEtcd } from '../helpers/etcd_tls.js';
import { adminCall, closeAll, deadPort, eventually, httpGet, startSidecar, startUpstream, track } from '../helpers/sidecar.js';

const why = etcdUnavailable();

describe.skipIf(why !== null)(`etcd with client certificates and RBAC${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('a service role lets its sidecars register under their service only', async () => {
    const etcd = await startTlsEtcd();
    const { endpoint, ctl } = etcd;

    // README "Running a mesh": the role of service api and its user (the certificate's CN); auth is on.
    await ctl(['role', 'add', 'svc-api']);
    await ctl(['role', 'grant-permission', 'svc-api', 'readwrite', '/outrigger/services/api/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'readwrite', '/outrigger/sidecars/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'read', '/outrigger/services/', '--prefix=true']);
    await ctl(['role', 'grant-permission', 'svc-api', 'read', '/outrigger/mesh/', '--prefix=true']);
    await ctl(['user', 'add', 'api.default', '--no-password']);
    await ctl(['user', 'grant-role', 'api.default', 'svc-api']);

    const up = await startUpstream('u');
    const sidecar = async (service: string) => {
      const port = await deadPort();
      return startSidecar({
        node: { workers: 1, service: { name: service, address: '127.0.0.1', port } },
        discovery: { etcd: { endpoints: [endpoint], tls: { ca: etcd.ca, ...etcd.cert('api.default') } } },
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
        rootCertificate: readFileSync(etcd.ca),
        certChain: readFileSync(etcd.cert('api.default').cert),
        privateKey: readFileSync(etcd.cert('api.default').key),
      },
    });
    track({ close: () => Promise.resolve(asApi.close()) });
    await expect(asApi.put('/outrigger/services/web/forged').value('{}')).rejects.toThrow(/permission denied/);
    expect(await asApi.getAll().prefix('/outrigger/services/api/').keys()).toHaveLength(1);
    expect((await httpGet(api.url('/x'))).status).toBe(200);
  });
});

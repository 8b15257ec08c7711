// A sidecar with an embedded CA (tls.ca) makes its key and leaf in the signing pool's thread
// (tls/issuer_pool.ts): its main thread never loads the certificate code (tls/ca, csr, x509,
// sign_worker and node-forge under them, ~3.7 MiB of heap), yet it has a leaf with its identity
// and serves mTLS to a client sidecar.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadedFrom, MAIN_ENTRY, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, caSource, clientSideConfig, closeAll, httpGet, newCa, serverSideConfig, startSidecar, startUpstream, tempDir } from '../helpers/sidecar.js';

afterAll(closeAll);

const CERTIFICATE_CODE = [/\/node_modules\/node-forge\//, /\/dist\/src\/tls\/(ca|csr|x509|sign_worker)\.js$/];

describe("the certificate code stays off a sidecar's main thread", () => {
  it('an embedded-CA sidecar pair issues its leaves and serves mTLS; neither main thread loaded node-forge or tls/ca', async () => {
    const ca = await newCa();
    const app = await startUpstream('app');
    const logs = { server: path.join(tempDir(), 'server-modules.log'), client: path.join(tempDir(), 'client-modules.log') };
    const server = await startSidecar(serverSideConfig({ tls: caSource(ca), app: app.address, workers: 1 }), { env: moduleLogEnv(logs.server) });
    const client = await startSidecar(clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}`, workers: 1 }), {
      env: moduleLogEnv(logs.client),
    });
    const r = await httpGet({ port: client.port('outbound'), path: '/x' });
    expect([r.status, r.text]).toEqual([200, 'app /x']);
    for (const sc of [server, client]) {
      const certs = await adminCall(sc, 'GET', '/certs');
      expect(certs.status).toBe(200);
      expect(certs.text).toContain('spiffe://');
    }
    for (const log of [logs.server, logs.client]) {
      const main = [...loadedFrom(readFileSync(log, 'utf8'), MAIN_ENTRY)];
      expect(main.length).toBeGreaterThan(30); // the log sees the main thread
      expect(main.filter((url) => CERTIFICATE_CODE.some((m) => m.test(url)))).toEqual([]);
    }
  });
});

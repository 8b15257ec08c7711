// Root rotation with an overlap period, end to end under continuous load. Old root A, new root
// B (same trust domain). The server sidecar issues its own leaves from a CA directory whose
// extra_roots.pem adds B (so it trusts A and B); the client sidecar runs on files (bundle A+B,
// leaf from A). Then, with traffic flowing all the time:
//   1. the client switches to a leaf from B (files replaced on disk);
//   2. the server's CA directory is switched to root B (A moves to extra_roots.pem): its next
//      leaf is issued by B;
//   3. the overlap ends: both sides trust B only — and a client holding an A leaf is refused.
// Not one request fails.

import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_CERT_FILE, CA_KEY_FILE, EXTRA_ROOTS_FILE } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  certsOf,
  clientSideConfig,
  closeAll,
  directRequest,
  endpointCounters,
  eventually,
  filesSource,
  handshakeOnly,
  leaf,
  moreRequests,
  newCa,
  replaceFile,
  serialOf,
  serverSideConfig,
  startApp,
  startLoad,
  startSidecar,
  stopWithoutFailures,
  tempDir,
  WEB,
  writeTlsFiles,
  type Load,
  type Sidecar,
} from '../helpers/sidecar.js';

const TTL_HOURS = 0.0015; // server leaves live 5.4 s: a re-issue every ~2.7 s

const rootA = await newCa();
const rootB = await newCa();
/** The server's CA directory: starts as A (+ B in extra_roots.pem), becomes B (+ A). */
const serverCaDir = path.join(tempDir(), 'server-ca');
mkdirSync(serverCaDir, { mode: 0o700 });
copyFileSync(path.join(rootA.dir, CA_CERT_FILE), path.join(serverCaDir, CA_CERT_FILE));
copyFileSync(path.join(rootA.dir, CA_KEY_FILE), path.join(serverCaDir, CA_KEY_FILE));
replaceFile(path.join(serverCaDir, EXTRA_ROOTS_FILE), rootB.certPem);
const clientFiles = writeTlsFiles(tempDir(), rootA.certPem + rootB.certPem, leaf(rootA, WEB));
let server: Sidecar;
let client: Sidecar;

beforeAll(async () => {
  const app = await startApp();
  server = await startSidecar(serverSideConfig({ tls: caSource(serverCaDir, TTL_HOURS), app: app.address }));
  client = await startSidecar(
    clientSideConfig({ tls: filesSource(clientFiles), upstream: `127.0.0.1:${server.port('inbound')}`, pool: { connections_per_worker: 4 } }),
  );
});
afterAll(closeAll);

/** The certificate the server's inbound listener presents to a new client holding `l` (bundle A+B). */
async function presentedBy(l: { certPem: string; keyPem: string }) {
  const r = await directRequest(server.port('inbound'), { ca: rootA.certPem + rootB.certPem, cert: l.certPem, key: l.keyPem }, { path: '/v1/who' });
  if (!r.ok || r.status !== 200) throw new Error(`direct request failed: ${JSON.stringify(r)}`);
  return r.serverCert!;
}

describe('root rotation with overlap (A → B), traffic flowing throughout', () => {
  let load: Load;

  it('starts on root A with both roots trusted on both sides', async () => {
    const [c, s] = await Promise.all([certsOf(client), certsOf(server)]);
    expect([c.source, c.identity, c.trust_roots]).toEqual(['files', WEB, 2]);
    expect([s.source, s.identity, s.trust_roots]).toEqual(['ca', API, 2]);
    const cert = await presentedBy(leaf(rootB, WEB)); // a B client is already welcome
    expect(cert.checkIssued(rootA.cert)).toBe(true);
    load = startLoad(client.port('outbound'), { connections: 8 });
    await moreRequests(load, 500);
    expect(load.stats.failures).toEqual([]);
  });

  it('the client switches to a leaf from root B: its new connections are accepted', async () => {
    const before = await endpointCounters(client, 'api');
    const leafB = leaf(rootB, WEB);
    replaceFile(clientFiles.key, leafB.keyPem);
    replaceFile(clientFiles.cert, leafB.certPem);
    await eventually(async () => ((await certsOf(client)).serial === serialOf(leafB.certPem) ? true : undefined), 'client picks up its B leaf', 15_000);
    // Pooled connections made with the A leaf are replaced as they finish; the new ones use B.
    await eventually(
      async () => ((await endpointCounters(client, 'api')).connectionsOpened > before.connectionsOpened ? true : undefined),
      'new connections with the B leaf',
    );
    await moreRequests(load, 500);
    expect(load.stats.failures).toEqual([]);
    expect((await certsOf(client)).last_error).toBeNull();
  });

  it('the server CA directory switches to root B: its next leaf is issued by B', async () => {
    // Order matters for the traffic, not for the test: B stays trusted in every state the
    // issuer may read in between (a key/cert pair caught half-replaced is refused and retried).
    replaceFile(path.join(serverCaDir, CA_KEY_FILE), rootB.key.export({ type: 'pkcs8', format: 'pem' }).toString());
    replaceFile(path.join(serverCaDir, CA_CERT_FILE), rootB.certPem);
    const probeLeaf = leaf(rootB, WEB);
    await eventually(async () => ((await presentedBy(probeLeaf)).checkIssued(rootB.cert) ? true : undefined), 'a server leaf issued by B', 20_000, 200);
    // Then A moves to the extra roots: trusted beside B until the overlap ends.
    replaceFile(path.join(serverCaDir, EXTRA_ROOTS_FILE), rootA.certPem);
    await expect.poll(async () => (await presentedBy(leaf(rootA, WEB))).checkIssued(rootB.cert), { timeout: 20_000 }).toBe(true);
    const s = await certsOf(server);
    expect(s.trust_roots).toBe(2);
    await moreRequests(load, 500);
    expect(load.stats.failures).toEqual([]);
  });

  it('the overlap ends: both trust B only, traffic still flows, and an A leaf is refused', async () => {
    rmSync(path.join(serverCaDir, EXTRA_ROOTS_FILE));
    replaceFile(clientFiles.trustBundle, rootB.certPem);
    await eventually(
      async () => {
        const [c, s] = await Promise.all([certsOf(client), certsOf(server)]);
        return c.trust_roots === 1 && s.trust_roots === 1 ? true : undefined;
      },
      'both sides trust root B only',
      20_000,
      200,
    );
    await moreRequests(load, 500);
    const stats = await stopWithoutFailures(load);
    expect(stats.ok).toBeGreaterThanOrEqual(2000);

    // The server now refuses a client holding a leaf from the old root, at the handshake.
    const oldLeaf = leaf(rootA, WEB);
    const refused = await handshakeOnly(server.port('inbound'), { ca: rootB.certPem, cert: oldLeaf.certPem, key: oldLeaf.keyPem }, 2000);
    expect(refused.outcome).toBe('closed');
    const stillOk = await presentedBy(leaf(rootB, WEB));
    expect(stillOk.checkIssued(rootB.cert)).toBe(true);

    const [c, s] = await Promise.all([certsOf(client), certsOf(server)]);
    expect(c.last_error).toBeNull();
    expect(s.last_error).toBeNull();
    expect(c.rotations).toBeGreaterThanOrEqual(2); // the B leaf, then the B-only bundle
    expect(s.rotations).toBeGreaterThanOrEqual(2);
  });
});

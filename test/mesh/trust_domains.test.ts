// Per-trust-domain roots end to end (SPIFFE bundle semantics), with real sidecars: our CA vouches
// only for cluster.local; tls.federation adds partner.example (and, for the pattern test,
// cluster.local.evil), each root only for its own trust domain. A root of one trust domain cannot
// vouch for an identity in another — refused at the handshake inbound (counted), 502
// upstream_identity_mismatch outbound — and `spiffe://cluster.local/*` never matches
// cluster.local.evil.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  API,
  caSource,
  certsOf,
  clientSideConfig,
  closeAll,
  eventually,
  forgedLeaf,
  get,
  handshakeOnly,
  leaf,
  newCa,
  PARTNER,
  partnerSpiffe,
  replaceFile,
  serverSideConfig,
  startApp,
  startProbe,
  startSidecar,
  statusPresenting,
  tempDir,
  WEB,
  type Sidecar,
  type Upstream as App,
} from '../helpers/sidecar.js';

const EVIL = 'cluster.local.evil';
const PARTNER_CLIENT = partnerSpiffe('client');
const PARTNER_API = partnerSpiffe('api');

const ours = await newCa();
const partner = await newCa(PARTNER);
const evil = await newCa(EVIL);
/** Our sidecar's federation: each foreign root in a bundle file of its own. */
const bundles = tempDir();
const federation = [
  { trust_domain: PARTNER, bundle: path.join(bundles, 'partner.pem') },
  { trust_domain: EVIL, bundle: path.join(bundles, 'evil.pem') },
];
replaceFile(federation[0]!.bundle, partner.certPem);
replaceFile(federation[1]!.bundle, evil.certPem);
let app: App;
let server: Sidecar;

beforeAll(async () => {
  app = await startApp();
  server = await startSidecar(
    serverSideConfig({
      tls: { ...caSource(ours), federation },
      app: app.address,
      authorization: [{ from: ['spiffe://cluster.local/*'] }, { from: [`spiffe://${PARTNER}/ns/*/sa/client`], paths: ['/partner/*'] }],
    }),
  );
});
afterAll(closeAll);

function statusAs(l: { certPem: string; keyPem: string }, path: string): Promise<number | string> {
  return statusPresenting(server.port('inbound'), ours.certPem, l, path);
}

async function refusedHandshakes(): Promise<number> {
  const a = await adminCall(server, 'GET', '/stats');
  return (a.json.security as Array<{ listener: string; tls_handshake_failures: number }>).find((s) => s.listener === 'inbound')?.tls_handshake_failures ?? 0;
}

describe('inbound: each root vouches only for its own trust domain', () => {
  it('GET /certs lists the trust domains we accept', async () => {
    expect(((await certsOf(server)) as unknown as { trust_domains: string[] }).trust_domains).toEqual(['cluster.local', PARTNER, EVIL]);
  });

  it('our workloads (our root) and the federated partner (its root) are served', async () => {
    expect(await statusAs(leaf(ours, WEB), '/v1/ours')).toBe(200);
    expect(await statusAs(leaf(partner, PARTNER_CLIENT), '/partner/x')).toBe(200);
    expect(await statusAs(leaf(partner, PARTNER_CLIENT), '/v1/not-for-partners')).toBe(403);
  });

  it('a partner-root (or evil-root) leaf claiming a cluster.local identity is refused at the handshake, and counted', async () => {
    const before = app.requests.length;
    const failures = await refusedHandshakes();
    for (const forger of [partner, evil]) {
      const forged = forgedLeaf(forger, WEB);
      const bare = await handshakeOnly(server.port('inbound'), { ca: ours.certPem, cert: forged.certPem, key: forged.keyPem }, 2000);
      expect(bare.outcome).toBe('closed');
      expect(await statusAs(forged, '/v1/forged')).toMatch(/^refused/);
    }
    // (and our own root cannot vouch for a partner identity either)
    expect(await statusAs(forgedLeaf(ours, PARTNER_CLIENT), '/partner/x')).toMatch(/^refused/);
    expect(app.requests.length).toBe(before);
    await eventually(async () => ((await refusedHandshakes()) >= failures + 5 ? true : undefined), 'five refusals counted', 5000, 100);
  });

  it('spiffe://cluster.local/* does not match a peer of trust domain cluster.local.evil (handshake fine, policy says no)', async () => {
    expect(await statusAs(leaf(evil, `spiffe://${EVIL}/ns/default/sa/web`), '/v1/evil')).toBe(403);
  });
});

describe('outbound: the server’s root must vouch for the server ID’s trust domain', () => {
  it('a partner server from the partner root → 200; a partner-root server claiming our API identity → 502', async () => {
    const honest = await startProbe(leaf(partner, PARTNER_API), ours.certPem);
    const forger = await startProbe(forgedLeaf(partner, API), ours.certPem);
    const cfg = clientSideConfig({
      tls: { ...caSource(ours), federation: [federation[0]!] },
      upstream: forger.address, // cluster `api` expects API: the forger claims it
      extra: [{ pathPrefix: '/partner/', name: 'partner-api', address: honest.address, identity: PARTNER_API }],
      workers: 1,
    });
    const client = await startSidecar(cfg);
    const ok = await get(client.port('outbound'), '/partner/hello');
    expect([ok.status, ok.body]).toEqual([200, 'probe']);
    const bad = await get(client.port('outbound'), '/v1/hello');
    expect(bad.status).toBe(502);
    expect(bad.headers['x-outrigger-error']).toBe('upstream_identity_mismatch');
    expect(forger.requests).toEqual([]); // not one request reached it
  });
});

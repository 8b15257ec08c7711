// The audit's impersonation attack (issue 11; /tmp/audit/attack2.mjs, attack3.mjs) against real
// processes: `outrigger ca serve` with a token for the whole trust domain, and sidecars in
// signer mode.
//   1. The broad token asks the signer for its own identity: 403, and the tokens file's broad
//      pattern was pointed out in the signer's log when it loaded.
//   2. A fake signer that does hold a genuine certificate for the signer identity (issued by the
//      test from the CA, standing in for one obtained some other way) answers with a leaf and a
//      trust bundle of another CA: a sidecar refuses to start on it; a running sidecar whose
//      signer address now leads to it keeps its certificate and its roots and reports why.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signLeaf } from '../../src/tls/ca.js';
import { parseCsr } from '../../src/tls/csr.js';
import { requestSignature } from '../../src/tls/signer_client.js';
import {
  API,
  certsOf,
  closeAll,
  csrFor,
  eventually,
  newCa,
  runUntilExit,
  serverSideConfig,
  SHORT_TTL_HOURS,
  signerSource,
  startApp,
  startFakeSigner,
  startSignerSidecar,
  startSignerWithTokens,
  tempDir,
  WEB,
  writeTokenFile,
  type SignerProcess,
  type Upstream as App,
} from '../helpers/sidecar.js';

const BROAD_TOKEN = 'broad-token-0123456789abcdef';
const API_TOKEN = 'api-token-0123456789abcdef';

const ca = await newCa();
/** Another CA of the same trust domain: what the fake signer hands out. */
const evil = await newCa();
let signer: SignerProcess;
let app: App;

beforeAll(async () => {
  ({ signer } = await startSignerWithTokens(ca, [
    { token: BROAD_TOKEN, identities: ['spiffe://cluster.local/*'] },
    { token: API_TOKEN, identities: [API] },
  ]));
  app = await startApp();
});
afterAll(closeAll);

/** attack3's fake signer: the signer's identity, every CSR answered from the other CA. */
function startEvilSigner(port?: number): Promise<{ address: string; captured: string[] }> {
  return startFakeSigner({
    ca,
    identity: signer.identity,
    port,
    answer: (csrPem) => {
      const csr = parseCsr(csrPem);
      const leaf = signLeaf(evil, { identity: csr.identity, publicKey: csr.publicKey, ttlHours: 1 });
      return { certificate: leaf.certPem, trust_bundle: evil.trustBundlePem, identity: leaf.identity, serial: leaf.serial };
    },
  });
}

describe('posing as the signer (the audit attack, rerun)', () => {
  it('the signer: the broad token does not get the signer identity; the broad pattern was warned about', async () => {
    const ep = {
      address: signer.address,
      caBundlePath: path.join(ca.dir, 'ca.pem'),
      signerIdentity: signer.identity,
      tokenFile: writeTokenFile(path.join(tempDir(), 'broad.token'), BROAD_TOKEN),
    };
    const stolen = requestSignature(ep, csrFor(signer.identity).csrPem, 1, { kind: 'token' });
    await expect(stolen).rejects.toMatchObject({ kind: 'refused', status: 403 });
    await expect(stolen).rejects.toThrow(/reserved/);
    // the same token still gets an ordinary workload identity
    expect((await requestSignature(ep, csrFor(WEB).csrPem, 1, { kind: 'token' })).identity).toBe(WEB);
    const logs = signer.logs();
    expect(logs.find((l) => l.msg === 'token pattern covers reserved identities')).toMatchObject({ level: 'warn', pattern: 'spiffe://cluster.local/*' });
    expect(logs.some((l) => l.msg === 'refused' && l['status'] === 403 && String(l['reason']).includes(signer.identity))).toBe(true);
    expect(logs.some((l) => l.msg === 'signed' && l['identity'] === signer.identity)).toBe(false);
  });

  it('a sidecar does not start on a fake signer’s answer (leaf and trust bundle of another CA)', async () => {
    const fake = await startEvilSigner();
    const dir = tempDir();
    const source = signerSource({ ...signer, address: fake.address }, ca, writeTokenFile(path.join(dir, 'api.token'), API_TOKEN));
    const r = await runUntilExit(serverSideConfig({ tls: source, app: app.address }));
    expect(fake.captured).toEqual([`Bearer ${API_TOKEN}`]); // it reached the fake (which held a genuine signer certificate)
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/not in tls\.signer\.ca_bundle|does not chain to tls\.signer\.ca_bundle/);
  });

  it('a running sidecar keeps its certificate and roots when the fake answers its renewal', async () => {
    const sc = await startSignerSidecar({ signer, ca, token: API_TOKEN, ttlHours: SHORT_TTL_HOURS }, (tls) => serverSideConfig({ tls, app: app.address }));
    const held = await certsOf(sc);
    expect([held.source, held.identity, held.trust_roots]).toEqual(['signer', API, 1]);
    // The signer's address now leads to the fake.
    const port = signer.port;
    await signer.stop();
    const fake = await startEvilSigner(port);
    const during = await eventually(
      async () => {
        const c = await certsOf(sc);
        return c.last_error !== null && /ca_bundle/.test(c.last_error) ? c : undefined;
      },
      'a refused renewal',
      30_000,
      200,
    );
    expect(fake.captured.length).toBeGreaterThan(0);
    expect(during.serial).toBe(held.serial);
    expect(during.trust_roots).toBe(1);
    expect(during.rotations).toBe(held.rotations);
  });
});

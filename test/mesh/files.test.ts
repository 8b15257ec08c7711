// Files mode: a sidecar running on `tls: {trust_bundle, cert, key}` re-reads them when they are
// replaced on disk, without a restart; new upstream connections present the new certificate.
// Bad replacements (unreadable, wrong identity, not issued by the bundle) are refused and the
// current certificate stays in force. The upstream is a TLS probe recording client certificates.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certsOf,
  clientSideConfig,
  closeAll,
  eventually,
  filesSource,
  get,
  leaf,
  newCa,
  replaceFile,
  serialOf,
  spiffe,
  startProbe,
  startSidecar,
  tempDir,
  WEB,
  writeTlsFiles,
  type Sidecar,
  type Upstream as Probe,
} from '../helpers/sidecar.js';

const PROBE_ID = spiffe('probe');

const ca = await newCa();
const first = leaf(ca, WEB);
const firstSerial = serialOf(first.certPem);
/** The sidecar's trust bundle, certificate and key, replaced on disk by the tests. */
const files = writeTlsFiles(tempDir(), ca.certPem, first);
let probe: Probe;
let sc: Sidecar;
let out: number;

beforeAll(async () => {
  probe = await startProbe(leaf(ca, PROBE_ID), ca.certPem);
  sc = await startSidecar(clientSideConfig({ tls: filesSource(files), upstream: probe.address, expect: PROBE_ID, workers: 1 }));
  out = sc.port('outbound');
});
afterAll(closeAll);

async function probeOk(): Promise<void> {
  const r = await get(out, '/x');
  if (r.status !== 200 || r.body !== 'probe') throw new Error(`GET /x → ${r.status} ${r.body}`);
}

/** Sends requests until the probe sees `serial` on the connection a request came on. */
async function untilProbeSees(serial: string): Promise<void> {
  await eventually(
    async () => {
      await probeOk();
      return probe.requests.map((r) => r.peerSerial).at(-1) === serial ? true : undefined;
    },
    `the upstream sees client certificate ${serial}`,
    10_000,
    20,
  );
}

describe('files mode: certificate files replaced on disk', () => {
  it('serves with the first certificate', async () => {
    await probeOk();
    expect(probe.requests.map((r) => r.peerSerial)).toEqual([firstSerial]);
    const c = await certsOf(sc);
    expect([c.source, c.identity, c.serial, c.rotations, c.last_error, c.next_rotation]).toEqual(['files', WEB, firstSerial, 0, null, null]);
  });

  it('picks up a replaced cert and key without a restart; new connections present it', async () => {
    const pid = sc.pid;
    const next = leaf(ca, WEB);
    replaceFile(files.key, next.keyPem);
    replaceFile(files.cert, next.certPem);
    const serial = serialOf(next.certPem);
    await eventually(async () => ((await certsOf(sc)).serial === serial ? true : undefined), 'the new serial in GET /certs', 15_000);
    const c = await certsOf(sc);
    expect(c.rotations).toBe(1);
    expect(c.last_error).toBeNull();
    expect(c.not_after).toBe(next.notAfter.toISOString());
    await untilProbeSees(serial);
    expect(sc.pid).toBe(pid);
    expect(sc.exited()).toBe(false);
  });

  it('refuses a replacement it cannot use, keeps the current certificate, and recovers on a good one', async () => {
    const current = (await certsOf(sc)).serial;
    const bad: Array<[string, RegExp, () => void]> = [
      [
        'an unreadable certificate',
        /^cert: unreadable certificate/,
        () => replaceFile(files.cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n'),
      ],
      [
        'a certificate for another identity than node.identity',
        /identity is spiffe:\/\/cluster\.local\/ns\/default\/sa\/other/,
        () => {
          const other = leaf(ca, spiffe('other'));
          replaceFile(files.key, other.keyPem);
          replaceFile(files.cert, other.certPem);
        },
      ],
    ];
    for (const [what, error, write] of bad) {
      write();
      await eventually(async () => (error.test((await certsOf(sc)).last_error ?? '') ? true : undefined), `an error for ${what}`, 15_000);
      const c = await certsOf(sc);
      expect([what, c.serial, c.rotations]).toEqual([what, current, 1]);
      await probeOk(); // traffic carries on with the current certificate
    }
    // A leaf from another CA, not in the trust bundle.
    const otherCa = await newCa();
    const foreign = leaf(otherCa, WEB);
    replaceFile(files.key, foreign.keyPem);
    replaceFile(files.cert, foreign.certPem);
    await eventually(async () => ((await certsOf(sc)).last_error?.includes('not issued') ? true : undefined), 'an error for a foreign leaf', 15_000);
    expect((await certsOf(sc)).serial).toBe(current);
    await probeOk();

    const good = leaf(ca, WEB);
    replaceFile(files.key, good.keyPem);
    replaceFile(files.cert, good.certPem);
    await eventually(async () => ((await certsOf(sc)).serial === serialOf(good.certPem) ? true : undefined), 'the good serial', 15_000);
    expect((await certsOf(sc)).last_error).toBeNull();
    await untilProbeSees(serialOf(good.certPem));
  });

  it('picks up a replaced trust bundle (a second root added)', async () => {
    const otherCa = await newCa();
    replaceFile(files.trustBundle, ca.certPem + otherCa.certPem);
    await eventually(async () => ((await certsOf(sc)).trust_roots === 2 ? true : undefined), 'two trusted roots', 15_000);
    await probeOk();
  });
});

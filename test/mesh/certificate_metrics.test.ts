// Certificate outages in /metrics and /ready (issue 11 audit). A signer-mode sidecar with 12.6 s
// leaves whose signer is stopped right after it started: every renewal fails, so
//   - `outrigger_certificate_renewal_failures_total{source="signer"}` starts at 0 and only grows,
//   - `outrigger_certificate_last_renewal_timestamp_seconds` stays at the last success,
//   - /ready carries a non-empty warning as the end of the certificate approaches (and past it).
// A files-mode sidecar whose certificate file is replaced by a broken one counts the rejected hot
// swap in `outrigger_certificate_reload_rejected_total{source="files"}` (= /certs errors_total).

import { afterAll, describe, expect, it } from 'vitest';
import {
  API,
  certsOf,
  closeAll,
  eventually,
  filesSource,
  leaf,
  newCa,
  parsePrometheus,
  replaceFile,
  sampleValue,
  serverSideConfig,
  SHORT_TTL_HOURS,
  startApp,
  startSidecar,
  startSignerSidecar,
  startSignerWithTokens,
  tempDir,
  writeTlsFiles,
  type Sidecar,
} from '../helpers/sidecar.js';

const API_TOKEN = 'api-token-metrics-0123456789';

afterAll(closeAll);

async function metrics(sc: Sidecar): Promise<ReturnType<typeof parsePrometheus>> {
  return parsePrometheus(await (await fetch(`${sc.admin}/metrics`)).text());
}

describe('certificate outages are visible', () => {
  it('signer stopped: the renewal failure counter grows, the last renewal time stays, /ready warns as expiry approaches', async () => {
    const ca = await newCa();
    const { signer } = await startSignerWithTokens(ca, [{ token: API_TOKEN, identities: [API] }]);
    const app = await startApp();
    // 12.6 s leaves: a renewal due every ~6.3 s, the warning from ~9.5 s.
    const sc = await startSignerSidecar({ signer, ca, token: API_TOKEN, ttlHours: SHORT_TTL_HOURS }, (tls) => serverSideConfig({ tls, app: app.address }));
    await signer.stop();
    const first = await certsOf(sc);
    const m0 = await metrics(sc);
    const lastRenewal = sampleValue(m0, 'outrigger_certificate_last_renewal_timestamp_seconds', { source: 'signer' });
    expect(lastRenewal).toBe(Math.floor(Date.parse(first.last_success as string) / 1000));
    const failures0 = sampleValue(m0, 'outrigger_certificate_renewal_failures_total', { source: 'signer' });
    expect(failures0).toBeDefined(); // declared from the start, before any failure

    // /ready: a non-empty warning once the end nears while renewals fail (200 until expiry, 503 after).
    const seen = await eventually(
      async () => {
        const r = await fetch(`${sc.admin}/ready`);
        const body = (await r.json()) as { warnings: string[] };
        return body.warnings.length > 0 ? { status: r.status, warnings: body.warnings } : undefined;
      },
      'a /ready warning',
      40_000,
      100,
    );
    expect(seen.warnings[0]).toMatch(seen.status === 200 ? /expires in \d+ s and renewal is failing: .*unreachable/ : /expired at .*unreachable/);

    // The counter has grown, and grows further with each retry; the last renewal time stays.
    const failures1 = sampleValue(await metrics(sc), 'outrigger_certificate_renewal_failures_total', { source: 'signer' }) as number;
    expect(failures1).toBeGreaterThan(failures0 as number);
    const certs1 = await certsOf(sc);
    expect(certs1.errors_total).toBeGreaterThanOrEqual(failures1);
    const m2 = await eventually(
      async () => {
        const m = await metrics(sc);
        return (sampleValue(m, 'outrigger_certificate_renewal_failures_total', { source: 'signer' }) as number) > failures1 ? m : undefined;
      },
      'another failed renewal counted',
      60_000,
      200,
    );
    expect(sampleValue(m2, 'outrigger_certificate_last_renewal_timestamp_seconds', { source: 'signer' })).toBe(lastRenewal);
    expect((await certsOf(sc)).serial).toBe(first.serial);
  });

  it('files mode: a rejected hot swap is counted in /metrics like errors_total in /certs', async () => {
    const ca = await newCa();
    const files = writeTlsFiles(tempDir(), ca.certPem, leaf(ca, API));
    const app = await startApp();
    const sc = await startSidecar(serverSideConfig({ tls: filesSource(files), app: app.address }));
    const before = await metrics(sc);
    expect(sampleValue(before, 'outrigger_certificate_reload_rejected_total', { source: 'files' })).toBe(0);
    expect(sampleValue(before, 'outrigger_certificate_last_renewal_timestamp_seconds', { source: 'files' })).toBeGreaterThan(0);
    replaceFile(files.cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const certs = await eventually(
      async () => {
        const c = await certsOf(sc);
        return c.errors_total > 0 ? c : undefined;
      },
      'a rejected hot swap',
      20_000,
    );
    const rejected = sampleValue(await metrics(sc), 'outrigger_certificate_reload_rejected_total', { source: 'files' }) as number;
    expect(rejected).toBeGreaterThanOrEqual(certs.errors_total);
    expect(rejected).toBeGreaterThan(0);
    expect(sampleValue(await metrics(sc), 'outrigger_certificate_renewal_failures_total', { source: 'files' })).toBeUndefined();
  });
});

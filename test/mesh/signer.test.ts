// Sidecars that never hold the root key: `outrigger ca serve` (a real child process) signs CSRs;
// two sidecars in signer mode (`tls: {signer: ...}`) bootstrap with their tokens, talk mTLS,
// renew with their certificates, keep serving through a signer outage and renew when it is
// back. Neither their files nor their memory (main thread, data-plane workers, key pool — all of
// /proc/PID/mem) contain the root key; a sidecar on the embedded CA (tls.ca) is the control that
// shows the scan finds it when it is there.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  certsOf,
  closeAll,
  eventually,
  filesUnder,
  get,
  moreRequests,
  scanProcessMemory,
  serverSideConfig,
  SHORT_TTL_HOURS,
  startLoad,
  startSidecar,
  startSignerPair,
  startSignerProcess,
  stopWithoutFailures,
  WEB,
  type LogEntry,
  type Sidecar,
  type SignerProcess,
  type Upstream as App,
} from '../helpers/sidecar.js';

let ca: Ca;
let tokensFile: string;
let signer: SignerProcess;
let app: App;
let server: Sidecar;
let client: Sidecar;

beforeAll(async () => {
  ({ ca, signer, tokensFile, app, server, client } = await startSignerPair({ ttlHours: SHORT_TTL_HOURS }));
});
afterAll(closeAll);

/** Needles for the root key: its PEM body lines and its raw private scalar (both byte orders). */
function rootKeyNeedles(): Buffer[] {
  const pem = ca.key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const lines = pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  const d = Buffer.from(ca.key.export({ format: 'jwk' }).d!, 'base64url');
  return [Buffer.from(lines[0]!), Buffer.from(lines[1]!), d, Buffer.from(d).reverse()];
}

describe('signer mode end to end', () => {
  it('both sidecars got their certificates from the signer and talk mTLS', async () => {
    const [c, s] = await Promise.all([certsOf(client), certsOf(server)]);
    expect([c.source, c.identity, s.source, s.identity]).toEqual(['signer', WEB, 'signer', API]);
    expect((c as unknown as { signer: { address: string } }).signer.address).toBe(signer.address);
    const r = await get(client.port('outbound'), '/v1/hello');
    expect([r.status, r.body]).toEqual([200, 'app GET /v1/hello']);
    // The first certificate of each sidecar was signed on its token (renewals may follow by now).
    const first = new Map<unknown, LogEntry>();
    for (const l of signer.logs()) if (l.msg === 'signed' && !first.has(l['identity'])) first.set(l['identity'], l);
    expect([...first.keys()].sort()).toEqual([API, WEB]);
    expect([...first.values()].every((l) => String(l['by']).startsWith('token'))).toBe(true);
  });

  it('renewals use the current certificate, not the token', async () => {
    const before = (await certsOf(client)).rotations;
    await eventually(async () => ((await certsOf(client)).rotations > before ? true : undefined), 'a renewal', 20_000, 200);
    const renewals = signer
      .logs()
      .filter((l) => l['msg'] === 'signed' && l['identity'] === WEB)
      .slice(1);
    expect(renewals.length).toBeGreaterThan(0);
    expect(renewals.every((l) => l['by'] === 'certificate')).toBe(true);
  });

  it('no file of either sidecar (config dir, state dir, token) contains the root key', () => {
    const needles = rootKeyNeedles();
    for (const sc of [client, server]) {
      const files = filesUnder(sc.dir);
      expect(files.some((f) => f.file.endsWith('admin.token'))).toBe(true); // the state dir is in there
      for (const f of files) for (const n of needles) expect(f.text.includes(n), `${f.file} holds root key material`).toBe(false);
    }
  });

  it('no sidecar process memory holds the root key (the tls.ca control sidecar does)', async () => {
    const needles = rootKeyNeedles();
    // Control first: a sidecar on the embedded CA loads the root key to issue its leaf.
    const control = await startSidecar(serverSideConfig({ tls: caSource(ca), app: app.address, workers: 1 }));
    const seen = scanProcessMemory(control.pid, needles);
    await control.stop();
    expect(seen.bytes).toBeGreaterThan(10_000_000);
    expect(seen.found.some(Boolean), 'the scan does not even find the key where it is loaded').toBe(true);
    for (const sc of [client, server]) {
      const r = scanProcessMemory(sc.pid, needles);
      expect(r.bytes).toBeGreaterThan(10_000_000);
      expect(r.found, `sidecar ${sc.pid} memory holds root key material`).toEqual([false, false, false, false]);
    }
  });

  it('keeps serving through a signer outage, with the failure in /certs; renews once the signer is back', async () => {
    const load = startLoad(client.port('outbound'), { connections: 4 });
    await moreRequests(load, 100);
    const port = signer.port;
    await signer.stop();
    const held = await certsOf(client); // read once no renewal can succeed any more
    // Past the next renewal time: renewals fail, the current certificates stay in force.
    const during = await eventually(
      async () => {
        const c = await certsOf(client);
        return c.last_error !== null ? c : undefined;
      },
      'a failed renewal',
      30_000,
      200,
    );
    expect(during.serial).toBe(held.serial);
    expect(during.last_error).toMatch(/unreachable/);
    expect((during as unknown as { errors_total: number }).errors_total).toBeGreaterThan(0);
    // Still ready (the certificate is valid), with the seconds left in /metrics to alert on.
    const ready = await fetch(`${client.admin}/ready`);
    expect(ready.status).toBe(200);
    expect(Array.isArray(((await ready.json()) as { warnings: unknown }).warnings)).toBe(true);
    const metrics = await (await fetch(`${client.admin}/metrics`)).text();
    const left = /^outrigger_certificate_expiry_seconds\{identity="[^"]+"\} (-?\d+)$/m.exec(metrics);
    expect(Number(left?.[1])).toBeGreaterThan(0);
    await moreRequests(load, 200);
    expect(load.stats.failures).toEqual([]);
    // Back on the same address: the next retry renews.
    signer = await startSignerProcess(ca.dir, tokensFile, `127.0.0.1:${port}`);
    await eventually(
      async () => {
        const c = await certsOf(client);
        return c.serial !== held.serial && c.last_error === null ? true : undefined;
      },
      'a renewal after the outage',
      40_000,
      200,
    );
    await moreRequests(load, 100);
    await stopWithoutFailures(load);
  });
});

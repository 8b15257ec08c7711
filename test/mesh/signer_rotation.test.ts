// Rotation under continuous load in signer mode: both sidecars renew 5.4 s leaves from
// `outrigger ca serve` at half their lifetime (CSR + mTLS renewal with the current certificate)
// while thousands of requests flow client → client sidecar → mTLS → server sidecar → app.
// At least three rotations on each side, zero failed requests, and new connections carry the
// new certificates.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  certsOf,
  closeAll,
  endpointCounters,
  leaf,
  moreRequests,
  startLoad,
  startSignerPair,
  stopWithoutFailures,
  watchRotations,
  WEB,
  type Sidecar,
  type SignerProcess,
} from '../helpers/sidecar.js';

/** 5.4 s leaves: a renewal every ~2.7 s. */
const TTL_HOURS = 0.0015;

let ca: Ca;
let signer: SignerProcess;
let server: Sidecar;
let client: Sidecar;

beforeAll(async () => {
  ({ ca, signer, server, client } = await startSignerPair({
    ttlHours: TTL_HOURS,
    client: { workers: 2, pool: { connections_per_worker: 4 } },
  }));
});
afterAll(closeAll);

describe('rotation under continuous load (signer mode, 5.4 s leaves)', () => {
  it('three or more renewals on both sides, zero failed requests', async () => {
    const c0 = await certsOf(client);
    const s0 = await certsOf(server);
    expect([c0.source, s0.source]).toEqual(['signer', 'signer']);
    const before = await endpointCounters(client, 'api');
    const webLeaf = leaf(ca, WEB);
    const direct = { ca: ca.certPem, cert: webLeaf.certPem, key: webLeaf.keyPem };
    const load = startLoad(client.port('outbound'), { connections: 10 });
    const { clientSerials, serverSerials, presented } = await watchRotations(client, server, server.port('inbound'), direct);
    // More load on the newest certificates (a thousand requests in all), then stop.
    await moreRequests(load, 200);
    await expect.poll(() => load.stats.ok, { timeout: 60_000 }).toBeGreaterThanOrEqual(1000);
    const stats = await stopWithoutFailures(load);
    const after = await endpointCounters(client, 'api');
    const [cEnd, sEnd] = await Promise.all([certsOf(client), certsOf(server)]);

    expect(stats.ok).toBeGreaterThanOrEqual(1000);
    expect(cEnd.rotations).toBeGreaterThanOrEqual(3);
    expect(sEnd.rotations).toBeGreaterThanOrEqual(3);
    expect(cEnd.last_error).toBeNull();
    expect(sEnd.last_error).toBeNull();
    expect(clientSerials.length).toBeGreaterThanOrEqual(4);
    expect(serverSerials.length).toBeGreaterThanOrEqual(4);
    // The first leaves have expired: connections made since use the renewed ones.
    expect(Date.now()).toBeGreaterThan(Date.parse(c0.not_after));
    expect(presented.length).toBeGreaterThanOrEqual(3);
    for (const serial of presented) expect(serverSerials).toContain(serial);
    expect(after.connectionsOpened).toBeGreaterThan(before.connectionsOpened); // pooled connections were replaced per rotation
    // Every renewal after the first certificate was authorised by the current certificate.
    const signed = signer.logs().filter((l) => l['msg'] === 'signed');
    expect(signed.filter((l) => String(l['by']).startsWith('token'))).toHaveLength(2);
    expect(signed.filter((l) => l['by'] === 'certificate').length).toBeGreaterThanOrEqual(6);
  });
});

// Certificate rotation under continuous load: both sidecars issue their own leaves from the
// embedded CA with a ~5.4 s lifetime (rotation at 50%, ~2.7 s), while thousands of requests flow
// client → client sidecar → mTLS → server sidecar → app. Across at least three rotations on each
// side not one request fails; new connections carry the new certificates (a TLS probe upstream
// behind the client sidecar records the client certificate serial of every connection, and a
// direct client reads the server certificate the inbound listener presents); pooled connections
// are replaced per rotation, not per request.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  certsOf,
  clientSideConfig,
  closeAll,
  endpointCounters,
  get,
  leaf,
  moreRequests,
  spiffe,
  startLoad,
  startMeshServer,
  startProbe,
  startSidecar,
  stopWithoutFailures,
  watchRotations,
  WEB,
  type Sidecar,
  type Upstream as App,
  type Upstream as Probe,
} from '../helpers/sidecar.js';

/** 5.4 s leaves: a rotation every ~2.7 s. */
const TTL_HOURS = 0.0015;
const POOL_SIZE = 4;
const CLIENT_WORKERS = 2;
const PROBE_ID = spiffe('probe');

let ca: Ca;
let app: App;
let probe: Probe;
let server: Sidecar;
let client: Sidecar;

beforeAll(async () => {
  ({ ca, app, server } = await startMeshServer({ ttlHours: TTL_HOURS, workers: 1 }));
  probe = await startProbe(leaf(ca, PROBE_ID), ca.certPem);
  client = await startSidecar(
    clientSideConfig({
      tls: caSource(ca, TTL_HOURS),
      upstream: `127.0.0.1:${server.port('inbound')}`,
      workers: CLIENT_WORKERS,
      pool: { connections_per_worker: POOL_SIZE },
      extra: [{ pathPrefix: '/probe/', name: 'probe', address: probe.address, identity: PROBE_ID }],
    }),
  );
});
afterAll(closeAll);

describe('rotation under continuous load (ca mode, 5.4 s leaves)', () => {
  it('three or more rotations on both sides, zero failed requests, new connections use the new certificates', async () => {
    const out = client.port('outbound');
    const inbound = server.port('inbound');
    const webLeaf = leaf(ca, WEB);
    const direct = { ca: ca.certPem, cert: webLeaf.certPem, key: webLeaf.keyPem };

    const c0 = await certsOf(client);
    const s0 = await certsOf(server);
    expect([c0.source, c0.identity, s0.source, s0.identity]).toEqual(['ca', WEB, 'ca', API]);
    expect(c0.next_rotation).not.toBeNull();
    const lifetimeMs = Date.parse(c0.not_after) - Date.parse(c0.not_before);
    expect(lifetimeMs).toBeLessThan(2 * 60_000 + 10_000); // backdated 60 s for clock skew + 5.4 s
    const before = await endpointCounters(client, 'api');

    const load = startLoad(out, { connections: 10 });
    // A slow second stream to the probe upstream (its own pooled mTLS connections).
    let probeStop = false;
    const probeFailures: string[] = [];
    let probeOk = 0;
    const probeLoop = (async () => {
      for (let i = 0; !probeStop; i++) {
        const r = await get(out, `/probe/${i}`).catch((e: Error) => ({ status: 0, headers: {}, body: e.message }));
        if (r.status === 200 && r.body === 'probe') probeOk++;
        else probeFailures.push(`${r.status} ${String((r.headers as Record<string, string | string[] | undefined>)['x-outrigger-error'] ?? '')} ${r.body}`);
        await moreRequests(load, 50); // paced by the main load: a slow second stream
      }
    })();

    // Watch both sides rotate under load (serials in /certs, and the certificate the inbound
    // listener presents) while thousands of requests go through; stop right after.
    const watching = watchRotations(client, server, inbound, direct);
    watching.catch(() => undefined); // (its failure surfaces at the await below)
    await expect.poll(() => load.stats.ok, { timeout: 60_000 }).toBeGreaterThanOrEqual(2000);
    await expect.poll(() => probeOk, { timeout: 30_000 }).toBeGreaterThan(20);
    const { clientSerials, serverSerials, presented } = await watching;
    probeStop = true;
    await probeLoop;
    const stats = await stopWithoutFailures(load);
    const after = await endpointCounters(client, 'api');
    const cEnd = await certsOf(client);
    const sEnd = await certsOf(server);
    // (A rotation in the moment between the watch's last look and the stop.)
    if (clientSerials.at(-1) !== cEnd.serial) clientSerials.push(cEnd.serial);
    if (serverSerials.at(-1) !== sEnd.serial) serverSerials.push(sEnd.serial);

    // Zero failed requests, thousands of them, across the rotations.
    expect(stats.ok).toBeGreaterThanOrEqual(2000);
    expect(app.requests.length).toBeGreaterThanOrEqual(stats.ok); // (it also served the direct requests)
    expect(probeFailures).toEqual([]);
    expect(probeOk).toBeGreaterThan(20);

    // Both sides rotated at least three times; every rotation is a new serial.
    expect(cEnd.rotations).toBeGreaterThanOrEqual(3);
    expect(sEnd.rotations).toBeGreaterThanOrEqual(3);
    expect(cEnd.last_error).toBeNull();
    expect(sEnd.last_error).toBeNull();
    expect(new Set(clientSerials).size).toBe(clientSerials.length);
    expect(clientSerials.length).toBeGreaterThanOrEqual(4);
    expect(serverSerials.length).toBeGreaterThanOrEqual(4);
    // The first leaf has expired by now: connections made since could not have used it.
    expect(Date.now()).toBeGreaterThan(Date.parse(c0.not_after));

    // Client side: the probe upstream saw the new client certificates on new connections. Every
    // serial it saw is one the client sidecar had, and every serial the client had before the
    // newest one was used on some connection.
    const probeSerials = new Set(probe.connectionSerials);
    expect(probe.refused).toBe(0);
    for (const serial of probeSerials) expect(clientSerials).toContain(serial);
    for (const serial of clientSerials.slice(0, -1)) expect(probeSerials).toContain(serial);
    expect(probeSerials.size).toBeGreaterThanOrEqual(3);

    // Server side: new handshakes on the inbound listener got its new certificates.
    expect(new Set(presented).size).toBeGreaterThanOrEqual(3);
    for (const serial of presented) expect(serverSerials).toContain(serial);

    // Pooled connections were replaced once per rotation, not per request: at most
    // pool size × workers connections per client certificate, each a TLS handshake or resumption.
    const opened = after.connectionsOpened - before.connectionsOpened;
    const tlsNew = after.tlsHandshakes + after.tlsResumed - (before.tlsHandshakes + before.tlsResumed);
    expect(tlsNew).toBe(opened);
    expect(after.connectionsOpened).toBeLessThanOrEqual((cEnd.rotations + 1) * POOL_SIZE * CLIENT_WORKERS);
    expect(after.tlsHandshakes - before.tlsHandshakes).toBeGreaterThanOrEqual(3); // one full handshake per new client certificate at least
    expect(after.connectionsOpen).toBeLessThanOrEqual(POOL_SIZE * CLIENT_WORKERS);
  });
});

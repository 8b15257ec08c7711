// Session resumption cannot skip client verification (DESIGN.md §8), checked piece by piece on
// real node:tls servers: session secrets are bound to a listener (name, mode, trust bundle), and
// inboundPeer refuses on every connection what a resumed session would otherwise let through —
// no client certificate at all, or one that has expired since the session was made.

import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import { inboundPeer, serverTlsOptions, type InboundPeer, type ServerTlsParams } from '../../src/tls/contexts.js';
import type { TlsMaterial } from '../../src/tls/material.js';
import { leafMaterial, makeCa, rawMaterial, removeTempDirs } from './helpers.js';

const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/api';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/web';
const SEED = Buffer.alloc(32, 3);

let ca: Ca;
let serverMaterial: TlsMaterial;

beforeAll(async () => {
  ca = await makeCa('cluster.local');
  serverMaterial = leafMaterial(ca, { identity: SERVER_ID });
});
afterAll(removeTempDirs);

interface Srv {
  readonly port: number;
  /** inboundPeer's verdict per accepted connection, and whether it was resumed. */
  readonly verdicts: Array<{ peer: InboundPeer; resumed: boolean }>;
  close(): Promise<void>;
}

/** A server that, like an outrigger mtls listener, runs inboundPeer in 'secureConnection' (when `check` and it requests certificates). */
async function serve(opts: tls.TlsOptions, check: boolean, nowMs?: () => number): Promise<Srv> {
  const verdicts: Srv['verdicts'] = [];
  const server = tls.createServer(opts);
  server.on('secureConnection', (s: tls.TLSSocket) => {
    if (opts.requestCert !== true) {
      s.on('data', () => s.write('hi\n'));
      return;
    }
    const peer = inboundPeer(s, serverMaterial, nowMs?.());
    verdicts.push({ peer, resumed: s.isSessionReused() });
    if (check && !peer.ok) {
      s.destroy();
      return;
    }
    s.on('data', () => s.write('hi\n'));
    s.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    verdicts,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

type Outcome = { ok: true; resumed: boolean; session: Buffer | undefined } | { ok: false };

/** Connect, send a line, wait for the answer; keep the session (ticket) the server sent. */
function talk(port: number, o: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    let session: Buffer | undefined;
    let done = false;
    const finish = (r: Outcome): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(r);
    };
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.trustBundlePem, checkServerIdentity: () => undefined, ...o });
    socket.on('session', (s: Buffer) => (session = s));
    socket.on('secureConnect', () => socket.write('ping\n'));
    socket.on('data', () => setImmediate(() => finish({ ok: true, resumed: socket.isSessionReused(), session: session ?? socket.getSession() })));
    socket.on('error', () => finish({ ok: false }));
    socket.on('close', () => finish({ ok: false }));
  });
}

const params = (p: ServerTlsParams): ServerTlsParams => ({ ticketKeySeed: SEED, ...p });

describe('session secrets are bound to a listener', () => {
  it('ticket keys and session-id context differ by listener name, mode and trust bundle; threads of one listener agree', async () => {
    const base = serverTlsOptions(serverMaterial, params({ listener: 'inbound', mode: 'mtls' }));
    const same = serverTlsOptions({ ...serverMaterial }, params({ listener: 'inbound', mode: 'mtls' }));
    expect(same.ticketKeys).toEqual(base.ticketKeys);
    expect(same.sessionIdContext).toBe(base.sessionIdContext);
    const other = await makeCa('cluster.local');
    for (const variant of [
      serverTlsOptions(serverMaterial, params({ listener: 'public', mode: 'mtls' })),
      serverTlsOptions(serverMaterial, params({ listener: 'inbound', mode: 'tls' })),
      serverTlsOptions({ ...serverMaterial, trustBundlePem: ca.trustBundlePem + other.trustBundlePem }, params({ listener: 'inbound', mode: 'mtls' })),
      serverTlsOptions(serverMaterial, { listener: 'inbound', mode: 'mtls', ticketKeySeed: Buffer.alloc(32, 4) }),
    ]) {
      expect(variant.ticketKeys).not.toEqual(base.ticketKeys);
      expect(variant.sessionIdContext).not.toBe(base.sessionIdContext);
    }
    expect(base.sessionIdContext).toHaveLength(32);
    expect(base.requestCert).toBe(true);
    expect(serverTlsOptions(serverMaterial, params({ mode: 'tls' })).requestCert).toBe(false);
  });

  it('a ticket from a tls-mode server does not resume on an mtls-mode one: a full handshake, which needs a certificate', async () => {
    const open = await serve(serverTlsOptions(serverMaterial, params({ listener: 'public', mode: 'tls' })), true);
    const strict = await serve(serverTlsOptions(serverMaterial, params({ listener: 'inbound', mode: 'mtls' })), true);
    try {
      const first = await talk(open.port, {});
      expect(first.ok).toBe(true);
      if (!first.ok) return;
      expect((await talk(open.port, { session: first.session })).ok).toBe(true);
      expect(await talk(strict.port, { session: first.session })).toEqual({ ok: false });
      expect(strict.verdicts).toEqual([]); // refused by OpenSSL in the full handshake, before 'secureConnection'
    } finally {
      await Promise.all([open.close(), strict.close()]);
    }
  });
});

describe('inboundPeer: the per-connection check a resumed session cannot skip', () => {
  it('refuses a session resumed without a client certificate even when the session secrets are shared', async () => {
    // The old configuration: two listeners sharing ticket keys and the session-id context.
    const shared = { ticketKeys: Buffer.alloc(48, 9), sessionIdContext: 'shared-by-mistake' };
    const tlsOpts = { ...serverTlsOptions(serverMaterial, params({ mode: 'tls' })), ...shared };
    const mtlsOpts = { ...serverTlsOptions(serverMaterial, params({ mode: 'mtls' })), ...shared };
    const open = await serve(tlsOpts, true);
    const unchecked = await serve(mtlsOpts, false);
    const checked = await serve(mtlsOpts, true);
    try {
      const first = await talk(open.port, {});
      expect(first.ok).toBe(true);
      if (!first.ok) return;
      // Without the check, node accepts the resumed session: no certificate, yet "authorized".
      const bypass = await talk(unchecked.port, { session: first.session });
      expect(bypass).toMatchObject({ ok: true, resumed: true });
      expect(unchecked.verdicts.at(-1)).toEqual({ peer: { ok: false, reason: 'CERTIFICATE_REQUIRED' }, resumed: true });
      // With it, the connection is closed before a byte is read.
      expect(await talk(checked.port, { session: first.session })).toEqual({ ok: false });
      expect(checked.verdicts.at(-1)).toEqual({ peer: { ok: false, reason: 'CERTIFICATE_REQUIRED' }, resumed: true });
    } finally {
      await Promise.all([open.close(), unchecked.close(), checked.close()]);
    }
  });

  it('refuses a resumed session once the client certificate has expired; accepts it before', async () => {
    const client = leafMaterial(ca, { identity: CLIENT_ID, ttlHours: 1 });
    let clockMs = Date.now();
    const srv = await serve(serverTlsOptions(serverMaterial, params({ listener: 'inbound' })), true, () => clockMs);
    try {
      const creds = { cert: client.certPem, key: client.keyPem };
      const first = await talk(srv.port, creds);
      expect(first.ok).toBe(true);
      if (!first.ok) return;
      expect(srv.verdicts.at(-1)).toEqual({ peer: { ok: true, identity: CLIENT_ID }, resumed: false });
      expect(await talk(srv.port, { ...creds, session: first.session })).toMatchObject({ ok: true, resumed: true });
      expect(srv.verdicts.at(-1)).toEqual({ peer: { ok: true, identity: CLIENT_ID }, resumed: true });
      clockMs = client.notAfter.getTime() + 1000; // the server's clock passes the certificate's notAfter
      expect(await talk(srv.port, { ...creds, session: first.session })).toEqual({ ok: false });
      expect(srv.verdicts.at(-1)).toEqual({ peer: { ok: false, reason: 'CERT_HAS_EXPIRED' }, resumed: true });
    } finally {
      await srv.close();
    }
  });

  it('refuses a certificate that is not valid yet (clock check on every connection)', async () => {
    const future = rawMaterial(ca, { identity: CLIENT_ID, notBefore: new Date(Date.now() + 3_600_000), ttlHours: 1 }, ca.trustBundlePem);
    const srv = await serve(serverTlsOptions(serverMaterial, params({ listener: 'inbound' })), true);
    try {
      expect(await talk(srv.port, { cert: future.certPem, key: future.keyPem })).toEqual({ ok: false });
      expect(srv.verdicts).toEqual([]); // OpenSSL refused it in the full handshake already
    } finally {
      await srv.close();
    }
  });
});

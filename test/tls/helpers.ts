// Test helpers for src/tls: materials from a throw-away CA, a real node:tls server on 127.0.0.1
// built with serverTlsOptions that greets each peer with its SPIFFE ID, and a client for it. Temp
// directories and CAs come from test/helpers (tempDir, newCa), removed by closeAll.

import { execFileSync } from 'node:child_process';
import tls from 'node:tls';
import { issueLeaf, type Ca, type LeafRequest } from '../../src/tls/ca.js';
import { handshakeFailureReason, serverTlsOptions, socketPeerIdentity, type ServerTlsParams } from '../../src/tls/contexts.js';
import { materialFromPem, type TlsMaterial } from '../../src/tls/material.js';
import { closeAll, newCa } from '../helpers/sidecar.js';

export { tempDir } from '../helpers/sidecar.js';

/** Removes the temp directories (and anything else the helpers started). */
export const removeTempDirs = closeAll;

export function makeCa(trustDomain = 'cluster.local'): Promise<Ca> {
  return newCa(trustDomain);
}

/** Whether an `openssl` binary is here to cross-check against. */
export const hasOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A leaf from `ca` as TlsMaterial; `bundle` overrides the trust bundle (default: the CA's). */
export function leafMaterial(ca: Ca, req: LeafRequest, bundle = ca.trustBundlePem): TlsMaterial {
  const leaf = issueLeaf(ca, req);
  return materialFromPem({ certPem: leaf.certPem, keyPem: leaf.keyPem, trustBundlePem: bundle });
}

/** Like leafMaterial, but without the checks (for expired or foreign leaves the server must refuse); `bundle` vouches for the leaf's trust domain. */
export function rawMaterial(ca: Ca, req: LeafRequest, bundle: string): TlsMaterial {
  const leaf = issueLeaf(ca, req);
  return { ...leaf, trustBundlePem: bundle, trustDomains: [{ trustDomain: ca.trustDomain, rootsPem: bundle }], nextRotation: null };
}

export interface TestServer {
  readonly port: number;
  /** SPIFFE IDs of accepted peers, one per connection, read in 'secureConnection'. */
  readonly peers: Array<string | null>;
  readonly resumed: boolean[];
  /** Why the server refused handshakes ('tlsClientError', via handshakeFailureReason). */
  readonly refused: string[];
  /** Bytes received from clients, all connections together. */
  received: string;
  readonly server: tls.Server;
  close(): Promise<void>;
}

export async function startServer(m: TlsMaterial, params: ServerTlsParams = {}): Promise<TestServer> {
  const state = { peers: [] as Array<string | null>, resumed: [] as boolean[], refused: [] as string[], received: '' };
  const server = tls.createServer(serverTlsOptions(m, params), (socket) => {
    const id = socketPeerIdentity(socket);
    state.peers.push(id);
    state.resumed.push(socket.isSessionReused());
    socket.on('data', (d: Buffer) => {
      state.received += d.toString();
      socket.write(`hello ${id ?? '?'}\n`);
    });
    socket.on('error', () => {});
  });
  server.on('tlsClientError', (e, socket) => state.refused.push(handshakeFailureReason(e, socket)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return Object.assign(state, {
    port,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

export type ClientResult = { ok: true; reply: string; resumed: boolean; serverId: string | null } | { ok: false; error: Error };

/**
 * Connect, send "ping", wait for the greeting. With TLS 1.3 the server judges the client's
 * certificate after the client considers the handshake done, so success means a reply came.
 */
export function exchange(options: tls.ConnectionOptions, onSocket?: (s: tls.TLSSocket) => void): Promise<ClientResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', ...options });
    onSocket?.(socket);
    let reply = '';
    let serverId: string | null = null;
    let done = false;
    const finish = (r: ClientResult): void => {
      if (done) return;
      done = true;
      resolve(r);
      if (!r.ok) socket.destroy();
    };
    socket.on('secureConnect', () => {
      serverId = socketPeerIdentity(socket);
      socket.write('ping');
    });
    socket.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.endsWith('\n')) {
        finish({ ok: true, reply: reply.trim(), resumed: socket.isSessionReused(), serverId });
        socket.end();
      }
    });
    socket.on('error', (error: Error) => finish({ ok: false, error }));
    socket.on('close', () => finish({ ok: false, error: new Error('closed without a reply') }));
  });
}

export const HOUR = 3_600_000;

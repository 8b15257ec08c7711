// A dedicated connection to one endpoint (never pooled) for what becomes a byte stream: a
// WebSocket tunnel (dataplane/upgrade.ts) or a TCP stream (dataplane/tcp_proxy.ts). Plaintext, or
// mTLS with the cluster's current material, the TLS running over a TCP socket of its own so that a
// reset can later be passed on as an RST of that TCP connection (dataplane/splice.ts). Half-open
// is allowed (a FIN one way is a half-close, not the end) and Nagle is off.

import net from 'node:net';
import tls from 'node:tls';
import type { EndpointTarget } from './pool.js';

/** Errors that mean the TCP connection itself failed (not the TLS handshake on top of it). */
export const NETWORK_ERRORS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'EPIPE',
]);

/**
 * Opens the connection. `onReady` runs once bytes may flow: connected, or the TLS handshake and
 * the server's identity check done. Failures arrive as the returned socket's 'error' (an identity
 * mismatch as IdentityMismatchError), then 'close'. `alpn`: the protocols offered over mTLS (the
 * TCP hop names its destination port there). Null: the cluster wants mTLS and no certificate is
 * loaded yet — nothing may go out in plaintext.
 */
export function dialEndpoint(target: EndpointTarget, onReady: () => void, alpn: readonly string[] | null = null): net.Socket | null {
  const plan = target.connectTls();
  if (plan === undefined) return null;
  const tcp = net.connect({ host: target.host, port: target.port, noDelay: true, allowHalfOpen: true });
  if (plan === null) {
    tcp.once('connect', onReady);
    return tcp;
  }
  // allowHalfOpen: honoured by tls.connect (it hands it to the TLSSocket), missing from @types/node.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    socket: tcp,
    allowHalfOpen: true,
    ...plan.options,
    ...(alpn !== null ? { ALPNProtocols: [...alpn] } : {}),
  };
  const t = tls.connect(options);
  // The TCP socket's own failure (refused, reset) is the connection's failure.
  tcp.on('error', (e) => t.destroy(e));
  plan.remember(t);
  t.once('secureConnect', onReady);
  return t;
}

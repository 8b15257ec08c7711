// Protocol detection (`protocol: auto` with `tcp_fallback`, src/dataplane/detect.ts) through real
// sidecars. One plaintext auto port serves HTTP/1, HTTP/2 with prior knowledge and opaque binary
// protocols (even one that opens like a TLS ClientHello: the app's own TLS) on both HTTP engines;
// a server-speaks-first app behind an auto port gets its greeting through once the detection
// timeout has passed (counted), and behind a `protocol: tcp` listener (the opaque port) at once,
// before the client writes a byte. On an mTLS auto port ALPN decides: HTTP/1 and HTTP/2 requests
// with a client certificate, and a client sidecar's TCP hop (ALPN outrigger-tcp/<port>) to the
// fallback cluster; plaintext is refused there.

import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  accessLogLines,
  adminCall,
  API,
  caSource,
  closeAll,
  deadPort,
  directRequest,
  httpGet,
  leaf,
  mtlsServerConfig,
  newCa,
  parsePrometheus,
  sampleValue,
  spiffe,
  startSidecar,
  startUpstream,
  tempDir,
  track,
  WEB,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { connectClient, startTcpApp, type TcpApp } from '../tcp/helpers.js';

afterAll(closeAll);

const GREETING = '220 smtp.example ESMTP ready\r\n';

interface DetectionStat {
  listener: string;
  by_protocol: Record<string, number>;
  timeouts: number;
}

async function detection(sc: Sidecar, listener: string): Promise<DetectionStat | undefined> {
  const a = await adminCall(sc, 'GET', '/stats');
  return (a.json as { detection: DetectionStat[] }).detection.find((d) => d.listener === listener);
}

async function handshakeFailures(sc: Sidecar): Promise<number> {
  const a = await adminCall(sc, 'GET', '/stats');
  const security = (a.json as { security: Array<{ listener: string; tls_handshake_failures: number }> }).security;
  return security.find((s) => s.listener === 'main')?.tls_handshake_failures ?? -1;
}

/** A counter of /metrics, as soon as the workers' stats report has it (they report every few hundred ms). */
function pollMetric(sc: Sidecar, name: string, labels: Record<string, string>): ReturnType<typeof expect.poll<Promise<number | undefined>>> {
  return expect.poll(async () => sampleValue(parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text), name, labels), { timeout: 5000 });
}

/** One HTTP/2 request with prior knowledge (h2c) or over TLS (ALPN h2); resolves to its :status. */
function h2Status(authority: string, options: http2.SecureClientSessionOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority, options);
    track({ close: () => Promise.resolve(void session.destroy()) });
    session.on('error', reject);
    const req = session.request({ ':path': '/h2', ':method': 'GET' });
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => {
        session.close();
        resolve(Number(h[':status']));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `payload`, half-closes, and resolves to everything received until the peer's FIN. */
async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  const c = await connectClient(port);
  c.socket.end(payload);
  await c.ended;
  return c.received();
}

/** The two apps behind an auto port with tcp_fallback, and the clusters `web` and `echo` that go to them. */
interface AutoPortApps {
  readonly http: Upstream;
  readonly echo: TcpApp;
  readonly clusters: ReadonlyArray<Record<string, unknown>>;
}

/** An HTTP app (cluster `web`) and a TCP echo app (cluster `echo`, the fallback). */
async function startAutoPortApps(): Promise<AutoPortApps> {
  const http = await startUpstream();
  const echo = await startTcpApp();
  return {
    http,
    echo,
    clusters: [
      { name: 'web', endpoints: [{ address: http.address }] },
      { name: 'echo', endpoints: [{ address: echo.address }] },
    ],
  };
}

/** A TCP app that greets first (server-speaks-first, as SMTP or MySQL), then echoes. */
function greeter(s: net.Socket): void {
  s.write(GREETING);
  s.pipe(s);
}

describe.each(['strict', 'node'] as const)('one plaintext auto port with tcp_fallback (engine %s)', (engine) => {
  let apps: AutoPortApps;
  let greetApp: TcpApp;
  let opaquePort: number;
  let sc: Sidecar;
  let log: string;

  it('starts an HTTP app, a TCP echo app, a greeting app and the sidecar', async () => {
    apps = await startAutoPortApps();
    greetApp = await startTcpApp(greeter);
    opaquePort = await deadPort();
    log = path.join(tempDir(), 'access.log');
    const routes = [{ name: 'all', match: { path_prefix: '/' }, cluster: 'web' }];
    sc = await startSidecar({
      node: { workers: 1 },
      listeners: [
        {
          name: 'main',
          address: '127.0.0.1:0',
          engine,
          protocol: 'auto',
          tcp_fallback: { cluster: 'echo', detect_timeout_ms: 300 },
          routes,
          access_log: { path: log, format: 'json' },
        },
        { name: 'smtp-auto', address: '127.0.0.1:0', engine, tcp_fallback: { cluster: 'smtp', detect_timeout_ms: 300 }, routes },
        { name: 'smtp-opaque', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'smtp' },
        // An auto port listed in its own opaque_ports: detection would wait ten minutes, the opaque port none.
        {
          name: 'smtp-opaque-port',
          address: `127.0.0.1:${opaquePort}`,
          engine,
          tcp_fallback: { cluster: 'smtp', detect_timeout_ms: 600_000, opaque_ports: [opaquePort] },
          routes,
        },
      ],
      clusters: [...apps.clusters, { name: 'smtp', endpoints: [{ address: greetApp.address }] }],
    });
  });

  it('an HTTP/1 request reaches the HTTP app', async () => {
    const r = await httpGet({ port: sc.port('main'), path: '/h1' });
    expect(r.status).toBe(200);
    expect(apps.http.requests.map((q) => q.url)).toContain('/h1');
  });

  it('an HTTP/2 request with prior knowledge reaches the HTTP app', async () => {
    expect(await h2Status(`http://127.0.0.1:${sc.port('main')}`)).toBe(200);
    expect(apps.http.requests.map((q) => q.url)).toContain('/h2');
  });

  it('a redis PING and random bytes, and bytes that open like a TLS ClientHello, reach the TCP app unchanged', async () => {
    const ping = Buffer.concat([Buffer.from('*1\r\n$4\r\nPING\r\n'), randomBytes(64 * 1024)]);
    expect((await roundTrip(sc.port('main'), ping)).equals(ping)).toBe(true);
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), randomBytes(512)]);
    expect((await roundTrip(sc.port('main'), hello)).equals(hello)).toBe(true);
    expect(apps.echo.sockets.length).toBe(2);
  });

  it('counts the connections of each detected protocol in /stats and /metrics', async () => {
    await expect
      .poll(() => detection(sc, 'main'), { timeout: 5000 })
      .toEqual({ listener: 'main', by_protocol: { http1: 1, http2: 1, opaque: 2 }, timeouts: 0 });
    await pollMetric(sc, 'outrigger_detected_connections_total', { listener: 'main', protocol: 'http2' }).toBe(1);
    await pollMetric(sc, 'outrigger_detected_connections_total', { listener: 'main', protocol: 'opaque' }).toBe(2);
    await pollMetric(sc, 'outrigger_tcp_connections_total', { listener: 'main', cluster: 'echo', destination_port: String(sc.port('main')) }).toBe(2);
  });

  it('a server-speaks-first app behind an auto port: its greeting arrives once detection times out, and the timeout is counted', async () => {
    const c = await connectClient(sc.port('smtp-auto'));
    await expect.poll(() => c.received().toString(), { timeout: 5000 }).toBe(GREETING);
    expect(c.socket.bytesWritten).toBe(0);
    // The connection then carries the client's bytes too.
    c.socket.write('EHLO client\r\n');
    await expect.poll(() => c.received().toString()).toBe(`${GREETING}EHLO client\r\n`);
    c.socket.end();
    await expect.poll(() => detection(sc, 'smtp-auto'), { timeout: 5000 }).toEqual({ listener: 'smtp-auto', by_protocol: { opaque: 1 }, timeouts: 1 });
    await pollMetric(sc, 'outrigger_detect_timeouts_total', { listener: 'smtp-auto' }).toBe(1);
  });

  it('the same app behind the opaque port (protocol: tcp) greets a client that has not written a byte: no detection', async () => {
    const c = await connectClient(sc.port('smtp-opaque'));
    await expect.poll(() => c.received().toString(), { timeout: 5000 }).toBe(GREETING);
    expect(c.socket.bytesWritten).toBe(0);
    c.socket.end();
    expect(await detection(sc, 'smtp-opaque')).toBeUndefined();
  });

  it('an auto port listed in tcp_fallback.opaque_ports greets a client that has not written a byte: detection skipped', async () => {
    const c = await connectClient(opaquePort);
    await expect.poll(() => c.received().toString(), { timeout: 5000 }).toBe(GREETING);
    expect(c.socket.bytesWritten).toBe(0);
    c.socket.end();
    await expect
      .poll(() => detection(sc, 'smtp-opaque-port'), { timeout: 5000 })
      .toEqual({ listener: 'smtp-opaque-port', by_protocol: { opaque: 1 }, timeouts: 0 });
  });

  it("the auto port's access log has a line per HTTP request and a tcp line per opaque connection", async () => {
    // The log is buffered: stopping the sidecar writes it out.
    expect(await sc.stop()).toBe(0);
    const lines = accessLogLines(log);
    expect(lines.map((l) => l['protocol']).sort()).toEqual(['HTTP/1.1', 'HTTP/2', 'tcp', 'tcp']);
    expect(lines.filter((l) => l['protocol'] === 'tcp')).toEqual([
      expect.objectContaining({ listener: 'main', cluster: 'echo', end: 'closed', bytes_from_client: 64 * 1024 + 14 }),
      expect.objectContaining({ listener: 'main', cluster: 'echo', end: 'closed', bytes_from_client: 517 }),
    ]);
  });
});

describe.each(['strict', 'node'] as const)('an mTLS auto port with tcp_fallback: ALPN decides (engine %s)', (engine) => {
  let ca: Awaited<ReturnType<typeof newCa>>;
  let apps: AutoPortApps;
  let server: Sidecar;
  let client: Sidecar;
  /** A client sidecar of `identity`: tcp listener `out` → the server, which must be API. */
  const clientConfig = (identity: string): Record<string, unknown> => ({
    node: { workers: 1, identity },
    tls: caSource(ca),
    listeners: [{ name: 'out', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'api' }],
    clusters: [{ name: 'api', tls: { identities: [API] }, endpoints: [{ address: `127.0.0.1:${server.port()}` }] }],
  });

  it('starts the server sidecar (mTLS auto listener, fallback to a TCP echo app) and a client sidecar whose tcp listener goes to it', async () => {
    ca = await newCa();
    apps = await startAutoPortApps();
    server = await startSidecar(
      mtlsServerConfig(
        caSource(ca),
        { engine, tcp_fallback: { cluster: 'echo' }, routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'web' }] },
        apps.clusters,
      ),
    );
    client = await startSidecar(clientConfig(WEB));
  });

  it('HTTP/1 (ALPN http/1.1) and HTTP/2 (ALPN h2) requests with a client certificate reach the HTTP app', async () => {
    const web = leaf(ca, WEB);
    const r = await directRequest(server.port(), { ca: ca.certPem, cert: web.certPem, key: web.keyPem }, { path: '/tls-h1' });
    expect(r.ok && r.status).toBe(200);
    const status = await h2Status(`https://127.0.0.1:${server.port()}`, {
      ca: ca.certPem,
      cert: web.certPem,
      key: web.keyPem,
      checkServerIdentity: () => undefined,
    });
    expect(status).toBe(200);
    expect(apps.http.requests.map((q) => q.url)).toEqual(expect.arrayContaining(['/tls-h1', '/h2']));
  });

  it("a client sidecar's TCP hop (ALPN outrigger-tcp/<port>) reaches the fallback app, with the client listener's port as destination", async () => {
    const payload = randomBytes(256 * 1024);
    expect((await roundTrip(client.port('out'), payload)).equals(payload)).toBe(true);
    await pollMetric(server, 'outrigger_tcp_connections_total', { listener: 'main', cluster: 'echo', destination_port: String(client.port('out')) }).toBe(1);
  });

  it('a sidecar with an identity the authorization does not allow is refused before the fallback app', async () => {
    const intruder = await startSidecar(clientConfig(spiffe('intruder')));
    const c = await connectClient(intruder.port('out'));
    c.socket.write('let me in');
    // The client sidecar passes the server's close on as a FIN (half-close) or a close.
    await Promise.race([c.ended, c.closed]);
    expect(c.received().length).toBe(0);
    expect(apps.echo.sockets.length).toBe(1);
    await pollMetric(server, 'outrigger_tcp_refused_total', { listener: 'main', cluster: 'echo', reason: 'unauthorized' }).toBe(1);
  });

  it('plaintext is refused on the mTLS port (the handshake fails and is counted), and what ALPN chose is counted', async () => {
    const before = await handshakeFailures(server);
    await expect(httpGet({ port: server.port(), path: '/plain' })).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(apps.http.requests.map((q) => q.url)).not.toContain('/plain');
    expect(apps.echo.sockets.length).toBe(1);
    await expect.poll(() => handshakeFailures(server), { timeout: 5000 }).toBe(before + 1);
    // The plaintext connection never got past the handshake: ALPN counted only the TLS ones.
    await expect.poll(async () => (await detection(server, 'main'))?.by_protocol, { timeout: 5000 }).toEqual({ http1: 1, http2: 1, opaque: 2 });
  });
});

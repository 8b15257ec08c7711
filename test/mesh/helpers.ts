// Helpers for the mesh tests: two (or more) real outrigger processes talking mTLS on 127.0.0.1
// with certificates the test issues. Sidecars are started with test/admin/helpers.ts (so the
// admin API is reachable); this file adds config builders for the client and server side, a
// small counting app, a direct node:https client with its own certificate, a TLS "probe"
// upstream that records which client certificate each connection presented, a keep-alive load
// generator, and readers for GET /clusters and GET /certs. Every wait is bounded; closeMesh()
// (afterAll) closes everything, including what test/admin/helpers.ts started.

import { X509Certificate } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type tls from 'node:tls';
import { initCa, issueLeaf, type Ca, type IssuedCert, type LeafRequest } from '../../src/tls/ca.js';
import { adminCall, closeAll as closeAdmin, eventually, sleep, startSidecar, tempDir, type Config, type Sidecar } from '../admin/helpers.js';

export { eventually, sleep, startSidecar, tempDir, type Config, type Sidecar };

export const TRUST_DOMAIN = 'cluster.local';
export const spiffe = (sa: string, ns = 'default'): string => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;
export const WEB = spiffe('web');
export const API = spiffe('api');
export const HOUR_MS = 3_600_000;

const live = new Set<{ close(): Promise<unknown> }>();

/** Closes every app, probe, agent and sidecar the mesh tests started (afterAll). */
export async function closeMesh(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.allSettled(all.map((x) => x.close()));
  await closeAdmin();
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** A fresh embedded CA in a temp dir (removed by closeMesh). */
export async function newCa(trustDomain = TRUST_DOMAIN): Promise<Ca> {
  return initCa(path.join(tempDir(), 'ca'), trustDomain);
}

/** A leaf issued by `ca` (default lifetime 1 h). */
export function leaf(ca: Ca, identity: string, extra: Omit<LeafRequest, 'identity'> = {}): IssuedCert {
  return issueLeaf(ca, { ttlHours: 1, ...extra, identity });
}

/** Writes `text` to `file` atomically (temp file + rename), as secret managers do. */
export function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

export interface TlsFiles {
  readonly trustBundle: string;
  readonly cert: string;
  readonly key: string;
}

/** Writes a trust bundle and a leaf into `dir` (files-mode material); returns the paths. */
export function writeTlsFiles(dir: string, bundlePem: string, l: Pick<IssuedCert, 'certPem' | 'keyPem'>): TlsFiles {
  const files = { trustBundle: path.join(dir, 'bundle.pem'), cert: path.join(dir, 'leaf.pem'), key: path.join(dir, 'leaf.key') };
  replaceFile(files.trustBundle, bundlePem);
  replaceFile(files.key, l.keyPem);
  replaceFile(files.cert, l.certPem);
  return files;
}

/** Serial (upper-case hex, as /certs reports it) of a PEM certificate. */
export function serialOf(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Sidecar configs

export type TlsSource = { ca: { dir: string; ttl_hours?: number } } | { trust_bundle: string; cert: string; key: string };

export function caSource(ca: Ca | string, ttlHours?: number): TlsSource {
  const dir = typeof ca === 'string' ? ca : ca.dir;
  return { ca: ttlHours === undefined ? { dir } : { dir, ttl_hours: ttlHours } };
}

export function filesSource(f: TlsFiles): TlsSource {
  return { trust_bundle: f.trustBundle, cert: f.cert, key: f.key };
}

export interface ServerSideOptions {
  readonly tls: TlsSource;
  /** The local app, 127.0.0.1:PORT. */
  readonly app: string;
  readonly identity?: string;
  readonly workers?: number;
  /** Listener authorization rules (omitted: any authenticated peer is allowed). */
  readonly authorization?: ReadonlyArray<Record<string, unknown>>;
}

/** Server side: listener `inbound` (mTLS, optional authorization) → cluster `local-app`. */
export function serverSideConfig(o: ServerSideOptions): Config {
  const inbound: Record<string, unknown> = {
    name: 'inbound',
    address: '127.0.0.1:0',
    tls: { mode: 'mtls' },
    routes: [{ match: { path_prefix: '/' }, cluster: 'local-app' }],
  };
  if (o.authorization !== undefined) inbound['authorization'] = o.authorization;
  return {
    node: { workers: o.workers ?? 1, identity: o.identity ?? API, drain_timeout_ms: 2000 },
    admin: { address: '127.0.0.1:0' },
    tls: o.tls,
    listeners: [inbound],
    clusters: [{ name: 'local-app', endpoints: [{ address: o.app }] }],
  };
}

export interface ExtraCluster {
  /** Requests whose path starts with this go to the cluster. */
  readonly pathPrefix: string;
  readonly name: string;
  readonly address: string;
  /** SPIFFE ID the endpoint must present. */
  readonly identity: string;
}

export interface ClientSideOptions {
  readonly tls: TlsSource;
  /** The server side's inbound listener, 127.0.0.1:PORT. */
  readonly upstream: string;
  /** Whom the upstream must be (default API). */
  readonly expect?: string;
  readonly identity?: string;
  readonly workers?: number;
  readonly pool?: Record<string, unknown>;
  /** More mTLS clusters, routed by path prefix before the catch-all to `api`. */
  readonly extra?: readonly ExtraCluster[];
}

/** Client side: plaintext listener `outbound` → mTLS cluster `api` (and any extra clusters). */
export function clientSideConfig(o: ClientSideOptions): Config {
  const extra = o.extra ?? [];
  const api: Record<string, unknown> = {
    name: 'api',
    tls: { mode: 'mtls', identity: o.expect ?? API },
    endpoints: [{ address: o.upstream }],
  };
  if (o.pool !== undefined) api['pool'] = o.pool;
  return {
    node: { workers: o.workers ?? 2, identity: o.identity ?? WEB, drain_timeout_ms: 2000 },
    admin: { address: '127.0.0.1:0' },
    tls: o.tls,
    listeners: [
      {
        name: 'outbound',
        address: '127.0.0.1:0',
        routes: [
          ...extra.map((e) => ({ match: { path_prefix: e.pathPrefix }, cluster: e.name })),
          { match: { path_prefix: '/' }, cluster: 'api' },
        ],
      },
    ],
    clusters: [
      api,
      ...extra.map((e) => ({ name: e.name, tls: { mode: 'mtls', identity: e.identity }, endpoints: [{ address: e.address }] })),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Admin readers

export interface EndpointCounters {
  readonly connectionsOpen: number;
  readonly connectionsOpened: number;
  readonly tlsHandshakes: number;
  readonly tlsResumed: number;
}

/** Per-endpoint counters of a cluster from GET /clusters (summed over workers by the sidecar). */
export async function endpointCounters(sc: Sidecar, cluster: string, address?: string): Promise<EndpointCounters> {
  const a = await adminCall(sc, 'GET', '/clusters');
  if (a.status !== 200) throw new Error(`GET /clusters → ${a.status} ${a.text}`);
  const c = (a.json.clusters as any[]).find((x) => x.name === cluster);
  if (c === undefined) throw new Error(`no cluster ${cluster} in GET /clusters: ${a.text}`);
  const e = address === undefined ? c.endpoints[0] : (c.endpoints as any[]).find((x) => x.address === address);
  if (e === undefined) throw new Error(`no endpoint ${address ?? '(first)'} in cluster ${cluster}: ${a.text}`);
  for (const f of ['connections_open', 'connections_opened_total', 'tls_handshakes_total', 'tls_resumed_total']) {
    if (typeof e[f] !== 'number') throw new Error(`GET /clusters: endpoint has no numeric ${f}: ${JSON.stringify(e)}`);
  }
  return {
    connectionsOpen: e.connections_open,
    connectionsOpened: e.connections_opened_total,
    tlsHandshakes: e.tls_handshakes_total,
    tlsResumed: e.tls_resumed_total,
  };
}

export interface CertsView {
  readonly source: 'files' | 'ca';
  readonly identity: string;
  readonly serial: string;
  readonly not_before: string;
  readonly not_after: string;
  readonly next_rotation: string | null;
  readonly trust_roots: number;
  readonly rotations: number;
  readonly last_error: string | null;
}

/** This sidecar's certificate as GET /certs shows it. */
export async function certsOf(sc: Sidecar): Promise<CertsView> {
  const a = await adminCall(sc, 'GET', '/certs');
  if (a.status !== 200) throw new Error(`GET /certs → ${a.status} ${a.text}`);
  const certs = a.json.certs as CertsView[];
  if (certs.length !== 1) throw new Error(`GET /certs: expected one certificate, got ${a.text}`);
  return certs[0]!;
}

// ---------------------------------------------------------------------------------------------
// The local app

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
}

export interface App {
  readonly address: string;
  /** Requests received so far. */
  count: number;
  /** The first `recordLimit` requests, as received. */
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/** A keep-alive node:http app answering 200 `app <method> <url>`; counts and records requests. */
export async function startApp(recordLimit = 1000): Promise<App> {
  const sockets = new Set<net.Socket>();
  const seen: SeenRequest[] = [];
  const server = http.createServer({ keepAliveTimeout: 300_000, headersTimeout: 300_000, requestTimeout: 0 }, (req, res) => {
    app.count++;
    if (seen.length < recordLimit) seen.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders.slice() });
    req.resume();
    req.on('end', () => {
      if (res.destroyed) return;
      const body = `app ${req.method} ${req.url}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, s: net.Socket) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const handle = {
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  live.add(handle);
  const app: App = {
    address: `127.0.0.1:${port}`,
    count: 0,
    seen,
    close: async () => {
      live.delete(handle);
      await handle.close();
    },
  };
  return app;
}

/** Values of header `name` (any case) in a flat rawHeaders list. */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// A TLS upstream that records each connection's client certificate

export interface Probe {
  readonly address: string;
  /** Client certificate serial (upper-case hex) of every accepted connection, in order. */
  readonly connectionSerials: string[];
  /** Client certificate serial of the connection each request came on. */
  readonly requestSerials: string[];
  /** Handshakes the probe refused. */
  refused: number;
  close(): Promise<void>;
}

/**
 * An https server with `requestCert` + `rejectUnauthorized` presenting `serverLeaf` (give it the
 * identity the sidecar's cluster expects), trusting `bundlePem`. Answers 200 `probe`.
 */
export async function startProbe(serverLeaf: Pick<IssuedCert, 'certPem' | 'keyPem'>, bundlePem: string): Promise<Probe> {
  const sockets = new Set<net.Socket>();
  const connectionSerials: string[] = [];
  const requestSerials: string[] = [];
  const serialOfSocket = (s: tls.TLSSocket): string => s.getPeerX509Certificate()?.serialNumber.toUpperCase() ?? '?';
  const server = https.createServer(
    { cert: serverLeaf.certPem, key: serverLeaf.keyPem, ca: bundlePem, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 300_000, requestTimeout: 0 },
    (req, res) => {
      requestSerials.push(serialOfSocket(req.socket as tls.TLSSocket));
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
        res.end('probe');
      });
    },
  );
  server.on('secureConnection', (s: tls.TLSSocket) => {
    connectionSerials.push(serialOfSocket(s));
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => probe.refused++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const handle = {
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  live.add(handle);
  const probe: Probe = {
    address: `127.0.0.1:${port}`,
    connectionSerials,
    requestSerials,
    refused: 0,
    close: async () => {
      live.delete(handle);
      await handle.close();
    },
  };
  return probe;
}

// ---------------------------------------------------------------------------------------------
// A direct mTLS client (no sidecar): our own certificate, straight to an inbound listener

export interface DirectCreds {
  /** Roots to verify the server with. */
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export type DirectResult =
  | {
      readonly ok: true;
      readonly status: number;
      readonly headers: http.IncomingHttpHeaders;
      readonly body: string;
      /** The server's certificate. */
      readonly serverCert: X509Certificate | undefined;
      /** The TLS session, to resume with (`o.session`) on a later request. */
      readonly session: Buffer | undefined;
      /** Whether this connection resumed `o.session`. */
      readonly resumed: boolean;
    }
  | { readonly ok: false; readonly error: string };

/**
 * One request on a fresh TLS connection (no agent, no session reuse) to 127.0.0.1:port. The
 * server certificate is verified against `creds.ca` (its DNS name is not checked: SPIFFE IDs
 * only). Always resolves: `ok: false` with the error when there is no HTTP response.
 */
export function directRequest(
  port: number,
  creds: DirectCreds,
  o: { method?: string; path?: string; headers?: Record<string, string>; timeoutMs?: number; session?: Buffer | undefined } = {},
): Promise<DirectResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: DirectResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: o.method ?? 'GET',
        path: o.path ?? '/',
        headers: o.headers,
        agent: false,
        ca: creds.ca,
        ...(creds.cert !== undefined ? { cert: creds.cert, key: creds.key } : {}),
        checkServerIdentity: () => undefined,
        rejectUnauthorized: true,
        ...(o.session !== undefined ? { session: o.session } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        const socket = res.socket as tls.TLSSocket;
        const serverCert = socket.getPeerX509Certificate();
        const resumed = socket.isSessionReused();
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          finish({ ok: true, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8'), serverCert, session: socket.getSession(), resumed }),
        );
        res.on('error', (e) => finish({ ok: false, error: e.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, error: 'timeout' });
    }, o.timeoutMs ?? 5000);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Load

export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  /** The first failures: `<status> <x-outrigger-error>` or the socket error. */
  readonly failures: string[];
}

export interface Load {
  readonly stats: LoadStats;
  /** Resolves when every loop stopped (after stop(), `total` reached, or the time limit). */
  readonly done: Promise<LoadStats>;
  stop(): Promise<LoadStats>;
}

export interface LoadOptions {
  /** Keep-alive connections (= concurrent request loops), default 10. */
  readonly connections?: number;
  /** Stop after this many requests in all (default: until stop()). */
  readonly total?: number;
  /** Path of request number i (default `/v1/load/<i>`). */
  readonly path?: (i: number) => string;
  /** Hard limit, ms (default 60 s). */
  readonly maxMs?: number;
}

/**
 * Sequential GETs on `connections` keep-alive connections to 127.0.0.1:port. A request fails
 * when it ends in anything but a 200 with the app's body.
 */
export function startLoad(port: number, o: LoadOptions = {}): Load {
  const connections = o.connections ?? 10;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, failures: [] };
  let stopped = false;
  const until = Date.now() + (o.maxMs ?? 60_000);
  const pathOf = o.path ?? ((i: number) => `/v1/load/${i}`);
  const fail = (why: string): void => {
    stats.failed++;
    if (stats.failures.length < 20) stats.failures.push(why);
  };
  const one = (p: string): Promise<void> =>
    new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: p, agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const body = Buffer.concat(parts).toString('utf8');
          if (res.statusCode === 200 && body.startsWith('app ')) stats.ok++;
          else fail(`${res.statusCode} ${String(res.headers['x-outrigger-error'] ?? '')} ${body.slice(0, 120)}`);
          resolve();
        });
        res.on('error', (e) => {
          fail(`response error ${e.message}`);
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        fail(`request error ${e.code ?? e.message}`);
        resolve();
      });
      req.end();
    });
  const loop = async (): Promise<void> => {
    while (!stopped && Date.now() < until && (o.total === undefined || stats.sent < o.total)) {
      const i = stats.sent++;
      await one(pathOf(i));
    }
  };
  const done = Promise.all(Array.from({ length: connections }, loop)).then(() => {
    agent.destroy();
    return stats;
  });
  const handle = {
    close: async () => {
      stopped = true;
      await done;
    },
  };
  live.add(handle);
  return {
    stats,
    done,
    stop: async () => {
      stopped = true;
      live.delete(handle);
      return done;
    },
  };
}

/** Waits (bounded) until the load has made `n` more requests than it had when called. */
export async function moreRequests(load: Load, n: number, timeoutMs = 20_000): Promise<void> {
  const target = load.stats.sent + n;
  await eventually(() => (load.stats.sent >= target ? true : undefined), `${n} more requests under load`, timeoutMs, 20);
}

/** A plain GET through a sidecar's outbound listener on a fresh connection. */
export function get(
  port: number,
  p: string,
  o: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${o.method ?? 'GET'} ${p} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A bare TLS connection that never sends a byte: 'open' when it is still up after `holdMs`
 * (the server accepted the handshake), otherwise `closed` plus the error the client saw — the
 * server refused during the handshake, before any HTTP request existed.
 */
export function handshakeOnly(port: number, creds: DirectCreds, holdMs = 500): Promise<{ outcome: 'open' } | { outcome: 'closed'; error: string | null }> {
  return new Promise((resolve) => {
    let error: string | null = null;
    let done = false;
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: creds.ca,
      ...(creds.cert !== undefined ? { cert: creds.cert, key: creds.key } : {}),
      checkServerIdentity: () => undefined,
    });
    const finish = (r: { outcome: 'open' } | { outcome: 'closed'; error: string | null }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ outcome: 'open' }), holdMs);
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish({ outcome: 'closed', error }));
  });
}

// Config builders for sidecars under test: a plain proxy (`proxyConfig`), a listener with routes
// and clusters (`config`, `cluster`), the two sides of an mTLS mesh (`serverSideConfig`,
// `clientSideConfig`), and a server of API that only WEB may call (`mtlsServerConfig`). Plain
// objects; the launcher writes them as JSON or YAML. Besides, one hostile config text the admin
// API must refuse (`aliasBombYaml`).

import { API, WEB, type TlsSource } from './mtls.js';

export type Config = Record<string, unknown>;

export interface ConfigOptions {
  workers?: number;
  lb?: 'least_request' | 'round_robin' | 'random';
  timeoutMs?: number;
  maxRequestHeadersBytes?: number;
  /** listeners[].engine (default: outrigger's default, node). */
  engine?: 'uws' | 'node';
  /** Extra routes placed before the catch-all route to cluster `app`. */
  routes?: Array<Record<string, unknown>>;
  /** Extra clusters. */
  clusters?: Array<Record<string, unknown>>;
  weights?: number[];
  pool?: Record<string, unknown>;
}

/** One listener `main` on 127.0.0.1:0, a catch-all route to cluster `app` with these endpoints. */
export function proxyConfig(endpoints: string[], o: ConfigOptions = {}): Record<string, unknown> {
  const catchAll: Record<string, unknown> = { name: 'all', match: { path_prefix: '/' }, cluster: 'app' };
  if (o.timeoutMs !== undefined) catchAll['timeout_ms'] = o.timeoutMs;
  const listener: Record<string, unknown> = {
    name: 'main',
    address: '127.0.0.1:0',
    routes: [...(o.routes ?? []), catchAll],
  };
  if (o.maxRequestHeadersBytes !== undefined) listener['max_request_headers_bytes'] = o.maxRequestHeadersBytes;
  if (o.engine !== undefined) listener['engine'] = o.engine;
  const app: Record<string, unknown> = {
    name: 'app',
    lb: o.lb ?? 'least_request',
    endpoints: endpoints.map((address, i) => ({ address, weight: o.weights?.[i] ?? 1 })),
  };
  if (o.pool !== undefined) app['pool'] = o.pool;
  return {
    node: { workers: o.workers ?? 1, drain_timeout_ms: 2000 },
    listeners: [listener],
    clusters: [app, ...(o.clusters ?? [])],
  };
}

export interface ClusterOptions {
  lb?: 'least_request' | 'round_robin' | 'random';
  retry_budget?: Record<string, unknown>;
  circuit_breaker?: Record<string, unknown>;
  health_check?: Record<string, unknown>;
  outlier_detection?: Record<string, unknown>;
  pool?: Record<string, unknown>;
}

export function cluster(name: string, endpoints: readonly string[], o: ClusterOptions = {}): Record<string, unknown> {
  return { name, lb: o.lb ?? 'round_robin', endpoints: endpoints.map((address) => ({ address })), ...o };
}

/** A route at `path` to cluster `app` that runs a test hook (the sidecar needs OUTRIGGER_ENABLE_TEST_HOOKS=1), then a catch-all to `app`. */
export function hookRoutes(path: string, hook: 'test_crash' | 'test_throw' | 'test_stall'): Array<Record<string, unknown>> {
  return [
    { match: { path }, cluster: 'app', [hook]: true },
    { match: { path_prefix: '/' }, cluster: 'app' },
  ];
}

/** One listener `main` with these routes; node settings merged in (1 worker, seed 42 by default). */
export function config(
  routes: Array<Record<string, unknown>>,
  clusters: Array<Record<string, unknown>>,
  extra: { node?: Record<string, unknown>; listener?: Record<string, unknown>; listeners?: Array<Record<string, unknown>> } = {},
): Record<string, unknown> {
  return {
    node: { workers: 1, drain_timeout_ms: 1000, random_seed: 42, ...extra.node },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes, ...extra.listener }, ...(extra.listeners ?? [])],
    clusters,
  };
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
        routes: [...extra.map((e) => ({ match: { path_prefix: e.pathPrefix }, cluster: e.name })), { match: { path_prefix: '/' }, cluster: 'api' }],
      },
    ],
    clusters: [api, ...extra.map((e) => ({ name: e.name, tls: { mode: 'mtls', identity: e.identity }, endpoints: [{ address: e.address }] }))],
  };
}

/**
 * A server sidecar of identity API on `tls`: listener `main` on 127.0.0.1:0 taking mTLS from WEB
 * alone, with `listener`'s fields besides (its protocol, routes or cluster), and these clusters.
 */
export function mtlsServerConfig(tls: TlsSource, listener: Record<string, unknown>, clusters: ReadonlyArray<Record<string, unknown>>, workers = 1): Config {
  return {
    node: { workers, identity: API },
    tls,
    listeners: [{ name: 'main', address: '127.0.0.1:0', tls: { mode: 'mtls' }, authorization: [{ from: [WEB] }], ...listener }],
    clusters,
  };
}

/**
 * A "billion laughs" YAML text: ten anchors a..j, each a list of nine aliases of the one before,
 * so expanding it would make 9^10 strings. The admin API must refuse it by counting aliases.
 */
export function aliasBombYaml(): string {
  const names = 'abcdefghij';
  let text = `a: &a ${JSON.stringify(Array(9).fill('lol'))}\n`;
  for (let i = 1; i < names.length; i++)
    text += `${names[i]}: &${names[i]} [${Array(9)
      .fill(`*${names[i - 1]}`)
      .join(',')}]\n`;
  return text;
}

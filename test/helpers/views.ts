// Readers for what a sidecar shows: GET /clusters and GET /certs as typed views, a wait on a
// cluster's state, a strict parser of the Prometheus text in GET /metrics, and its access log.

import { readFileSync } from 'node:fs';
import type { CertsInfo } from '../../src/tls/rotation.js';
import { adminCall } from './clients.js';
import { eventually } from './live.js';
import { directRequest, type DirectCreds } from './mtls.js';

/** What the readers need of a sidecar: its admin address and token. */
export type AdminOf = { readonly admin: string; readonly token?: string };

export interface EndpointView {
  address: string;
  healthy: boolean;
  ejected: boolean;
  /** Workers that took it out of balancing after a failed connect. */
  unreachable_workers: number;
  active: number;
  health_check: { healthy: boolean; consecutive_failures: number; last_checked: string | null; last_error: string | null } | null;
  outlier: { ejected: boolean; ejections_total: number; ejected_until: string | null } | null;
  [k: string]: unknown;
}

export interface ClusterView {
  name: string;
  active: number;
  retries_total: number;
  retry_budget_exhausted_total: number;
  overflow_total: number;
  panicking: boolean;
  endpoints: EndpointView[];
  [k: string]: unknown;
}

export async function clusterView(sc: AdminOf, name: string): Promise<ClusterView> {
  const a = await adminCall(sc, 'GET', '/clusters');
  if (a.status !== 200) throw new Error(`GET /clusters → ${a.status} ${a.text}`);
  const c = (a.json as { clusters: ClusterView[] }).clusters.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no cluster ${name} in /clusters: ${a.text}`);
  return c;
}

export function endpointView(c: ClusterView, address: string): EndpointView {
  const e = c.endpoints.find((x) => x.address === address);
  if (e === undefined) throw new Error(`no endpoint ${address} in cluster ${c.name}`);
  return e;
}

/** Polls /clusters until `pred` holds for cluster `name`; returns that view. */
export function untilCluster(sc: AdminOf, name: string, pred: (c: ClusterView) => boolean, what: string, timeoutMs = 10_000): Promise<ClusterView> {
  return eventually(
    async () => {
      const c = await clusterView(sc, name);
      return pred(c) ? c : undefined;
    },
    what,
    timeoutMs,
  );
}

export interface EndpointCounters {
  readonly connectionsOpen: number;
  readonly connectionsOpened: number;
  readonly tlsHandshakes: number;
  readonly tlsResumed: number;
  /** pool.pipeline_plaintext: workers where pipelining to the app is stopped now, and how often it stopped. */
  readonly pipeliningOffWorkers: number;
  readonly pipeliningStops: number;
  /** GETs and HEADs sent again because the response ahead of them on a pipelined connection did not end in time. */
  readonly pipelinedMoved: number;
}

/** Per-endpoint counters of a cluster from GET /clusters (summed over workers by the sidecar). */
export async function endpointCounters(sc: AdminOf, cluster: string, address?: string): Promise<EndpointCounters> {
  const a = await adminCall(sc, 'GET', '/clusters');
  if (a.status !== 200) throw new Error(`GET /clusters → ${a.status} ${a.text}`);
  const c = (a.json as { clusters: ClusterView[] }).clusters.find((x) => x.name === cluster);
  if (c === undefined) throw new Error(`no cluster ${cluster} in GET /clusters: ${a.text}`);
  const e = address === undefined ? c.endpoints[0] : c.endpoints.find((x) => x.address === address);
  if (e === undefined) throw new Error(`no endpoint ${address ?? '(first)'} in cluster ${cluster}: ${a.text}`);
  for (const f of [
    'connections_open',
    'connections_opened_total',
    'tls_handshakes_total',
    'tls_resumed_total',
    'pipelining_off_workers',
    'pipelining_stops_total',
    'pipelined_moved_total',
  ]) {
    if (typeof e[f] !== 'number') throw new Error(`GET /clusters: endpoint has no numeric ${f}: ${JSON.stringify(e)}`);
  }
  return {
    connectionsOpen: e['connections_open'] as number,
    connectionsOpened: e['connections_opened_total'] as number,
    tlsHandshakes: e['tls_handshakes_total'] as number,
    tlsResumed: e['tls_resumed_total'] as number,
    pipeliningOffWorkers: e['pipelining_off_workers'] as number,
    pipeliningStops: e['pipelining_stops_total'] as number,
    pipelinedMoved: e['pipelined_moved_total'] as number,
  };
}

/** A certificate as GET /certs shows it (the sidecar's own type). */
export type CertsView = CertsInfo;

/** This sidecar's certificate as GET /certs shows it. */
export async function certsOf(sc: AdminOf): Promise<CertsView> {
  const a = await adminCall(sc, 'GET', '/certs');
  if (a.status !== 200) throw new Error(`GET /certs → ${a.status} ${a.text}`);
  const certs = (a.json as { certs: CertsView[] }).certs;
  if (certs.length !== 1) throw new Error(`GET /certs: expected one certificate, got ${a.text}`);
  return certs[0]!;
}

export interface RotationWatch {
  /** Serials each side showed in /certs, in order, each once. */
  readonly clientSerials: string[];
  readonly serverSerials: string[];
  /** Serials of the certificates the server's inbound listener presented, in order. */
  readonly presented: string[];
}

/**
 * Watches two sidecars rotate their certificates: both sides' /certs, and what the server's
 * inbound listener (`inboundPort`) presents to a direct client with `direct`. Resolves once both
 * have rotated `rotations` times, every certificate was seen (each side `rotations + 1` serials,
 * `rotations` presented) and the client's first certificate has expired.
 */
export async function watchRotations(
  client: AdminOf,
  server: AdminOf,
  inboundPort: number,
  direct: DirectCreds,
  rotations = 3,
  timeoutMs = 45_000,
): Promise<RotationWatch> {
  const [c0, s0] = await Promise.all([certsOf(client), certsOf(server)]);
  const w: RotationWatch = { clientSerials: [c0.serial], serverSerials: [s0.serial], presented: [] };
  const note = (list: string[], serial: string): void => {
    if (list.at(-1) !== serial) list.push(serial);
  };
  await eventually(
    async () => {
      const [c, s] = await Promise.all([certsOf(client), certsOf(server)]);
      note(w.clientSerials, c.serial);
      note(w.serverSerials, s.serial);
      const r = await directRequest(inboundPort, direct, { path: '/v1/direct' });
      if (!r.ok || r.status !== 200) throw new Error(`direct request failed: ${JSON.stringify(r)}`);
      note(w.presented, r.serverCert!.serialNumber.toUpperCase());
      const seenAll = w.clientSerials.length > rotations && w.serverSerials.length > rotations && w.presented.length >= rotations;
      const rotated = c.rotations >= rotations && s.rotations >= rotations;
      return rotated && seenAll && Date.now() > Date.parse(c0.not_after) + 500 ? w : undefined;
    },
    `${rotations} rotations on both sides, each certificate seen`,
    timeoutMs,
    200,
  );
  return w;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses Prometheus text exposition format 0.0.4 strictly: every line is a HELP/TYPE comment, a
 * blank line, or `name{labels} value`; throws on anything else. Returns the samples.
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const typed = new Map<string, string>();
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m === null) throw new Error(`line ${i + 1}: bad comment: ${line}`);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`line ${i + 1}: bad type ${m[3]}`);
        typed.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (m === null) throw new Error(`line ${i + 1}: not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3] !== undefined && m[3] !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        re.lastIndex = pos;
        const l = re.exec(m[3]);
        if (l === null) throw new Error(`line ${i + 1}: bad labels: ${m[3]}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        pos = re.lastIndex;
      }
    }
    const raw = m[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`line ${i + 1}: bad value ${raw}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(m[1]!) && !typed.has(family)) throw new Error(`line ${i + 1}: sample ${m[1]} has no # TYPE line before it`);
    samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

/** Value of the one sample `name` whose labels include `labels`; undefined when absent. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** The lines of an access log file, parsed (the log is buffered: stop the sidecar first to read all of it). */
export function accessLogLines<T = Record<string, unknown>>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

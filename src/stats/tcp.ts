// Connections of tcp listeners as GET /stats and /metrics show them. Workers post the growth of
// their counters (workers/stats_reporter.ts, per listener and cluster); the number open now is
// what was opened and not yet closed, derived here from those totals.

import type { CounterTotals } from './counters.js';

const OPENED = 'outrigger_tcp_connections_total';
const CLOSED = 'outrigger_tcp_connections_closed_total';
const BYTES = 'outrigger_tcp_bytes_total';
const SECONDS = 'outrigger_tcp_connection_seconds_total';
const REFUSED = 'outrigger_tcp_refused_total';

interface Pair {
  readonly listener: string;
  readonly cluster: string;
  opened: number;
  /** Opened by original destination port. */
  readonly by_destination_port: Record<string, number>;
}

/** Every (listener, cluster) pair with a connection opened or refused, and its opened counts. */
function pairs(totals: CounterTotals): Map<string, Pair> {
  const out = new Map<string, Pair>();
  const pairOf = (labels: Readonly<Record<string, string>>): Pair => {
    const listener = labels['listener'] ?? '';
    const cluster = labels['cluster'] ?? '';
    const key = `${listener}\0${cluster}`;
    let p = out.get(key);
    if (p === undefined) {
      p = { listener, cluster, opened: 0, by_destination_port: {} };
      out.set(key, p);
    }
    return p;
  };
  for (const s of totals.list(OPENED)) {
    const p = pairOf(s.labels);
    p.opened += s.value;
    p.by_destination_port[s.labels['destination_port'] ?? ''] = s.value;
  }
  for (const s of totals.list(REFUSED)) pairOf(s.labels);
  return out;
}

/** Per listener and cluster: connections open now, opened (and by destination port), closed, refused by reason, bytes each way, summed duration. */
export function tcpJson(totals: CounterTotals): unknown[] {
  return [...pairs(totals).values()].map((p) => {
    const at = { listener: p.listener, cluster: p.cluster };
    const closed = totals.value(CLOSED, at);
    const refused: Record<string, number> = {};
    for (const s of totals.list(REFUSED))
      if (s.labels['listener'] === p.listener && s.labels['cluster'] === p.cluster) refused[s.labels['reason'] ?? ''] = s.value;
    return {
      ...at,
      active: p.opened - closed,
      opened: p.opened,
      closed,
      by_destination_port: p.by_destination_port,
      refused,
      bytes_from_client: totals.value(BYTES, { ...at, direction: 'from_client' }),
      bytes_from_upstream: totals.value(BYTES, { ...at, direction: 'from_upstream' }),
      duration_seconds_total: totals.value(SECONDS, at),
    };
  });
}

/** The `outrigger_tcp_connections_active` gauge, in the Prometheus text format ('' before the first tcp connection). */
export function tcpMetrics(totals: CounterTotals): string {
  const all = [...pairs(totals).values()].filter((p) => p.opened > 0);
  if (all.length === 0) return '';
  let out = '# HELP outrigger_tcp_connections_active Connections of tcp listeners open now (reached an endpoint, not yet closed), by listener and cluster.\n';
  out += '# TYPE outrigger_tcp_connections_active gauge\n';
  for (const p of all) {
    const active = p.opened - totals.value(CLOSED, { listener: p.listener, cluster: p.cluster });
    out += `outrigger_tcp_connections_active{listener="${p.listener}",cluster="${p.cluster}"} ${active}\n`;
  }
  return out;
}

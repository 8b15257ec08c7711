// Upgraded (WebSocket) connections as GET /stats and /metrics show them. Workers post the growth of
// five counters (workers/stats_reporter.ts: opened, closed, bytes each way, uws clients closed
// for a slow upstream, per listener); the
// number open now is what was opened and not yet closed, derived here from those totals.

import type { CounterTotals } from './counters.js';

const OPENED = 'outrigger_upgraded_connections_total';
const CLOSED = 'outrigger_upgraded_connections_closed_total';
const BYTES = 'outrigger_upgraded_bytes_total';
const OVERFLOWS = 'outrigger_upgraded_client_overflows_total';

/** Per listener: connections open now, opened and closed since start, bytes from the client and from the upstream, uws clients closed for a slow upstream. */
export function upgradesJson(totals: CounterTotals): unknown[] {
  return totals.list(OPENED).map((s) => {
    const listener = s.labels['listener'] ?? '';
    const closed = totals.value(CLOSED, { listener });
    return {
      listener,
      active: s.value - closed,
      opened: s.value,
      closed,
      bytes_from_client: totals.value(BYTES, { listener, direction: 'from_client' }),
      bytes_from_upstream: totals.value(BYTES, { listener, direction: 'from_upstream' }),
      client_overflows: totals.value(OVERFLOWS, { listener }),
    };
  });
}

/** The `outrigger_upgraded_connections_active` gauge, in the Prometheus text format ('' before the first upgrade). */
export function upgradeMetrics(totals: CounterTotals): string {
  const opened = totals.list(OPENED);
  if (opened.length === 0) return '';
  let out = '# HELP outrigger_upgraded_connections_active Upgraded (WebSocket) connections open now, by listener.\n';
  out += '# TYPE outrigger_upgraded_connections_active gauge\n';
  for (const s of opened) {
    const listener = s.labels['listener'] ?? '';
    out += `outrigger_upgraded_connections_active{listener="${listener}"} ${s.value - totals.value(CLOSED, { listener })}\n`;
  }
  return out;
}

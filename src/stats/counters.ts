// Counters kept inside data-plane objects (listeners, authorizers, clusters, retry budgets,
// connection pools) start at zero whenever such an object is replaced: a worker restart, a
// listener re-bind, new authorization rules. So workers never report those values: each posts
// what every counter grew by since its last post (CounterDeltas), and the main thread adds the
// deltas into totals (CounterTotals) that only ever grow for the life of the process, as
// Prometheus rate() needs. /metrics shows them through prom-client Counters (prometheus.ts) that
// are brought up to these totals at each scrape and never reset.

/** One counter series' growth in one stats interval. */
export interface CounterDelta {
  readonly metric: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Worker side: turns the current values of per-object counters into deltas. */
export class CounterDeltas {
  /** Last value posted, per owning object and series (a replaced object starts over at 0). */
  private readonly last = new WeakMap<object, Map<string, number>>();
  private out: CounterDelta[] = [];

  /** Records `current`, the value of `metric{labels}` held by `owner`. */
  observe(owner: object, metric: string, labels: Readonly<Record<string, string>>, current: number): void {
    const key = seriesKey(metric, labels);
    let seen = this.last.get(owner);
    if (seen === undefined) {
      seen = new Map();
      this.last.set(owner, seen);
    }
    const prev = seen.get(key) ?? 0;
    if (current > prev) this.out.push({ metric, labels, value: current - prev });
    seen.set(key, current);
  }

  /** The deltas since the previous call. */
  take(): CounterDelta[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}

export interface Series {
  readonly metric: string;
  readonly labels: Readonly<Record<string, string>>;
  value: number;
}

/** Help text of every counter that travels this way (also the order of the exposition). */
export const COUNTER_HELP: Readonly<Record<string, string>> = {
  outrigger_authz_decisions_total: 'Authorization decisions on mTLS listeners, by rule (allow) or denied.',
  outrigger_tls_handshake_failures_total: 'Inbound TLS handshakes refused (missing, untrusted, expired or not-yet-valid client certificate).',
  outrigger_headers_with_underscores_dropped_total: 'Request header lines dropped for an underscore in the name (listeners[].headers_with_underscores: drop).',
  outrigger_listener_connections_accepted_total: 'Client connections accepted, by listener and worker (node engine; uWS has no accept hook).',
  outrigger_upgraded_connections_total: 'Upgraded (WebSocket) connections opened (the upstream answered 101), by listener.',
  outrigger_upgraded_connections_closed_total: 'Upgraded (WebSocket) connections closed, by listener.',
  outrigger_upgraded_bytes_total: 'Bytes carried by upgraded connections after the 101, by listener and direction (from_client, from_upstream).',
  outrigger_upgraded_client_overflows_total:
    'WebSocket clients of uws listeners closed with 1013 because the upstream did not read what they sent (uWS cannot pause a WebSocket), by listener.',
  outrigger_tcp_connections_total:
    'Connections of tcp listeners that reached an endpoint, by listener, cluster and original destination port (the listener port, or the one a client sidecar named in ALPN).',
  outrigger_tcp_connections_closed_total: 'Connections of tcp listeners closed after reaching an endpoint, by listener and cluster.',
  outrigger_tcp_bytes_total: 'Bytes carried by tcp listeners, by listener, cluster and direction (from_client, from_upstream).',
  outrigger_tcp_connection_seconds_total: 'Summed duration of closed tcp listener connections, by listener and cluster.',
  outrigger_tcp_refused_total:
    'Connections of tcp listeners closed before reaching an endpoint, by listener, cluster and reason (unauthorized, overflow, no_endpoint, connect_failed, connect_timeout, identity_mismatch, no_certificate, closed: the client left first).',
  outrigger_detected_connections_total:
    'Connections of listeners with tcp_fallback by what they were found to speak (http1, http2, opaque: sent to the fallback cluster), by listener. TLS listeners count by ALPN.',
  outrigger_original_destination_connections_total:
    'Connections of original_destination listeners (outbound) by where their original destination sent them: cluster (a service address), passthrough (allow_any), refused (registry_only), by listener.',
  outrigger_detect_timeouts_total:
    'Plaintext connections of listeners with tcp_fallback that sent no deciding byte within detect_timeout_ms (then forwarded as opaque TCP: server-speaks-first protocols), by listener.',
  outrigger_retries_total: 'Retries made by route retry policies, by cluster.',
  outrigger_grpc_responses_total:
    "gRPC calls (HTTP/2, content-type application/grpc*) by the grpc-status the client got (the upstream's, or the proxy's own local reply), by listener, route and cluster.",
  outrigger_retry_budget_exhausted_total: 'Retries refused because the cluster retry budget was spent.',
  outrigger_overflow_total: 'Requests refused with 503 overflow by the cluster circuit breaker (max_requests).',
  outrigger_upstream_tls_handshakes_total: 'Full TLS handshakes on new upstream connections (mTLS clusters), by cluster and endpoint.',
  outrigger_upstream_tls_resumptions_total: 'Resumed TLS sessions on new upstream connections (mTLS clusters), by cluster and endpoint.',
  outrigger_certificate_renewal_failures_total:
    "Failed renewals of this sidecar's certificate (source signer or ca: signer unreachable or refusing, an answer refused); the current certificate stays in force.",
  outrigger_tracing_spans_exported_total: 'Spans the OTLP collector accepted (tracing).',
  outrigger_tracing_spans_dropped_total:
    'Spans never exported, by reason: queue_full (the export queue was at tracing.max_queued_spans: the oldest go), worker_buffer (a worker sampled more than it may hold between posts), rejected (the collector refused the batch with a 4xx), disabled (tracing was turned off).',
  outrigger_certificate_reload_rejected_total:
    'Certificate hot swaps refused (source files: the changed files were rejected; the current certificate stays in force).',
};

/** Label names of every counter in COUNTER_HELP (the prom-client Counter of each is declared with them). */
export const COUNTER_LABELS: Readonly<Record<string, readonly string[]>> = {
  outrigger_authz_decisions_total: ['listener', 'rule', 'decision'],
  outrigger_tls_handshake_failures_total: ['listener'],
  outrigger_headers_with_underscores_dropped_total: ['listener'],
  outrigger_listener_connections_accepted_total: ['listener', 'worker'],
  outrigger_upgraded_connections_total: ['listener'],
  outrigger_upgraded_connections_closed_total: ['listener'],
  outrigger_upgraded_bytes_total: ['listener', 'direction'],
  outrigger_upgraded_client_overflows_total: ['listener'],
  outrigger_tcp_connections_total: ['listener', 'cluster', 'destination_port'],
  outrigger_tcp_connections_closed_total: ['listener', 'cluster'],
  outrigger_tcp_bytes_total: ['listener', 'cluster', 'direction'],
  outrigger_tcp_connection_seconds_total: ['listener', 'cluster'],
  outrigger_tcp_refused_total: ['listener', 'cluster', 'reason'],
  outrigger_detected_connections_total: ['listener', 'protocol'],
  outrigger_detect_timeouts_total: ['listener'],
  outrigger_original_destination_connections_total: ['listener', 'kind'],
  outrigger_retries_total: ['cluster'],
  outrigger_grpc_responses_total: ['listener', 'route', 'cluster', 'grpc_status'],
  outrigger_retry_budget_exhausted_total: ['cluster'],
  outrigger_overflow_total: ['cluster'],
  outrigger_upstream_tls_handshakes_total: ['cluster', 'endpoint'],
  outrigger_upstream_tls_resumptions_total: ['cluster', 'endpoint'],
  outrigger_certificate_renewal_failures_total: ['source'],
  outrigger_certificate_reload_rejected_total: ['source'],
  outrigger_tracing_spans_exported_total: [],
  outrigger_tracing_spans_dropped_total: ['reason'],
};

/** Main side: monotonic totals of every series (exported to /metrics by prometheus.ts). */
export class CounterTotals {
  private readonly series = new Map<string, Series>();

  apply(deltas: readonly CounterDelta[]): void {
    for (const d of deltas) this.at(d.metric, d.labels).value += d.value;
  }

  /** Makes a series exist (at 0 until something is counted), so /metrics shows it from the start. */
  declare(metric: string, labels: Readonly<Record<string, string>>): void {
    this.at(metric, labels);
  }

  /** The current total of one series (0 when never counted). */
  value(metric: string, labels: Readonly<Record<string, string>>): number {
    return this.series.get(seriesKey(metric, labels))?.value ?? 0;
  }

  /** Every series of `metric`. */
  list(metric: string): Series[] {
    return [...this.series.values()].filter((s) => s.metric === metric);
  }

  private at(metric: string, labels: Readonly<Record<string, string>>): Series {
    const key = seriesKey(metric, labels);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { metric, labels: { ...labels }, value: 0 };
      this.series.set(key, s);
    }
    return s;
  }
}

function seriesKey(metric: string, labels: Readonly<Record<string, string>>): string {
  return `${metric}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
}

// The `/metrics` view: a prom-client Registry of its own (never the global one) whose metrics are
// filled at scrape time from the aggregator's totals, so JSON and Prometheus read one truth.
// Counters and gauges are prom-client Counter/Gauge with a collect() hook; the counters that
// travel in the workers' deltas (CounterTotals) are Counters that only ever inc up to the totals. prom-client's
// Histogram only takes observe() one sample at a time, so the latency histograms are a small
// pre-aggregated metric object registered in the same Registry (it only needs name/help/type
// and get()); its buckets come from the merged hdr histograms, `_sum` from exact sums.

import { Counter, Gauge, Registry } from 'prom-client';
import type { LabelValues, Metric } from 'prom-client';
import { COUNTER_HELP, COUNTER_LABELS, type CounterTotals, type Series } from './counters.js';
import { CODE_CLASSES, CODE_CLASS_COUNT } from './delta.js';
import { valueFromIndex, type SlotHistogram } from './histogram.js';
import type { CellTotals, ClusterTotals, StatsView } from './totals.js';

/** Bucket upper bounds of the duration histograms, seconds. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
const BUCKET_BOUNDS_MICROS = DURATION_BUCKETS_SECONDS.map((s) => Math.round(s * 1e6));

type Labels = Readonly<Record<string, string>>;

interface HistogramSeries {
  readonly labels: Labels;
  readonly histogram: SlotHistogram | null;
  readonly sumMicros: number;
}

interface HistogramValue {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * A histogram whose bucket counts are already aggregated. An hdr slot counts toward every
 * bucket whose bound is ≥ the slot's lowest value, so a sample equal to a bound lands in that
 * bound's bucket; a sample within one slot width (≤ 0.1 %) above a bound may too.
 */
class PreAggregatedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly series: () => Iterable<HistogramSeries>,
  ) {}

  /** prom-client awaits get(): the values are computed synchronously. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.series()) {
      const cumulative = bucketCounts(s.histogram);
      for (let i = 0; i < BUCKET_BOUNDS_MICROS.length; i++) {
        values.push({ value: cumulative[i]!, labels: { ...s.labels, le: DURATION_BUCKETS_SECONDS[i]! }, metricName: bucketName });
      }
      const count = s.histogram === null ? 0 : s.histogram.totalCount;
      values.push({ value: count, labels: { ...s.labels, le: '+Inf' }, metricName: bucketName });
      values.push({ value: s.sumMicros / 1e6, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      values.push({ value: count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** Registry.resetMetrics() calls this; the values live in the aggregator. */
  reset(): void {}
}

/** Cumulative counts per bucket bound (Prometheus `le` semantics). */
function bucketCounts(h: SlotHistogram | null): number[] {
  const perBucket = new Array<number>(BUCKET_BOUNDS_MICROS.length).fill(0);
  if (h === null || h.totalCount === 0) return perBucket;
  let b = 0;
  h.forEachSlot((slot, n) => {
    const lowest = valueFromIndex(slot);
    while (b < BUCKET_BOUNDS_MICROS.length && lowest > BUCKET_BOUNDS_MICROS[b]!) b++;
    if (b < perBucket.length) perBucket[b]! += n;
  });
  for (let i = 1; i < perBucket.length; i++) perBucket[i]! += perBucket[i - 1]!;
  return perBucket;
}

export class PrometheusExporter {
  private readonly registry = new Registry();
  /** CounterTotals metrics that have their prom-client Counter (registered once their first series exists). */
  private readonly totalsRegistered = new Set<string>();

  constructor(
    view: StatsView,
    private readonly totals: CounterTotals | null = null,
  ) {
    const registers = [this.registry];

    /** A counter or gauge whose series are taken from the view at each scrape: reset, then `fill` puts every value. */
    const scraped = <L extends string>(
      type: 'counter' | 'gauge',
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (put: (labels: LabelValues<L>, value: number) => void) => void,
    ): void => {
      const config = { name, help, labelNames, registers };
      if (type === 'counter') {
        new Counter({
          ...config,
          collect() {
            this.reset();
            fill((labels, value) => this.inc(labels, value));
          },
        });
      } else {
        new Gauge({
          ...config,
          collect() {
            this.reset();
            fill((labels, value) => this.set(labels, value));
          },
        });
      }
    };
    const CELL = ['listener', 'route', 'cluster'] as const;
    const cellCounter = (name: string, help: string, value: (cell: CellTotals) => number): void =>
      scraped('counter', name, help, CELL, (put) => {
        for (const cell of view.cells()) put({ listener: cell.listener, route: cell.route, cluster: cell.cluster }, value(cell));
      });
    const clusterCounter = (name: string, help: string, value: (c: ClusterTotals) => number): void =>
      scraped('counter', name, help, ['cluster'], (put) => {
        for (const c of view.clusters()) put({ cluster: c.name }, value(c));
      });

    scraped(
      'counter',
      'outrigger_requests_total',
      'Requests by listener, route, cluster and response class (code_class "none": no response). route/cluster "" = no route / no cluster.',
      [...CELL, 'code_class'],
      (put) => {
        for (const cell of view.cells()) {
          for (let k = 0; k < CODE_CLASS_COUNT; k++) {
            put({ listener: cell.listener, route: cell.route, cluster: cell.cluster, code_class: CODE_CLASSES[k]! }, cell.classes[k]!);
          }
        }
      },
    );
    cellCounter('outrigger_request_bytes_total', 'Bytes received from downstream clients.', (cell) => cell.bytesIn);
    cellCounter('outrigger_response_bytes_total', 'Bytes sent to downstream clients.', (cell) => cell.bytesOut);

    this.registry.registerMetric(
      asMetric(
        new PreAggregatedHistogram(
          'outrigger_request_duration_seconds',
          'Total request duration (first byte in → last byte out), merged exactly from every worker.',
          function* () {
            for (const cell of view.cells()) {
              yield {
                labels: { listener: cell.listener, route: cell.route, cluster: cell.cluster },
                histogram: cell.latency,
                sumMicros: cell.durationSumMicros,
              };
            }
          },
        ),
      ),
    );

    scraped('counter', 'outrigger_upstream_rq_total', 'Requests routed to a cluster, by response class.', ['cluster', 'code_class'], (put) => {
      for (const c of view.clusters()) {
        for (const code_class of CODE_CLASSES) put({ cluster: c.name, code_class }, 0);
      }
      for (const cell of view.cells()) {
        if (cell.cluster === '') continue;
        for (let k = 0; k < CODE_CLASS_COUNT; k++) put({ cluster: cell.cluster, code_class: CODE_CLASSES[k]! }, cell.classes[k]!);
      }
    });

    this.registry.registerMetric(
      asMetric(
        new PreAggregatedHistogram('outrigger_upstream_rq_duration_seconds', 'Upstream request duration (request sent → response complete).', function* () {
          for (const c of view.clusters()) {
            yield { labels: { cluster: c.name }, histogram: c.upstream, sumMicros: c.upstreamSumMicros };
          }
        }),
      ),
    );

    clusterCounter('outrigger_upstream_cx_connect_fail_total', 'Upstream connection attempts that failed.', (c) => c.connectFailures);
    clusterCounter('outrigger_upstream_rq_timeout_total', 'Upstream requests that timed out.', (c) => c.timeouts);
    clusterCounter('outrigger_upstream_rq_reset_total', 'Upstream requests reset mid-exchange.', (c) => c.resets);

    scraped(
      'gauge',
      'outrigger_upstream_connections',
      'Pooled upstream connections, summed over workers: state "busy" (carrying a request) or "idle"; open = busy + idle.',
      ['cluster', 'state'],
      (put) => {
        for (const c of view.clusters()) {
          const g = view.gauges(c.name);
          put({ cluster: c.name, state: 'busy' }, Math.max(0, g.poolOpen - g.poolIdle));
          put({ cluster: c.name, state: 'idle' }, g.poolIdle);
        }
      },
    );
    scraped('gauge', 'outrigger_active_requests', 'In-flight requests per cluster, summed over workers.', ['cluster'], (put) => {
      for (const c of view.clusters()) put({ cluster: c.name }, view.gauges(c.name).active);
    });
    scraped('gauge', 'outrigger_config_version', 'Version of the config running on all workers.', [], (put) => put({}, view.configVersion));
    scraped('counter', 'outrigger_worker_stalls_total', 'Workers the watchdog found with a stuck event loop (node.worker_stall_ms) and replaced.', [], (put) =>
      put({}, view.workerStalls),
    );
    scraped('counter', 'outrigger_worker_restarts_total', 'Workers restarted by the supervisor after a crash.', [], (put) => put({}, view.workerRestarts));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    this.registerTotals();
    return this.registry.metrics();
  }

  /**
   * The counters that travel in the workers' stats deltas (counters.ts): one prom-client Counter
   * per metric of COUNTER_HELP, registered when the metric has its first series (declared at zero
   * or counted), whose collect() brings each labelled child up to its CounterTotals value — inc by
   * the growth since the last scrape, never a reset — so what /metrics shows never decreases.
   */
  private registerTotals(): void {
    const totals = this.totals;
    if (totals === null) return;
    for (const [name, help] of Object.entries(COUNTER_HELP)) {
      if (this.totalsRegistered.has(name) || totals.list(name).length === 0) continue;
      this.totalsRegistered.add(name);
      const labelNames = COUNTER_LABELS[name] ?? [];
      /** What each series' child has been brought up to. */
      const exported = new WeakMap<Series, number>();
      new Counter({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          for (const s of totals.list(name)) {
            if (!Object.keys(s.labels).every((k) => labelNames.includes(k))) continue;
            const done = exported.get(s);
            if (done !== undefined && s.value <= done) continue;
            this.inc(s.labels, s.value - (done ?? 0));
            exported.set(s, s.value);
          }
        },
      });
    }
  }
}

/**
 * Registry.registerMetric is typed for prom-client's own classes but only reads `name` and calls
 * get() (and reset()); the one cast that lets a pre-aggregated histogram live in the registry.
 */
function asMetric(m: PreAggregatedHistogram): Metric {
  return m as unknown as Metric;
}

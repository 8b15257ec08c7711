// The `/metrics` view: a prom-client Registry of its own (never the global one) whose metrics are
// filled at scrape time from the aggregator's totals, so JSON and Prometheus read one truth.
// Counters and gauges are prom-client Counter/Gauge with a collect() hook. prom-client's
// Histogram only takes observe() one sample at a time, so the latency histograms are a small
// pre-aggregated metric object registered in the same Registry (it only needs name/help/type
// and get()); its buckets come from the merged hdr histograms, `_sum` from exact sums.

import { Counter, Gauge, Registry } from 'prom-client';
import type { Metric } from 'prom-client';
import type { JsHistogram } from 'hdr-histogram-js';
import { CODE_CLASSES, CODE_CLASS_COUNT } from './delta.js';
import { countsIndex, valueFromIndex } from './histogram.js';
import type { StatsView } from './totals.js';

/** Bucket upper bounds of the duration histograms, seconds. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
const BUCKET_BOUNDS_MICROS = DURATION_BUCKETS_SECONDS.map((s) => Math.round(s * 1e6));

type Labels = Readonly<Record<string, string>>;

interface HistogramSeries {
  readonly labels: Labels;
  readonly histogram: JsHistogram | null;
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
function bucketCounts(h: JsHistogram | null): number[] {
  const perBucket = new Array<number>(BUCKET_BOUNDS_MICROS.length).fill(0);
  if (h === null || h.totalCount === 0) return perBucket;
  const last = countsIndex(Math.min(h.maxValue, Number.MAX_SAFE_INTEGER));
  let b = 0;
  for (let i = 0; i <= last && b < BUCKET_BOUNDS_MICROS.length; i++) {
    const n = h.getCountAtIndex(i);
    if (n === 0) continue;
    const lowest = valueFromIndex(i);
    while (b < BUCKET_BOUNDS_MICROS.length && lowest > BUCKET_BOUNDS_MICROS[b]!) b++;
    if (b < perBucket.length) perBucket[b]! += n;
  }
  for (let i = 1; i < perBucket.length; i++) perBucket[i]! += perBucket[i - 1]!;
  return perBucket;
}

export class PrometheusExporter {
  private readonly registry = new Registry();

  constructor(view: StatsView) {
    const registers = [this.registry];

    new Counter({
      name: 'outrigger_requests_total',
      help: 'Requests by listener, route, cluster and response class (code_class "none": no response). route/cluster "" = no route / no cluster.',
      labelNames: ['listener', 'route', 'cluster', 'code_class'] as const,
      registers,
      collect() {
        this.reset();
        for (const cell of view.cells()) {
          for (let k = 0; k < CODE_CLASS_COUNT; k++) {
            this.inc({ listener: cell.listener, route: cell.route, cluster: cell.cluster, code_class: CODE_CLASSES[k]! }, cell.classes[k]);
          }
        }
      },
    });

    new Counter({
      name: 'outrigger_request_bytes_total',
      help: 'Bytes received from downstream clients.',
      labelNames: ['listener', 'route', 'cluster'] as const,
      registers,
      collect() {
        this.reset();
        for (const cell of view.cells()) {
          this.inc({ listener: cell.listener, route: cell.route, cluster: cell.cluster }, cell.bytesIn);
        }
      },
    });

    new Counter({
      name: 'outrigger_response_bytes_total',
      help: 'Bytes sent to downstream clients.',
      labelNames: ['listener', 'route', 'cluster'] as const,
      registers,
      collect() {
        this.reset();
        for (const cell of view.cells()) {
          this.inc({ listener: cell.listener, route: cell.route, cluster: cell.cluster }, cell.bytesOut);
        }
      },
    });

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

    new Counter({
      name: 'outrigger_upstream_rq_total',
      help: 'Requests routed to a cluster, by response class.',
      labelNames: ['cluster', 'code_class'] as const,
      registers,
      collect() {
        this.reset();
        for (const c of view.clusters()) {
          for (const code_class of CODE_CLASSES) this.inc({ cluster: c.name, code_class }, 0);
        }
        for (const cell of view.cells()) {
          if (cell.cluster === '') continue;
          for (let k = 0; k < CODE_CLASS_COUNT; k++) {
            this.inc({ cluster: cell.cluster, code_class: CODE_CLASSES[k]! }, cell.classes[k]);
          }
        }
      },
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

    new Gauge({
      name: 'outrigger_upstream_connections',
      help: 'Pooled upstream connections, summed over workers: state "busy" (carrying a request) or "idle"; open = busy + idle.',
      labelNames: ['cluster', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const c of view.clusters()) {
          const g = view.gauges(c.name);
          this.set({ cluster: c.name, state: 'busy' }, Math.max(0, g.poolOpen - g.poolIdle));
          this.set({ cluster: c.name, state: 'idle' }, g.poolIdle);
        }
      },
    });

    new Gauge({
      name: 'outrigger_active_requests',
      help: 'In-flight requests per cluster, summed over workers.',
      labelNames: ['cluster'] as const,
      registers,
      collect() {
        this.reset();
        for (const c of view.clusters()) this.set({ cluster: c.name }, view.gauges(c.name).active);
      },
    });

    new Gauge({
      name: 'outrigger_config_version',
      help: 'Version of the config running on all workers.',
      registers,
      collect() {
        this.set(view.configVersion);
      },
    });

    new Counter({
      name: 'outrigger_worker_stalls_total',
      help: 'Workers the watchdog found with a stuck event loop (node.worker_stall_ms) and replaced.',
      registers,
      collect() {
        this.reset();
        this.inc(view.workerStalls);
      },
    });

    new Counter({
      name: 'outrigger_worker_restarts_total',
      help: 'Workers restarted by the supervisor after a crash.',
      registers,
      collect() {
        this.reset();
        this.inc(view.workerRestarts);
      },
    });

    function clusterCounter(name: string, help: string, value: (c: { connectFailures: number; timeouts: number; resets: number }) => number): void {
      new Counter({
        name,
        help,
        labelNames: ['cluster'] as const,
        registers,
        collect() {
          this.reset();
          for (const c of view.clusters()) this.inc({ cluster: c.name }, value(c));
        },
      });
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * Registry.registerMetric is typed for prom-client's own classes but only reads `name` and calls
 * get() (and reset()); the one cast that lets a pre-aggregated histogram live in the registry.
 */
function asMetric(m: PreAggregatedHistogram): Metric {
  return m as unknown as Metric;
}

// /metrics text: every declared listener and cluster shows up at zero before traffic; after
// traffic the counters and the duration histogram buckets are what was recorded.
import { describe, expect, it } from 'vitest';
import { StatsAggregator } from '../../src/stats/aggregate.js';
import { WorkerStats } from '../../src/stats/worker_stats.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser for the Prometheus text format (what a scraper would read). */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/g;
    let lm: RegExpExecArray | null;
    while ((lm = re.exec(body)) !== null) labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    samples.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = find(samples, name, labels);
  if (found.length !== 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!.value;
}

describe('StatsAggregator.prometheus', () => {
  it('shows every declared listener, route and cluster with zero values before traffic', async () => {
    const agg = new StatsAggregator();
    agg.setConfigVersion(3);
    agg.declare(['outbound', 'inbound'], [{ listener: 'outbound', route: 'api', clusters: ['api-v1'] }], ['api-v1', 'local-app']);
    const { samples, types } = parse(await agg.prometheus());

    expect(types.get('outrigger_requests_total')).toBe('counter');
    expect(types.get('outrigger_request_duration_seconds')).toBe('histogram');
    expect(types.get('outrigger_upstream_connections')).toBe('gauge');
    for (const listener of ['outbound', 'inbound']) {
      expect(value(samples, 'outrigger_requests_total', { listener, route: '', cluster: '', code_class: '2xx' })).toBe(0);
      expect(value(samples, 'outrigger_request_duration_seconds_count', { listener, route: '', cluster: '' })).toBe(0);
    }
    expect(value(samples, 'outrigger_requests_total', { listener: 'outbound', route: 'api', cluster: 'api-v1', code_class: '5xx' })).toBe(0);
    for (const cluster of ['api-v1', 'local-app']) {
      expect(value(samples, 'outrigger_upstream_rq_total', { cluster, code_class: '2xx' })).toBe(0);
      expect(value(samples, 'outrigger_upstream_cx_connect_fail_total', { cluster })).toBe(0);
      expect(value(samples, 'outrigger_upstream_rq_timeout_total', { cluster })).toBe(0);
      expect(value(samples, 'outrigger_upstream_connections', { cluster, state: 'idle' })).toBe(0);
      expect(value(samples, 'outrigger_upstream_connections', { cluster, state: 'busy' })).toBe(0);
      expect(value(samples, 'outrigger_active_requests', { cluster })).toBe(0);
      expect(value(samples, 'outrigger_upstream_rq_duration_seconds_count', { cluster })).toBe(0);
    }
    expect(value(samples, 'outrigger_config_version', {})).toBe(3);
    expect(value(samples, 'outrigger_worker_restarts_total', {})).toBe(0);
  });

  it('reports the recorded counts, buckets, sums and gauges after traffic from two workers', async () => {
    const agg = new StatsAggregator();
    agg.declare(['outbound'], [{ listener: 'outbound', route: 'api', clusters: ['api-v1'] }], ['api-v1']);
    const workers = [new WorkerStats(1), new WorkerStats(2)];
    // Durations in µs → seconds: 0.0003, 0.0008, 0.002, 0.03, 0.7, 12 (the last only in +Inf).
    const durations = [300, 800, 2000, 30_000, 700_000, 12_000_000];
    for (const ws of workers) {
      const l = ws.listener('outbound');
      const r = ws.route('outbound', 'api');
      const c = ws.cluster('api-v1');
      for (const d of durations) ws.record(l, r, c, 200, d, 100, 10, 1000);
      ws.record(l, r, c, 503, 1000, 0, 10, 50);
      ws.record(l, null, null, 404, 100, 0, 10, 50);
      ws.upstreamConnectFailure(c);
      ws.setPoolConnections(c, 5, 2);
      ws.setActive(c, 1);
      agg.apply(structuredClone(ws.takeDelta()));
    }
    agg.incWorkerRestarts();
    agg.setConfigVersion(4);

    const { samples } = parse(await agg.prometheus());
    const api = { listener: 'outbound', route: 'api', cluster: 'api-v1' };
    expect(value(samples, 'outrigger_requests_total', { ...api, code_class: '2xx' })).toBe(12);
    expect(value(samples, 'outrigger_requests_total', { ...api, code_class: '5xx' })).toBe(2);
    expect(value(samples, 'outrigger_requests_total', { ...api, code_class: '4xx' })).toBe(0);
    expect(value(samples, 'outrigger_requests_total', { listener: 'outbound', route: '', cluster: '', code_class: '4xx' })).toBe(2);
    expect(value(samples, 'outrigger_upstream_rq_total', { cluster: 'api-v1', code_class: '2xx' })).toBe(12);
    expect(value(samples, 'outrigger_upstream_rq_total', { cluster: 'api-v1', code_class: '5xx' })).toBe(2);
    expect(value(samples, 'outrigger_request_bytes_total', api)).toBe(140);
    expect(value(samples, 'outrigger_response_bytes_total', api)).toBe(12_100);

    // Buckets are cumulative: per worker 300µs, 800µs, 1000µs (the 503), 2ms, 30ms, 700ms, 12s.
    const bucket = (le: string): number => value(samples, 'outrigger_request_duration_seconds_bucket', { ...api, le });
    expect(bucket('0.0005')).toBe(2);
    expect(bucket('0.001')).toBe(6);
    expect(bucket('0.0025')).toBe(8);
    expect(bucket('0.025')).toBe(8);
    expect(bucket('0.05')).toBe(10);
    expect(bucket('0.5')).toBe(10);
    expect(bucket('1')).toBe(12);
    expect(bucket('10')).toBe(12);
    expect(bucket('+Inf')).toBe(14);
    expect(value(samples, 'outrigger_request_duration_seconds_count', api)).toBe(14);
    const sumSeconds = (2 * (durations.reduce((s, d) => s + d, 0) + 1000)) / 1e6;
    expect(value(samples, 'outrigger_request_duration_seconds_sum', api)).toBeCloseTo(sumSeconds, 9);
    // Buckets never decrease.
    const buckets = find(samples, 'outrigger_request_duration_seconds_bucket', api).map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

    expect(value(samples, 'outrigger_upstream_rq_duration_seconds_count', { cluster: 'api-v1' })).toBe(12);
    expect(value(samples, 'outrigger_upstream_cx_connect_fail_total', { cluster: 'api-v1' })).toBe(2);
    expect(value(samples, 'outrigger_upstream_connections', { cluster: 'api-v1', state: 'busy' })).toBe(6);
    expect(value(samples, 'outrigger_upstream_connections', { cluster: 'api-v1', state: 'idle' })).toBe(4);
    expect(value(samples, 'outrigger_active_requests', { cluster: 'api-v1' })).toBe(2);
    expect(value(samples, 'outrigger_config_version', {})).toBe(4);
    expect(value(samples, 'outrigger_worker_restarts_total', {})).toBe(1);

    // A second scrape reads the same totals (collect() rebuilds, it does not add again).
    const again = parse(await agg.prometheus()).samples;
    expect(value(again, 'outrigger_requests_total', { ...api, code_class: '2xx' })).toBe(12);
  });

  it('escapes label values it does not control', async () => {
    const agg = new StatsAggregator();
    const ws = new WorkerStats(1);
    const name = 'we"ird\\route\nx';
    ws.record(ws.listener('l'), ws.route('l', name), null, 200, 10, 0, 0, 0);
    agg.apply(ws.takeDelta());
    const { samples } = parse(await agg.prometheus());
    expect(value(samples, 'outrigger_requests_total', { listener: 'l', route: name, cluster: '', code_class: '2xx' })).toBe(1);
  });

  it('uses its own registry: two aggregators do not collide', async () => {
    const a = new StatsAggregator();
    const b = new StatsAggregator();
    a.setConfigVersion(1);
    b.setConfigVersion(2);
    expect(value(parse(await a.prometheus()).samples, 'outrigger_config_version', {})).toBe(1);
    expect(value(parse(await b.prometheus()).samples, 'outrigger_config_version', {})).toBe(2);
    expect(a.prometheusContentType).toMatch(/^text\/plain/);
  });

  it('the counters that travel in the deltas (CounterTotals) are prom-client counters: declared at 0, growing with the deltas, never reset', async () => {
    const agg = new StatsAggregator();
    agg.counters.declare('outrigger_retries_total', { cluster: 'api' });
    agg.counters.declare('outrigger_authz_decisions_total', { listener: 'in', rule: '', decision: 'deny' });
    let out = await agg.prometheus();
    expect(out).toContain('# HELP outrigger_retries_total Retries made by route retry policies, by cluster.\n# TYPE outrigger_retries_total counter\n');
    expect(out).toContain('outrigger_authz_decisions_total{listener="in",rule="",decision="deny"} 0\n');
    expect(value(parse(out).samples, 'outrigger_retries_total', { cluster: 'api' })).toBe(0);
    // A family with no series is not shown at all (as before: nothing declared, nothing counted).
    expect(out).not.toContain('outrigger_overflow_total');

    agg.apply({ workerId: 1, cells: [], clusters: [], counters: [{ metric: 'outrigger_retries_total', labels: { cluster: 'api' }, value: 2 }] });
    agg.apply({ workerId: 2, cells: [], clusters: [], counters: [{ metric: 'outrigger_overflow_total', labels: { cluster: 'api' }, value: 5 }] });
    out = await agg.prometheus();
    expect(value(parse(out).samples, 'outrigger_retries_total', { cluster: 'api' })).toBe(2);
    expect(value(parse(out).samples, 'outrigger_overflow_total', { cluster: 'api' })).toBe(5);
    // Scraping again adds nothing; more growth adds only the growth.
    expect(value(parse(await agg.prometheus()).samples, 'outrigger_retries_total', { cluster: 'api' })).toBe(2);
    agg.apply({ workerId: 1, cells: [], clusters: [], counters: [{ metric: 'outrigger_retries_total', labels: { cluster: 'api' }, value: 3 }] });
    out = await agg.prometheus();
    expect(value(parse(out).samples, 'outrigger_retries_total', { cluster: 'api' })).toBe(5);
    expect(out.match(/^# TYPE outrigger_retries_total counter$/gm)).toHaveLength(1);
  });
});

// Prometheus for real. A sidecar with a certificate (so every family shows) under load: its
// /metrics passes `promtool check metrics` with no error and no lint warning, no counter goes
// down between scrapes, and every PromQL expression of deploy/grafana/outrigger.json names only
// metrics it exposes. Then a real Prometheus server (Debian's binary) scrapes a fresh sidecar
// every second while a known number of requests goes through: the raw counter it stored equals
// GET /stats, `increase`/`rate` over 30 s agree with that count, `histogram_quantile(0.99, …)`
// lands in the /stats p99's bucket, and every dashboard expression evaluates.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatsAggregator } from '../../src/stats/aggregate.js';
import { COUNTER_LABELS } from '../../src/stats/counters.js';
import { DURATION_BUCKETS_SECONDS } from '../../src/stats/prometheus.js';
import { tcpMetrics } from '../../src/stats/tcp.js';
import { upgradeMetrics } from '../../src/stats/upgrades.js';
import { countsIndex, valueFromIndex } from '../../src/stats/recorder.js';
import {
  API,
  adminCall,
  caSource,
  closeAll,
  eventually,
  deadPort,
  httpGet,
  newCa,
  parsePrometheus,
  proxyConfig,
  ROOT,
  sendMany,
  startApp,
  startLoad,
  startSidecar,
  tempDir,
  track,
  type Sidecar,
} from '../helpers/sidecar.js';

const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'outrigger.json');

async function metricsText(sc: Sidecar): Promise<string> {
  const a = await httpGet(`${sc.admin}/metrics`);
  expect(a.status).toBe(200);
  return a.text;
}

/** Every `expr` (and templating query) in the dashboard, wherever it sits. */
function dashboardExprs(): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expr' || k === 'definition') && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
  return out;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset']);

/**
 * The metric names a PromQL expression (or a Grafana label_values query) reads: what is left once strings, label matchers, range
 * selectors, grouping lists, function and aggregation names (followed by a parenthesis), keywords
 * and numbers are taken out.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/^label_values\((.*),\s*\w+\)$/, '$1') // Grafana's templating query: the metric, then a label name
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\b[a-zA-Z_][a-zA-Z0-9_]*\s*\(/g, '(');
  return (stripped.match(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b/g) ?? []).filter((w) => !PROMQL_WORDS.has(w) && !/^\d/.test(w));
}

/** The metric families a /metrics text exposes, with their sample names (histograms: _bucket, _sum, _count). */
function exposedNames(text: string): Set<string> {
  return new Set(parsePrometheus(text).map((s) => s.name));
}

/** Counters and histogram parts: the series that must never decrease. */
function monotonicSamples(text: string): Map<string, number> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  const out = new Map<string, number>();
  for (const s of parsePrometheus(text)) {
    const family = types.has(s.name) ? s.name : s.name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family);
    if (type === 'counter' || type === 'histogram' || (type === 'summary' && s.name !== family)) out.set(`${s.name}${JSON.stringify(s.labels)}`, s.value);
  }
  return out;
}

/** promtool check metrics on `text`: its exit status and everything it printed. */
function promtool(text: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('every metric family /metrics can show', () => {
  it('passes promtool check metrics, including the counters only some configs count (tcp, WebSocket, detection, authorization, certificates)', async () => {
    const agg = new StatsAggregator();
    agg.declare(['main'], [{ listener: 'main', route: 'all', clusters: ['app'] }], ['app']);
    const counters = Object.entries(COUNTER_LABELS).map(([metric, labels]) => ({ metric, labels: Object.fromEntries(labels.map((l) => [l, 'x'])), value: 3 }));
    agg.apply({ workerId: 1, counters, cells: [], clusters: [] });
    agg.loopDelay.add({ thread: 'worker-1', delays: new Uint32Array([100, 2]), count: 2, sumMicros: 200, maxMicros: 100, intervalMs: 1000 });
    const text = `${await agg.prometheus()}${upgradeMetrics(agg.counters)}${tcpMetrics(agg.counters)}`;
    for (const metric of Object.keys(COUNTER_LABELS)) expect(text).toContain(`# TYPE ${metric} counter`);
    expect(promtool(text)).toEqual({ status: 0, stdout: '', stderr: '' });
  });
});

describe('/metrics of a sidecar with a certificate, under load', () => {
  let sc: Sidecar;

  beforeAll(async () => {
    const ca = await newCa();
    const app = await startApp();
    const cfg = proxyConfig([app.address], { workers: 2 });
    cfg['tls'] = caSource(ca);
    (cfg['node'] as Record<string, unknown>)['identity'] = API;
    sc = await startSidecar(cfg);
  }, 60_000);
  afterAll(closeAll);

  it('passes promtool check metrics with no error and no lint warning; counters never decrease', async () => {
    const load = startLoad(sc.port(), { connections: 4 });
    // Workers post their counts once a second: the first scrape that shows requests and every thread.
    const first = await eventually(
      async () => {
        const text = await metricsText(sc);
        return /^outrigger_requests_total\{[^}]*code_class="2xx"\} [1-9]/m.test(text) && text.includes('thread="worker-2"') ? text : undefined;
      },
      'a scrape with requests and both workers',
      15_000,
      100,
    );
    expect(promtool(first)).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(first).toMatch(/^outrigger_certificate_expiry_seconds\{identity="spiffe:\/\/[^"]+"\} \d+/m);
    expect(first).toMatch(/^outrigger_event_loop_delay_last_interval_seconds\{thread="worker-\d+",stat="p99"\} /m);

    const requests = (m: Map<string, number>): number => [...m].filter(([k]) => k.startsWith('outrigger_requests_total{')).reduce((n, [, v]) => n + v, 0);
    const before = monotonicSamples(first);
    expect(before.size).toBeGreaterThan(50);
    // Scrape until one shows more requests (the workers' next posts); no series may go down between any two.
    const decreased: string[] = [];
    let previous = before;
    await eventually(
      async () => {
        const m = monotonicSamples(await metricsText(sc));
        for (const [k, v] of previous) if (!((m.get(k) ?? -1) >= v)) decreased.push(`${k}: ${v} → ${m.get(k)}`);
        previous = m;
        return requests(m) > requests(before) ? m : undefined;
      },
      'a scrape with more requests',
      15_000,
      100,
    );
    await load.stop();
    expect(decreased).toEqual([]);
  });

  it('every PromQL expression of the Grafana dashboard names only metrics /metrics exposes', async () => {
    const exposed = exposedNames(await metricsText(sc));
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(15);
    const named = new Set(exprs.flatMap(metricNames));
    for (const wanted of [
      'outrigger_requests_total',
      'outrigger_request_duration_seconds_bucket',
      'outrigger_certificate_expiry_seconds',
      'outrigger_event_loop_delay_last_interval_seconds',
    ])
      expect(named).toContain(wanted);
    expect([...named].filter((n) => !exposed.has(n))).toEqual([]);
  });
});

interface PromVector {
  readonly metric: Record<string, string>;
  readonly value: readonly [number, string];
}

describe('a real Prometheus server scraping a sidecar every second', () => {
  let sc: Sidecar;
  let prom: string;

  /** An instant query, at `atSeconds` (unix time) when given, so that several see the same window. */
  async function query(q: string, atSeconds?: number): Promise<PromVector[]> {
    const at = atSeconds === undefined ? '' : `&time=${atSeconds}`;
    const a = await httpGet(`${prom}/api/v1/query?query=${encodeURIComponent(q)}${at}`);
    const body = JSON.parse(a.text) as { status: string; error?: string; data?: { result: PromVector[] } };
    if (body.status !== 'success') throw new Error(`${q}: ${a.status} ${body.error ?? a.text}`);
    return body.data!.result;
  }

  async function scalar(q: string, atSeconds?: number): Promise<number | undefined> {
    const r = await query(q, atSeconds);
    return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
  }

  beforeAll(async () => {
    const app = await startApp();
    sc = await startSidecar(proxyConfig([app.address]), { workers: 2 });
    const dir = tempDir('outrigger-prometheus-');
    const target = sc.admin.replace(/^http:\/\//, '');
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: outrigger\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const port = await deadPort();
    prom = `http://127.0.0.1:${port}`;
    const child = spawn(
      'prometheus',
      [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (log = (log + s).slice(-4000)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    track({
      close: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    });
    await eventually(
      async () => ((await httpGet(`${prom}/-/ready`).catch(() => null))?.status === 200 ? true : undefined),
      `prometheus ready (log: ${log})`,
      20_000,
      100,
    );
    // The counters' zero is stored before any request: increase() then needs no extrapolation at the start.
    await eventually(async () => ((await scalar('sum(outrigger_requests_total)')) === 0 ? true : undefined), 'a first scrape at zero', 15_000, 200);
  }, 60_000);
  afterAll(closeAll);

  it('stores what /stats counts; increase, rate and histogram_quantile agree with it; the dashboard evaluates', async () => {
    const sent = 400;
    const answers = await sendMany((i) => sc.url(`/v1/prom/${i}`), sent, 4);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const main = async (): Promise<{ requests: number; p99_response_latency: number } | undefined> =>
      ((await adminCall(sc, 'GET', '/stats')).json as { listeners: Array<{ name: string; requests: number; p99_response_latency: number }> }).listeners.find(
        (l) => l.name === 'main' && l.requests === sent,
      );
    const stats = await eventually(main, `/stats counting the ${sent} requests`, 15_000, 100);
    await eventually(
      async () => ((await scalar('sum(outrigger_requests_total{listener="main"})')) === sent ? true : undefined),
      'prometheus storing them',
      15_000,
      200,
    );

    // Every sample from the zero to the total lies in the window: increase ≥ the count, and only the
    // extrapolation to the window's end (at most about one scrape interval's worth) adds to it.
    const now = Date.now() / 1000;
    const increase = (await scalar('sum(increase(outrigger_requests_total{listener="main"}[30s]))', now))!;
    expect(increase).toBeGreaterThanOrEqual(sent - 1e-6);
    expect(increase).toBeLessThanOrEqual(sent * 2);
    const rate = (await scalar('sum(rate(outrigger_requests_total{listener="main"}[30s]))', now))!;
    expect(rate).toBeGreaterThan(0);
    expect(rate * 30).toBeCloseTo(increase, 3);

    const p99 = (await scalar('histogram_quantile(0.99, sum by (le) (rate(outrigger_request_duration_seconds_bucket{listener="main"}[30s])))', now))!;
    // The bucket /metrics puts the /stats p99's hdr slot in (the slot's lowest value against the bounds).
    const slotLowestSeconds = valueFromIndex(countsIndex(Math.round(stats.p99_response_latency * 1000))) / 1e6;
    const i = DURATION_BUCKETS_SECONDS.findIndex((b) => slotLowestSeconds <= b);
    expect(i).toBeGreaterThanOrEqual(0);
    const lower = i === 0 ? 0 : DURATION_BUCKETS_SECONDS[i - 1]!;
    // histogram_quantile interpolates in floating point: a bound may come back a few ulps off.
    expect(p99).toBeGreaterThanOrEqual(lower * (1 - 1e-9));
    expect(p99).toBeLessThanOrEqual(DURATION_BUCKETS_SECONDS[i]! * (1 + 1e-9));

    for (const expr of dashboardExprs()) {
      const q = expr.replace(/\$__rate_interval/g, '30s').replace(/\$(job|instance)/g, '.*');
      if (q.startsWith('label_values(')) continue; // a Grafana function, not PromQL
      await expect(query(q), q).resolves.toBeInstanceOf(Array);
    }
  });
});

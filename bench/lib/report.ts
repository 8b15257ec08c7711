// Renders results.json into report.md (tables) and report.html (the same tables plus inline
// SVG charts: latency percentiles per fixed rate, CPU µs per request per config).

import type { ConnectionsReading } from './admin.js';
import { operandName, type Comparison } from './comparisons.js';
import { holTables } from './hol.js';
import { loopDelayTable, memoryTable } from './memory.js';
import type { BenchResults } from './results.js';
import type { Summary } from './stats.js';
import { barChart, esc } from './svg.js';

type Cell = string;

function num(v: number, digits: number): string {
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "median (min–max)" or just the median when there is one sample; "–" when none. */
export function fmtSummary(s: Summary | null | undefined, digits = 0, scale = 1): Cell {
  if (s === null || s === undefined) return '–';
  const m = num(s.median * scale, digits);
  if (s.n < 2 || s.min === s.max) return m;
  return `${m} (${num(s.min * scale, digits)}–${num(s.max * scale, digits)})`;
}

function fmtSigned(s: Summary | null | undefined, digits = 0): Cell {
  if (s === null || s === undefined) return '–';
  const sign = (v: number): string => `${v >= 0 ? '+' : ''}${num(v, digits)}`;
  if (s.n < 2 || s.min === s.max) return sign(s.median);
  return `${sign(s.median)} (${sign(s.min)}…${sign(s.max)})`;
}

function fmtRatio(s: Summary | null | undefined): Cell {
  if (s === null || s === undefined) return '–';
  if (s.n < 2 || s.min === s.max) return `${s.median.toFixed(2)}×`;
  return `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

function mib(kb: number | null | undefined): Cell {
  return kb === null || kb === undefined ? '–' : (kb / 1024).toFixed(1);
}

/** How the parts of a multi-proxy config are named in the report. */
const PART_LABEL: Readonly<Record<string, string>> = {
  client: 'client sidecar (plaintext in, to the server sidecar)',
  server: 'server sidecar (its inbound listener, plaintext to the upstream)',
};

export interface Table {
  readonly title: string;
  readonly note?: string;
  readonly head: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
}

/** The headline rates: 1000 and 2000 req/s when measured, else every measured rate. */
function headlineRates(r: BenchResults): number[] {
  const all = [...new Set(r.summary.flatMap((s) => s.rates.map((x) => x.rate)))].sort((a, b) => a - b);
  const pref = all.filter((x) => x === 1000 || x === 2000);
  return pref.length > 0 ? pref : all;
}

export function buildTables(r: BenchResults): Table[] {
  const tables: Table[] = [];
  const rates = headlineRates(r);
  tables.push({
    title: 'Headline',
    note: `wrk ${planText(r.meta.plan['connections'])} connections for req/s and CPU; median of ${r.meta.rounds} round(s), range in brackets. CPU is the proxy's whole process tree (all threads) from /proc; ratios are paired with nginx round by round.${
      r.summary.some((s) => s.multiProxy !== undefined)
        ? ` ${r.summary
            .filter((s) => s.multiProxy !== undefined)
            .map((s) => s.config)
            .join(
              ', ',
            )}: ${r.summary.find((s) => s.multiProxy !== undefined)?.multiProxy?.proxies ?? 2} proxies in series, CPU summed over all of them (see “Two-sidecar mTLS path”).`
        : ''
    }`,
    head: [
      'config',
      'req/s',
      'CPU µs/req',
      'CPU × nginx',
      'req/s × nginx',
      ...rates.map((x) => `p99 added @${x}/s (µs)`),
      'RSS idle MiB',
      'RSS loaded MiB',
      'errors',
      'non-2xx',
      'failed runs',
    ],
    rows: r.summary.map((s) => [
      s.config,
      fmtSummary(s.rps),
      s.config === 'direct' ? '0 (no proxy)' : fmtSummary(s.cpuUsPerReq, 1),
      fmtRatio(s.cpuRatioToNginx),
      fmtRatio(s.rpsRatioToNginx),
      ...rates.map((x) => (s.config === 'direct' ? '0' : fmtSigned(s.rates.find((q) => q.rate === x)?.addedP99Us))),
      mib(s.idleRssKb),
      s.loadedRssKb ? `${(s.loadedRssKb.median / 1024).toFixed(1)}` : '–',
      String(s.errors),
      String(s.non2xx),
      String(s.failedRuns),
    ]),
  });
  if ((r.comparisons ?? []).length > 0) tables.push(comparisonTable(r.comparisons ?? [], r.meta.rounds));
  const multi = r.summary.filter((s) => s.multiProxy !== undefined);
  if (multi.length > 0) {
    const first = multi[0]?.multiProxy;
    const single = first?.single ?? 'outrigger-1w';
    const n = first?.proxies ?? 2;
    const scale = (x: Summary | null | undefined, k: number): Summary | null =>
      x == null ? null : { median: x.median * k, min: x.min * k, max: x.max * k, n: x.n };
    const rows: Cell[][] = [];
    for (const s of multi) {
      const m = s.multiProxy;
      if (m === undefined) continue;
      rows.push([
        `${s.config} (${m.parts.map((p) => p.name).join(' + ')})`,
        fmtSummary(s.rps),
        fmtRatio(m.rpsRatioToSingle),
        fmtSummary(s.cpuUsPerReq, 1),
        fmtRatio(scale(m.cpuRatioToSingleTimesN, m.proxies)),
        fmtRatio(m.cpuRatioToSingleTimesN),
        fmtSigned(m.cpuOverSingleTimesNUs, 1),
      ]);
      for (const p of m.parts) {
        rows.push([`${s.config} · ${PART_LABEL[p.name] ?? p.name}`, '', '', fmtSummary(p.cpuUsPerReq, 1), fmtRatio(p.cpuRatioToSingle), '', '']);
      }
    }
    rows.push([`${n} × ${single}`, '–', '–', fmtSummary(first?.singleTimesN, 1), `${n.toFixed(2)}×`, '1.00×', '0']);
    tables.push({
      title: 'Two-sidecar mTLS path',
      note: `wrk → client sidecar (plaintext listener, 1 worker) → pooled persistent mTLS → server sidecar (inbound listener tls: {mode: mtls} on node:https or, in the -strict configs, the strict engine, on each of its workers: 1 in outrigger-mtls, N in outrigger-mtls-Nw) → upstream; outrigger-pair-plain is the same pair over plaintext. This is a path of ${n} proxies: its CPU µs/req is every sidecar's whole process tree summed, so compare it with ${n} × ${single} (one plaintext proxy, measured in the same rounds), not with one proxy or with nginx. The per-sidecar rows split that CPU; the server row is the cost of the inbound mTLS listener plus its plaintext hop to the upstream. req/s is the whole path's, with both sidecars and wrk and the upstream sharing the machine. Ratios are paired round by round.`,
      head: ['config / sidecar', 'req/s', `req/s × ${single}`, 'CPU µs/req', `CPU × ${single}`, `CPU × (${n} × ${single})`, `CPU − ${n} × ${single} (µs/req)`],
      rows,
    });
  }
  if ((r.connections ?? []).some((c) => c.listeners === null || c.listeners.length > 0)) tables.push(connectionsTable(r.connections ?? []));
  if ((r.connections ?? []).some((c) => (c.workers ?? []).length > 0)) tables.push(workersTable(r.connections ?? []));
  if ((r.threads ?? []).length > 0) tables.push(threadsTable(r));
  if (Object.keys(r.idleRssKb).length > 0) tables.push(memoryTable(r));
  if ((r.loopDelay ?? []).length > 0) tables.push(loopDelayTable(r.loopDelay ?? []));
  if (r.hol !== undefined) tables.push(...holTables(r.hol));
  const allRates = [...new Set(r.summary.flatMap((s) => s.rates.map((x) => x.rate)))].sort((a, b) => a - b);
  for (const rate of allRates) {
    tables.push({
      title: `Fixed rate ${rate} req/s (paced wrk)`,
      note: 'Latency in µs measured by wrk from each request’s send; “added” is the config minus direct in the same round. “CPU wait” is the time per request the config’s threads were ready to run but had no CPU (schedstat run_delay summed over every thread of its process trees: behind other threads, or while an idle vCPU was woken): the machine’s delay, not the proxy’s work, which adds to the latency when the thread is on the request path. “late” counts send slots that found every connection busy (then latency understates queueing).',
      head: ['config', 'achieved req/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'added p50', 'added p99', 'added p99.9', 'CPU µs/req', 'CPU wait µs/req', 'late'],
      rows: r.summary.map((s) => {
        const q = s.rates.find((x) => x.rate === rate);
        return [
          s.config,
          fmtSummary(q?.achieved),
          fmtSummary(q?.p50Us),
          fmtSummary(q?.p90Us),
          fmtSummary(q?.p99Us),
          fmtSummary(q?.p999Us),
          fmtSummary(q?.maxUs),
          fmtSigned(q?.addedP50Us),
          fmtSigned(q?.addedP99Us),
          fmtSigned(q?.addedP999Us),
          s.config === 'direct' ? '–' : fmtSummary(q?.cpuUsPerReq, 1),
          fmtSummary(q?.waitUsPerReq, 1), // absent for direct (no process of its own) and for runs before 2026-12-07
          String(q?.late ?? '–'),
        ];
      }),
    });
  }
  tables.push({
    title: 'autocannon (as users see it)',
    note: `Programmatic autocannon, ${planText(r.meta.plan['connections'])} connections, in the harness process.`,
    head: ['config', 'req/s', 'p99 ms'],
    rows: r.summary.map((s) => [s.config, fmtSummary(s.autocannon.rps), fmtSummary(s.autocannon.p99Ms, 2)]),
  });
  const variants = [...new Set(r.summary.flatMap((s) => s.variants.map((v) => v.variant)))];
  if (variants.length > 0) {
    tables.push({
      title: 'Body variants (wrk, max throughput)',
      head: ['config', ...variants.flatMap((v) => [`${v} req/s`, `${v} CPU µs/req`, `${v} CPU × nginx`])],
      rows: r.summary.map((s) => [
        s.config,
        ...variants.flatMap((v) => {
          const x = s.variants.find((q) => q.variant === v);
          return [fmtSummary(x?.rps), s.config === 'direct' ? '–' : fmtSummary(x?.cpuUsPerReq, 1), fmtRatio(x?.cpuRatioToNginx)];
        }),
      ]),
    });
  }
  tables.push({
    title: 'Context: upstream CPU and max-load latency',
    note: 'The shared upstream’s CPU per request during each throughput run (should be alike for all configs), and wrk’s p99 at max load (not a latency benchmark: see the fixed-rate tables).',
    head: ['config', 'upstream CPU µs/req', 'p99 at max load (µs)'],
    rows: r.summary.map((s) => [s.config, fmtSummary(s.upstreamCpuUsPerReq, 1), fmtSummary(s.p99UsAtMax)]),
  });
  tables.push({
    title: 'Configurations',
    head: ['config', 'what'],
    rows: [...r.configs.map((c) => [c.name, c.description]), ...r.skipped.map((s) => [s.name, `**skipped**: ${s.reason}`])],
  });
  return tables;
}

/** "≤ 1.30: yes" / "≤ 1.30: NO" / "–". */
function fmtTarget(c: Comparison): Cell {
  if (c.target === undefined) return '–';
  const bound = `≤ ${c.target.toFixed(2)}`;
  return c.withinTarget === null ? bound : `${bound}: ${c.withinTarget ? 'yes' : 'NO'}`;
}

function comparisonTable(comparisons: readonly Comparison[], rounds: number): Table {
  return {
    title: 'Paired ratios',
    note: `CPU µs per request of a ÷ b, paired round by round (the median of ${rounds} per-round ratios, range in brackets; not the ratio of the medians). A “· server” side is the server sidecar's process tree alone. req/s ratio is of the whole configs. Targets from issue 19.`,
    head: ['ratio', 'a', 'b', 'a CPU µs/req', 'b CPU µs/req', 'CPU/req a ÷ b', 'target', 'req/s a ÷ b'],
    rows: comparisons.map((c) => [
      c.label,
      operandName(c.a),
      operandName(c.b),
      fmtSummary(c.aCpuUsPerReq, 1),
      fmtSummary(c.bCpuUsPerReq, 1),
      fmtRatio(c.cpuRatio),
      fmtTarget(c),
      fmtRatio(c.rpsRatio),
    ]),
  };
}

/** "1: 27 (52 %) · 2: 25 (48 %)". */
function fmtAccepted(by: Readonly<Record<string, number>>): Cell {
  const total = Object.values(by).reduce((a, b) => a + b, 0);
  return Object.entries(by)
    .map(([w, n]) => `${w}: ${n}${total > 0 ? ` (${Math.round((n / total) * 100)} %)` : ''}`)
    .join(' · ');
}

function connectionsTable(readings: readonly ConnectionsReading[]): Table {
  const rows: Cell[][] = [];
  for (const c of readings) {
    const who = c.part === c.config ? c.config : `${c.config} · ${c.part}`;
    if (c.listeners === null) rows.push([who, '–', c.note ?? 'no reading']);
    else for (const l of c.listeners) rows.push([who, l.listener, fmtAccepted(l.accepted_by_worker)]);
  }
  return {
    title: 'Connections accepted per worker',
    note: 'GET /stats `connections` of each outrigger process after the last round: connections each worker accepted on each listener over the whole run (warm-ups, probes and every round; pooled connections closed after 60 s idle between rounds are opened again). A process whose build counts none of its listeners (earlier builds counted node-engine and TLS listeners only) has no row.',
    head: ['config · process', 'listener', 'accepted by worker id'],
    rows,
  };
}

function workersTable(readings: readonly ConnectionsReading[]): Table {
  const rows: Cell[][] = [];
  for (const c of readings) {
    const who = c.part === c.config ? c.config : `${c.config} · ${c.part}`;
    for (const w of c.workers ?? [])
      rows.push([who, String(w.worker), w.requests.toLocaleString('en-US'), w.connections_accepted === null ? '– (uws)' : String(w.connections_accepted)]);
  }
  return {
    title: 'Requests and connections per worker',
    note: 'GET /stats `workers` of each outrigger process after the last round, since it started (warm-ups, probes and every round): requests each worker finished and client connections it accepted (uws listeners count none).',
    head: ['config · process', 'worker', 'requests', 'connections accepted'],
    rows,
  };
}

function threadsTable(r: BenchResults): Table {
  return {
    title: 'CPU per thread',
    note: 'CPU µs per request of each process’s threads in the throughput runs (median, range over rounds). Node names every thread “node”, so workers are told apart by their CPU: with 1 worker the busiest other thread is the worker and the 2nd a V8/libuv helper; with 2 workers that both carry load the two busiest are the workers and “2nd ÷ busiest” is near 1. “rest” is every other thread (GC, libuv pool).',
    head: ['config · process', 'main thread', 'busiest other thread', '2nd busiest', 'rest', '2nd ÷ busiest'],
    rows: (r.threads ?? []).map((t) => [
      t.process === t.config ? t.config : `${t.config} · ${t.process}`,
      fmtSummary(t.main, 1),
      fmtSummary(t.busiest, 1),
      fmtSummary(t.second, 1),
      fmtSummary(t.rest, 1),
      fmtRatio(t.balance),
    ]),
  };
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderMarkdown(r: BenchResults): string {
  const m = r.meta;
  const lines: string[] = [];
  lines.push('# outrigger benchmark report', '');
  lines.push(
    `${m.startedAt} → ${m.finishedAt} · ${m.quick ? 'quick' : 'full'} run, ${m.rounds} round(s), configs interleaved (order rotated each round) · ${m.host.cpus} × ${m.host.cpuModel} · Node ${m.host.node} · Linux ${m.host.kernel} · load average ${m.host.loadavgStart.map((x) => x.toFixed(2)).join('/')} at start, ${m.host.loadavgEnd.map((x) => x.toFixed(2)).join('/')} at end`,
    '',
  );
  lines.push(
    `Tools: ${m.tools.map((t) => (t.path ? `${t.tool} (${t.version ?? '?'})` : `${t.tool}: missing — ${t.reason ?? ''}`)).join(' · ')} · upstream: ${m.upstream}`,
    '',
  );
  if (r.skipped.length > 0) {
    lines.push('**Skipped configs:**', '');
    for (const s of r.skipped) lines.push(`- \`${s.name}\`: ${mdCell(s.reason)}`);
    lines.push('');
  }
  for (const t of buildTables(r)) {
    lines.push(`## ${t.title}`, '');
    if (t.note) lines.push(t.note, '');
    lines.push(`| ${t.head.map(mdCell).join(' | ')} |`);
    const numeric = t.title !== 'Configurations';
    lines.push(`|${t.head.map((_, i) => (i === 0 || !numeric ? '---' : '---:')).join('|')}|`);
    for (const row of t.rows) lines.push(`| ${row.map(mdCell).join(' | ')} |`);
    lines.push('');
  }
  return lines.join('\n');
}

export function renderHtml(r: BenchResults): string {
  const parts: string[] = [];
  parts.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">', '<title>outrigger benchmark report</title>');
  parts.push(
    '<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}p.note{color:#555;font-size:13px}svg{display:block;margin:1em 0}</style>',
  );
  parts.push('</head>', '<body>', '<h1>outrigger benchmark report</h1>');
  const m = r.meta;
  parts.push(
    `<p>${esc(`${m.startedAt} → ${m.finishedAt} · ${m.quick ? 'quick' : 'full'} run, ${m.rounds} round(s) · ${m.host.cpus} × ${m.host.cpuModel} · Node ${m.host.node}`)}</p>`,
  );
  if (r.skipped.length > 0) {
    parts.push('<p><strong>Skipped configs:</strong></p><ul>');
    for (const s of r.skipped) parts.push(`<li><code>${esc(s.name)}</code>: ${esc(s.reason)}</li>`);
    parts.push('</ul>');
  }
  parts.push('<h2>Charts</h2>');
  const configs = r.summary.filter((s) => s.config !== 'direct');
  parts.push(
    barChart({
      title: 'CPU µs per request of the proxy process tree (median, range across rounds)',
      unit: 'µs/req',
      groups: configs.map((s) => s.config),
      series: [{ name: 'CPU µs/req', values: configs.map((s) => s.cpuUsPerReq) }],
    }),
  );
  const rates = [...new Set(r.summary.flatMap((s) => s.rates.map((x) => x.rate)))].sort((a, b) => a - b);
  for (const rate of rates) {
    parts.push(
      barChart({
        title: `Latency at ${rate} req/s (µs, median with range)`,
        unit: 'µs',
        groups: ['p50', 'p90', 'p99', 'p99.9'],
        series: r.summary.map((s) => {
          const q = s.rates.find((x) => x.rate === rate);
          return { name: s.config, values: [q?.p50Us ?? null, q?.p90Us ?? null, q?.p99Us ?? null, q?.p999Us ?? null] };
        }),
      }),
    );
  }
  for (const t of buildTables(r)) {
    parts.push(`<h2>${esc(t.title)}</h2>`);
    if (t.note) parts.push(`<p class="note">${esc(t.note)}</p>`);
    parts.push('<table>', `<tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`);
    for (const row of t.rows) parts.push(`<tr>${row.map((c) => `<td>${esc(c.replace(/\*\*/g, ''))}</td>`).join('')}</tr>`);
    parts.push('</table>');
  }
  parts.push('</body>', '</html>', '');
  return parts.join('\n');
}

/** A value of the run's plan as text (`''` when absent; numbers and strings as they are, anything else as JSON). */
function planText(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

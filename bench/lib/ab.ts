// The pure part of `npm run bench:ab` (bench/ab.ts): the order of the two builds in each round
// (ABBA…: base first in odd rounds, head first in even ones, so a drift of the machine during a
// round does not always favour the one measured first), one round's numbers per build from the
// raw run records, the medians and ranges across rounds, the head ÷ base ratios paired round by
// round, and the tables printed on stdout and written to report.md.

import type { RateRecord, RunRecord, ThroughputRecord } from './measure.js';
import { summarize, type Summary } from './stats.js';
import { totalWrkErrors } from './wrk.js';

export type Side = 'base' | 'head';

/** A reference proxy measured beside both builds (started by lib/targets.ts, found/installed by lib/peers.ts). */
export type PeerName = 'nginx' | 'haproxy';
export const PEER_NAMES: readonly PeerName[] = ['nginx', 'haproxy'];

/**
 * What both builds are measured as (`--path`): one sidecar, or two in series as in npm run bench's
 * hop section (lib/targets.ts, startPair: a client sidecar with a uws listener, a server sidecar
 * with the `--engine` listener, over mTLS pipelined or at depth 1, or over plaintext).
 */
export interface AbPath {
  readonly name: string;
  readonly kind: 'outrigger' | 'outrigger-mtls' | 'outrigger-pair';
  readonly pipelineDepth?: number;
  readonly description: string;
}

export const AB_PATHS: readonly AbPath[] = [
  { name: 'single', kind: 'outrigger', description: 'one sidecar' },
  { name: 'mtls', kind: 'outrigger-mtls', description: "two sidecars over mTLS, pipelined (outrigger's default pipeline_depth)" },
  { name: 'mtls-depth1', kind: 'outrigger-mtls', pipelineDepth: 1, description: 'two sidecars over mTLS, one request per connection at a time' },
  { name: 'plain-pair', kind: 'outrigger-pair', description: 'two sidecars over plaintext HTTP/1.1' },
];

/**
 * `--path` (default single). A path of two sidecars has no reference peer here (a single nginx is
 * not its yardstick; npm run bench measures two nginx in series beside it): with --peer it throws.
 */
export function parsePath(value: string | undefined, peers: readonly string[] | undefined): AbPath {
  const path = AB_PATHS.find((p) => p.name === (value ?? 'single'));
  if (path === undefined) throw new Error(`--path: not a known path: ${JSON.stringify(value)} (one of ${AB_PATHS.map((p) => p.name).join(', ')})`);
  if (path.kind !== 'outrigger' && (peers ?? []).length > 0) {
    throw new Error(`--path ${path.name} is two sidecars in series: it has no reference peer here (npm run bench measures nginx-pair beside it)`);
  }
  return path;
}

/** What was asked for on the command line: `explicit` peers must start; the default one is used when installed. */
export interface PeerChoice {
  readonly peers: readonly PeerName[];
  readonly explicit: boolean;
}

/**
 * `--peer` values (repeatable, each a comma list) and `--no-peer`: no --peer → nginx, when
 * installed (explicit false); --no-peer → none. Unknown names and --peer with --no-peer throw.
 */
export function parsePeers(values: readonly string[] | undefined, noPeer: boolean): PeerChoice {
  const given = (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim().toLowerCase());
  if (noPeer && given.length > 0) throw new Error('--peer and --no-peer contradict each other');
  if (noPeer) return { peers: [], explicit: true };
  if (given.length === 0) return { peers: ['nginx'], explicit: false };
  const peers: PeerName[] = [];
  for (const g of given) {
    if (!(PEER_NAMES as readonly string[]).includes(g)) throw new Error(`--peer: not a known peer: ${JSON.stringify(g)} (one of ${PEER_NAMES.join(', ')})`);
    if (!peers.includes(g as PeerName)) peers.push(g as PeerName);
  }
  return { peers, explicit: true };
}

/** Which build goes first in round `round` (1-based): ABBA… */
export function abOrder(round: number): readonly [Side, Side] {
  if (!Number.isInteger(round) || round < 1) throw new Error(`round must be an integer ≥ 1: ${round}`);
  return round % 2 === 1 ? ['base', 'head'] : ['head', 'base'];
}

/**
 * The order of round `round` with reference peers: base and head in their ABBA order, the peers
 * as one block whose slot cycles first, middle, last (and, with two peers, whose own order
 * rotates). With one peer, 3 rounds put every config in every place once (a Latin square: N B H,
 * H N B, B H N), 6 rounds twice. Without peers it is abOrder's.
 */
export function roundOrder(round: number, peers: readonly PeerName[] = []): readonly (Side | PeerName)[] {
  const pair = abOrder(round);
  if (peers.length === 0) return pair;
  const k = (round - 1) % peers.length;
  const block = [...peers.slice(k), ...peers.slice(0, k)];
  const slot = (round - 1) % (pair.length + 1);
  return [...pair.slice(0, slot), ...block, ...pair.slice(slot)];
}

/** One build's numbers in one round; null where the run failed or did not measure it. */
export interface SideRound {
  readonly rps: number | null;
  readonly cpuUsPerReq: number | null;
  readonly upstreamCpuUsPerReq: number | null;
  /** CPU µs/request of the sidecar's process tree in the paced run: what a sidecar that is not saturated pays. */
  readonly rateCpuUsPerReq: number | null;
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly p999Us: number | null;
  /** Paced run: send slots that went out late (coordinated omission, see bench/README.md). */
  readonly late: number | null;
  /** wrk socket errors + status ≥ 400 of both runs. */
  readonly errors: number;
  /** Error texts of failed runs. */
  readonly failures: readonly string[];
}

export interface AbRound {
  readonly round: number;
  /** Builds and peers in the order they ran. */
  readonly order: readonly (Side | PeerName)[];
  readonly base: SideRound;
  readonly head: SideRound;
  /** The reference peers' numbers, by name (absent when the run had none). */
  readonly peers?: Readonly<Partial<Record<PeerName, SideRound>>>;
  /** 1-minute load average when the round started (null: not recorded). */
  readonly loadAvg1: number | null;
}

/** The GET / throughput run and the paced run at `rate` of `side` in `round`, as numbers. */
export function sideRound(runs: readonly RunRecord[], side: Side | PeerName, round: number, rate: number): SideRound {
  const tp = runs.find((r): r is ThroughputRecord => r.kind === 'throughput' && r.config === side && r.round === round && r.variant === 'GET /');
  const paced = runs.find((r): r is RateRecord => r.kind === 'rate' && r.config === side && r.round === round && r.rate === rate);
  const failures = [tp, paced].flatMap((r) => (r?.error !== undefined ? [`${r.kind}: ${r.error}`] : []));
  const ok = <T>(v: T | undefined | null): T | null => (v === undefined ? null : v);
  return {
    rps: ok(tp?.wrk?.requestsPerSec),
    cpuUsPerReq: ok(tp?.cpuUsPerReq),
    upstreamCpuUsPerReq: ok(tp?.upstreamCpuUsPerReq),
    rateCpuUsPerReq: ok(paced?.cpuUsPerReq),
    p50Us: ok(paced?.wrk?.latency.p50Us),
    p99Us: ok(paced?.wrk?.latency.p99Us),
    p999Us: ok(paced?.wrk?.latency.p999Us),
    late: ok(paced?.wrk?.late),
    errors: (tp?.wrk !== undefined ? totalWrkErrors(tp.wrk) : 0) + (paced?.wrk !== undefined ? totalWrkErrors(paced.wrk) : 0),
    failures,
  };
}

/** Every round of a run, in order (with the peers' numbers when `peers` is not empty). */
export function abRounds(
  runs: readonly RunRecord[],
  rounds: number,
  rate: number,
  loadAvg1: readonly number[] = [],
  peers: readonly PeerName[] = [],
): AbRound[] {
  const out: AbRound[] = [];
  for (let round = 1; round <= rounds; round++) {
    out.push({
      round,
      order: roundOrder(round, peers),
      base: sideRound(runs, 'base', round, rate),
      head: sideRound(runs, 'head', round, rate),
      ...(peers.length > 0 ? { peers: Object.fromEntries(peers.map((p) => [p, sideRound(runs, p, round, rate)])) } : {}),
      loadAvg1: loadAvg1[round - 1] ?? null,
    });
  }
  return out;
}

/** One build's or peer's numbers in a round. */
export function configRound(r: AbRound, config: Side | PeerName): SideRound | null {
  return config === 'base' || config === 'head' ? r[config] : (r.peers?.[config] ?? null);
}

/** The peers a run measured, in the order of its first round's record. */
function peersOf(rounds: readonly AbRound[]): PeerName[] {
  return Object.keys(rounds[0]?.peers ?? {}) as PeerName[];
}

export type MetricKey = 'cpuUsPerReq' | 'rps' | 'rateCpuUsPerReq' | 'p50Us' | 'p99Us' | 'p999Us' | 'upstreamCpuUsPerReq';

export interface MetricSpec {
  readonly key: MetricKey;
  readonly label: string;
  readonly better: 'lower' | 'higher';
  readonly digits: number;
}

/** The compared numbers, headline first. */
export function abMetrics(rate: number): readonly MetricSpec[] {
  return [
    { key: 'cpuUsPerReq', label: 'CPU µs/req (sidecar process tree)', better: 'lower', digits: 1 },
    { key: 'rps', label: 'req/s (wrk -t1 -c50)', better: 'higher', digits: 0 },
    { key: 'rateCpuUsPerReq', label: `CPU µs/req @${rate}/s (sidecar process tree)`, better: 'lower', digits: 1 },
    { key: 'p50Us', label: `p50 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'p99Us', label: `p99 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'p999Us', label: `p99.9 µs @${rate}/s`, better: 'lower', digits: 0 },
    { key: 'upstreamCpuUsPerReq', label: 'upstream CPU µs/req (context)', better: 'lower', digits: 1 },
  ];
}

export interface MetricSummary extends MetricSpec {
  readonly base: Summary | null;
  readonly head: Summary | null;
  /** head ÷ base of each round where both were measured (and base ≠ 0), by round. */
  readonly ratios: readonly { readonly round: number; readonly ratio: number }[];
  /** Median and range of `ratios`. */
  readonly ratio: Summary | null;
  /** Rounds in which head was strictly better than base on this metric. */
  readonly headBetter: number;
}

/** Medians and ranges of both builds, and head ÷ base paired round by round, per metric. */
export function summarizeAb(rounds: readonly AbRound[], metrics: readonly MetricSpec[]): MetricSummary[] {
  return metrics.map((m) => {
    const ratios: { round: number; ratio: number }[] = [];
    let headBetter = 0;
    for (const r of rounds) {
      const a = r.base[m.key];
      const b = r.head[m.key];
      if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) continue;
      ratios.push({ round: r.round, ratio: b / a });
      if (m.better === 'lower' ? b < a : b > a) headBetter++;
    }
    return {
      ...m,
      base: summarize(rounds.map((r) => r.base[m.key])),
      head: summarize(rounds.map((r) => r.head[m.key])),
      ratios,
      ratio: summarize(ratios.map((x) => x.ratio)),
      headBetter,
    };
  });
}

function num(v: number | null, digits: number): string {
  return v === null ? '–' : v.toFixed(digits);
}

function medRange(s: Summary | null, digits: number): string {
  if (s === null) return '–';
  return s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** The per-round table: one row per build per round, in the order they ran. */
export function roundsTable(rounds: readonly AbRound[], rate: number): string {
  const lines = [
    `| round | build | req/s | CPU µs/req | upstream µs/req | CPU µs/req @${rate}/s | p50 µs @${rate}/s | p99 µs | p99.9 µs | late | errors | load avg at round start |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rounds) {
    r.order.forEach((side, i) => {
      const s = configRound(r, side);
      if (s === null) return;
      const failed = s.failures.length > 0 ? ` ⚠ ${s.failures.join('; ').replace(/\|/g, '/').replace(/\s+/g, ' ').slice(0, 160)}` : '';
      lines.push(
        `| ${i === 0 ? r.round : ''} | ${side}${failed} | ${num(s.rps, 0)} | ${num(s.cpuUsPerReq, 1)} | ${num(s.upstreamCpuUsPerReq, 1)} | ${num(s.rateCpuUsPerReq, 1)} | ${num(s.p50Us, 0)} | ${num(s.p99Us, 0)} | ${num(s.p999Us, 0)} | ${num(s.late, 0)} | ${s.errors} | ${i === 0 ? num(r.loadAvg1, 1) : ''} |`,
      );
    });
  }
  return lines.join('\n');
}

/** The summary table: median (range) of each build, and head ÷ base paired by round. */
export function summaryTable(summary: readonly MetricSummary[]): string {
  const lines = [
    '| metric | base median (range) | head median (range) | head ÷ base, paired per round: median (range) | per round | head better in |',
    '|---|---:|---:|---:|---|---:|',
  ];
  for (const m of summary) {
    const d = m.digits;
    lines.push(
      `| ${m.label} (${m.better} is better) | ${medRange(m.base, d)} | ${medRange(m.head, d)} | **${medRange(m.ratio, 3)}** | ${m.ratios.map((x) => x.ratio.toFixed(3)).join(' ') || '–'} | ${m.ratios.length > 0 ? `${m.headBetter} of ${m.ratios.length}` : '–'} |`,
    );
  }
  return lines.join('\n');
}

/** One line on the headline (CPU/request): how far head moved and whether every round agrees. */
export function headline(summary: readonly MetricSummary[]): string {
  const cpu = summary.find((m) => m.key === 'cpuUsPerReq');
  if (cpu?.ratio == null) return 'CPU µs/req: no round measured both builds.';
  const pct = (cpu.ratio.median - 1) * 100;
  const n = cpu.ratios.length;
  const chance = `${(chanceAllAgree(n) * 100).toFixed(n > 7 ? 1 : 0)} %`;
  const agree =
    cpu.ratio.max < 1 || cpu.ratio.min > 1
      ? `head ${cpu.ratio.max < 1 ? 'lower' : 'higher'} in all ${n} rounds (with no difference at all, ${n} rounds agree by chance ${chance} of the time${n < 5 ? ': run more rounds' : ''})`
      : `the rounds disagree (head lower in ${cpu.headBetter} of ${n}): within this run's noise`;
  return `CPU µs/req: head ÷ base ${cpu.ratio.median.toFixed(3)} (${pct >= 0 ? '+' : ''}${pct.toFixed(1)} %), range ${cpu.ratio.min.toFixed(3)}–${cpu.ratio.max.toFixed(3)}; ${agree}.`;
}

/** Ratios of one build to a peer, paired by round, with their median and range. */
export interface PairedToPeer {
  /** build ÷ peer CPU µs/req of each round where both were measured (and the peer's ≠ 0). */
  readonly ratios: readonly { readonly round: number; readonly ratio: number }[];
  readonly ratio: Summary | null;
}

/** One reference peer beside both builds: CPU/request paired per round, and the fixed-rate tail of all three. */
export interface PeerSummary {
  readonly peer: PeerName;
  readonly cpuUsPerReq: { readonly base: Summary | null; readonly head: Summary | null; readonly peer: Summary | null };
  readonly baseToPeer: PairedToPeer;
  readonly headToPeer: PairedToPeer;
  /** The same at the fixed rate (paced run). */
  readonly rateCpuUsPerReq: { readonly base: Summary | null; readonly head: Summary | null; readonly peer: Summary | null };
  readonly baseToPeerAtRate: PairedToPeer;
  readonly headToPeerAtRate: PairedToPeer;
  readonly p99Us: { readonly base: Summary | null; readonly head: Summary | null; readonly peer: Summary | null };
  readonly p999Us: { readonly base: Summary | null; readonly head: Summary | null; readonly peer: Summary | null };
}

function pairToPeer(rounds: readonly AbRound[], side: Side, peer: PeerName, key: 'cpuUsPerReq' | 'rateCpuUsPerReq'): PairedToPeer {
  const ratios: { round: number; ratio: number }[] = [];
  for (const r of rounds) {
    const a = r[side][key];
    const b = r.peers?.[peer]?.[key] ?? null;
    if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) continue;
    ratios.push({ round: r.round, ratio: a / b });
  }
  return { ratios, ratio: summarize(ratios.map((x) => x.ratio)) };
}

/** Per peer of the run: base ÷ peer and head ÷ peer CPU µs/req paired by round, and the three p99/p99.9. */
export function summarizePeers(rounds: readonly AbRound[]): PeerSummary[] {
  return peersOf(rounds).map((peer) => {
    const of = (key: 'cpuUsPerReq' | 'rateCpuUsPerReq' | 'p99Us' | 'p999Us'): PeerSummary['p99Us'] => ({
      base: summarize(rounds.map((r) => r.base[key])),
      head: summarize(rounds.map((r) => r.head[key])),
      peer: summarize(rounds.map((r) => r.peers?.[peer]?.[key] ?? null)),
    });
    return {
      peer,
      cpuUsPerReq: of('cpuUsPerReq'),
      baseToPeer: pairToPeer(rounds, 'base', peer, 'cpuUsPerReq'),
      headToPeer: pairToPeer(rounds, 'head', peer, 'cpuUsPerReq'),
      rateCpuUsPerReq: of('rateCpuUsPerReq'),
      baseToPeerAtRate: pairToPeer(rounds, 'base', peer, 'rateCpuUsPerReq'),
      headToPeerAtRate: pairToPeer(rounds, 'head', peer, 'rateCpuUsPerReq'),
      p99Us: of('p99Us'),
      p999Us: of('p999Us'),
    };
  });
}

/** The beside-the-peer table: one row per peer and number; the ratios are paired per round (CPU, at saturation and at the fixed rate). */
export function peerTable(peers: readonly PeerSummary[], rate: number): string {
  const lines = [
    '| beside | metric | base median (range) | head median (range) | peer median (range) | base ÷ peer, paired per round: median (range) | head ÷ peer, paired per round: median (range) | per round, base ÷ / head ÷ |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  const perRound = (base: PairedToPeer, head: PairedToPeer): string =>
    base.ratios
      .map((b) => {
        const h = head.ratios.find((x) => x.round === b.round);
        return `${b.ratio.toFixed(2)}/${h === undefined ? '–' : h.ratio.toFixed(2)}`;
      })
      .join(' ') || '–';
  for (const p of peers) {
    for (const [label, c, base, head] of [
      ['CPU µs/req (lower is better)', p.cpuUsPerReq, p.baseToPeer, p.headToPeer],
      [`CPU µs/req @${rate}/s (lower is better)`, p.rateCpuUsPerReq, p.baseToPeerAtRate, p.headToPeerAtRate],
    ] as const) {
      lines.push(
        `| ${p.peer} | ${label} | ${medRange(c.base, 1)} | ${medRange(c.head, 1)} | ${medRange(c.peer, 1)} | **${medRange(base.ratio, 3)}** | **${medRange(head.ratio, 3)}** | ${perRound(base, head)} |`,
      );
    }
    for (const [label, t] of [
      [`p99 µs @${rate}/s`, p.p99Us],
      [`p99.9 µs @${rate}/s`, p.p999Us],
    ] as const) {
      lines.push(`| ${p.peer} | ${label} | ${medRange(t.base, 0)} | ${medRange(t.head, 0)} | ${medRange(t.peer, 0)} | | | |`);
    }
  }
  return lines.join('\n');
}

/** One line per peer: where both builds stand against it on CPU/request, and its tail at the fixed rate. */
export function peerHeadline(p: PeerSummary, rate: number): string {
  const ratio = (x: PairedToPeer): string =>
    x.ratio === null ? 'not measured' : `${x.ratio.median.toFixed(2)}× (${x.ratio.min.toFixed(2)}–${x.ratio.max.toFixed(2)})`;
  const n = Math.max(p.baseToPeer.ratios.length, p.headToPeer.ratios.length);
  const tail = (s: Summary | null): string => (s === null ? '–' : `${s.median.toFixed(0)} µs`);
  return `Beside ${p.peer}, CPU µs/req paired per round over ${n} round${n === 1 ? '' : 's'}: base ${ratio(p.baseToPeer)} ${p.peer}, head ${ratio(p.headToPeer)} ${p.peer} (@${rate}/s: base ${ratio(p.baseToPeerAtRate)}, head ${ratio(p.headToPeerAtRate)}); ${p.peer} p99 ${tail(p.p99Us.peer)}, p99.9 ${tail(p.p999Us.peer)} @${rate}/s (median).`;
}

/** Chance that n paired rounds all fall on one side of 1 when the builds do not differ: 2 × 0.5ⁿ (two-sided sign test). */
export function chanceAllAgree(n: number): number {
  return n <= 0 ? 1 : Math.min(1, 2 * 0.5 ** n);
}

/**
 * A warning when the 1-minute load average exceeded the CPU count at the start or the end: other
 * processes then compete for the cores, and a Node sidecar's CPU per request inflates under
 * contention, unevenly from one run to the next (an A/B of two builds without any request-path
 * change read 2.4× at load 20 on 2 CPUs).
 */
export function loadWarning(loadStart: readonly number[], loadEnd: readonly number[], cpuCount: number): string | null {
  const worst = Math.max(loadStart[0] ?? 0, loadEnd[0] ?? 0);
  if (worst <= cpuCount) return null;
  return `load average up to ${worst.toFixed(1)} on ${cpuCount} CPUs: other processes competed for the cores, and CPU µs/req inflates under contention, unevenly between runs — rerun on a quieter machine before trusting a difference`;
}

/**
 * report.md below its header (which describes the builds and the machine): the per-round table,
 * the summary and its headline, each reference peer beside both builds, then every warning as a
 * ⚠ line.
 */
export function reportSections(
  rounds: readonly AbRound[],
  summary: readonly MetricSummary[],
  besidePeers: readonly PeerSummary[],
  rate: number,
  warnings: readonly string[],
): string[] {
  const names = besidePeers.map((p) => p.peer).join(' and ');
  const peers =
    besidePeers.length === 0
      ? []
      : ['', `## Beside ${names} (same run, same upstream)`, '', peerTable(besidePeers, rate), '', ...besidePeers.map((p) => peerHeadline(p, rate))];
  return [
    '## Per round',
    '',
    roundsTable(rounds, rate),
    '',
    '## Summary',
    '',
    summaryTable(summary),
    '',
    headline(summary),
    ...peers,
    ...warnings.map((w) => `\n⚠ ${w}`),
  ];
}

/** Any errors or failed runs, one line per build; empty when clean. */
export function problems(rounds: readonly AbRound[]): string[] {
  const out: string[] = [];
  const configs: (Side | PeerName)[] = ['base', 'head', ...peersOf(rounds)];
  for (const side of configs) {
    const errors = rounds.reduce((n, r) => n + (configRound(r, side)?.errors ?? 0), 0);
    const failed = rounds.flatMap((r) => (configRound(r, side)?.failures ?? []).map((f) => `round ${r.round} ${f}`));
    if (errors > 0) out.push(`${side}: ${errors} wrk errors / non-2xx responses — not a fair comparison`);
    for (const f of failed) out.push(`${side}: ${f}`);
  }
  return out;
}

// The head-of-line scenario (issue 13's fast hop): paced GETs through a config where 1 request
// in every `slowEvery` takes `slowMs` at the upstream (bench/upstream/server.ts, /hol/slow/<ms>).
// The latency of the FAST requests alone shows how much a slow request delays the others that
// share its connection between two sidecars (HTTP/1.1 pipelining answers in order) compared with
// one request per connection (`pool.pipeline_depth: 1`). wrk's own histogram mixes both kinds, so
// the script times each request itself: request() stamps an id (x-bench-id, echoed by the
// upstream) with its send time and response() looks it up, in wrk's thread, not in the proxy's
// processes (its CPU is never the proxy's figure).

import { percentile, pairedRatio, summarize, type Summary } from './stats.js';
import type { RunRecord } from './measure.js';
import { errText, runStart, type RunBase } from './record.js';
import type { Table } from './report.js';
import type { RunningTarget } from './targets.js';
import { runWrkOutput, parseWrkOutput, totalWrkErrors, type WrkResult, type WrkScriptOptions } from './wrk.js';

export interface HolPlan {
  /** The configs the scenario runs through (in every round, after their fixed-rate runs). */
  readonly configs: readonly string[];
  readonly rate: number;
  readonly seconds: number;
  /** wrk connections: enough that the slow requests in flight (rate × slowMs ÷ slowEvery) leave most free. */
  readonly connections: number;
  readonly slowEvery: number;
  readonly slowMs: number;
  /** a's fast-request latency ÷ b's, paired by round. */
  readonly pairs: readonly HolPairSpec[];
}

export interface HolPairSpec {
  readonly label: string;
  readonly a: string;
  readonly b: string;
  /** The fast requests' p99 ratio should be at most this. */
  readonly target?: number;
}

/** Percentiles of one kind of request in one run, µs. */
export interface LatencyProfile {
  readonly n: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
}

export interface HolRecord extends RunBase {
  readonly kind: 'hol';
  readonly rate: number;
  readonly connections: number;
  readonly durationS: number;
  readonly slowEvery: number;
  readonly slowMs: number;
  /** wrk's own summary: every request, both kinds. */
  readonly wrk?: WrkResult;
  readonly fast?: LatencyProfile | null;
  readonly slow?: LatencyProfile | null;
  /** 200 responses without a known x-bench-id. */
  readonly unmatched?: number;
  /** Responses with another status than 200, by status (the proxy's 503 when its queue is full, say). */
  readonly otherStatuses?: Readonly<Record<string, number>>;
}

export const HOL_JSON_MARK = 'HOL_JSON ';
const FAST_PATH = '/hol/fast';

/** The Lua hooks of the scenario: which request is slow, and each one's latency by its id. */
export function holLua(slowEvery: number, slowMs: number): NonNullable<WrkScriptOptions['extraLua']> {
  const hooks = `
local hol_every = ${slowEvery}
local hol_slow_path = "/hol/slow/${slowMs}"
local hol_count = 0
local hol_sent = {}
hol_fast = {}
hol_slow = {}
hol_unmatched = 0
hol_other = {}
function request()
  hol_count = hol_count + 1
  local path = "${FAST_PATH}"
  if hol_count % hol_every == 0 then path = hol_slow_path end
  hol_sent[hol_count] = now_us()
  return wrk.format("GET", path, {["x-bench-id"] = tostring(hol_count)})
end
local function hol_id(headers)
  local v = headers["x-bench-id"]
  if v == nil then
    for k, x in pairs(headers) do if string.lower(k) == "x-bench-id" then v = x end end
  end
  return tonumber(v)
end
function response(status, headers, body)
  local id = hol_id(headers)
  local t0 = id and hol_sent[id]
  if status ~= 200 then
    if id then hol_sent[id] = nil end
    hol_other[#hol_other + 1] = status
    return
  end
  if t0 == nil then
    hol_unmatched = hol_unmatched + 1
    return
  end
  hol_sent[id] = nil
  local us = math.floor(now_us() - t0 + 0.5)
  if id % hol_every == 0 then hol_slow[#hol_slow + 1] = us else hol_fast[#hol_fast + 1] = us end
end
`;
  const done = `
  local fast, slow, other, unmatched = {}, {}, {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("hol_fast") or {}) do fast[#fast + 1] = v end
    for _, v in ipairs(t:get("hol_slow") or {}) do slow[#slow + 1] = v end
    for _, v in ipairs(t:get("hol_other") or {}) do other[#other + 1] = v end
    unmatched = unmatched + (t:get("hol_unmatched") or 0)
  end
  io.write('${HOL_JSON_MARK}{"fast":[' .. table.concat(fast, ",") .. '],"slow":[' .. table.concat(slow, ",") ..
    '],"other":[' .. table.concat(other, ",") .. '],"unmatched":' .. unmatched .. '}\\n')`;
  return { hooks, done };
}

/** What the script printed: latencies by kind, the statuses other than 200, unmatched ids. */
export interface HolOutput {
  readonly fast: readonly number[];
  readonly slow: readonly number[];
  readonly other: readonly number[];
  readonly unmatched: number;
}

/** The script's line; throws when it is missing. */
export function parseHolOutput(stdout: string): HolOutput {
  const line = stdout.split('\n').find((l) => l.startsWith(HOL_JSON_MARK));
  if (line === undefined) throw new Error(`wrk printed no ${HOL_JSON_MARK.trim()} line:\n${stdout.slice(-2000)}`);
  return JSON.parse(line.slice(HOL_JSON_MARK.length)) as HolOutput;
}

/** Counts by status: [503, 503, 502] → {502: 1, 503: 2}. */
function countStatuses(statuses: readonly number[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

export function latencyProfile(us: readonly number[]): LatencyProfile | null {
  if (us.length === 0) return null;
  const p = (q: number): number => Math.round(percentile(us, q));
  return { n: us.length, p50Us: p(50), p90Us: p(90), p99Us: p(99), p999Us: p(99.9), maxUs: Math.max(...us) };
}

/** One run of the scenario through `t`; a failure is recorded with its error. */
export async function runHol(t: RunningTarget, round: number, plan: HolPlan, scriptDir: string): Promise<HolRecord> {
  const base = {
    ...runStart(t, round),
    kind: 'hol' as const,
    rate: plan.rate,
    connections: plan.connections,
    durationS: plan.seconds,
    slowEvery: plan.slowEvery,
    slowMs: plan.slowMs,
  };
  try {
    const stdout = await runWrkOutput({
      url: `${t.baseUrl}${FAST_PATH}`,
      connections: plan.connections,
      threads: 1,
      durationS: plan.seconds,
      rate: plan.rate,
      scriptDir,
      // A slow request must not count as a wrk timeout.
      timeoutS: Math.max(2, Math.ceil((plan.slowMs * 4) / 1000)),
      extraLua: holLua(plan.slowEvery, plan.slowMs),
    });
    const hol = parseHolOutput(stdout);
    return {
      ...base,
      wrk: parseWrkOutput(stdout),
      fast: latencyProfile(hol.fast),
      slow: latencyProfile(hol.slow),
      unmatched: hol.unmatched,
      otherStatuses: countStatuses(hol.other),
    };
  } catch (e) {
    return { ...base, error: errText(e) };
  }
}

export interface HolConfigSummary {
  readonly config: string;
  readonly fastP50Us: Summary | null;
  readonly fastP99Us: Summary | null;
  readonly fastP999Us: Summary | null;
  readonly fastMaxUs: Summary | null;
  readonly slowP50Us: Summary | null;
  /** Over all rounds: send slots that found every connection busy, socket errors, unmatched responses, statuses other than 200. */
  readonly late: number;
  readonly errors: number;
  readonly unmatched: number;
  readonly otherStatuses: Readonly<Record<string, number>>;
}

export interface HolComparison extends HolPairSpec {
  /** a ÷ b of the fast requests' p99, p50 and p99.9, paired by round. */
  readonly p99Ratio: Summary | null;
  readonly p50Ratio: Summary | null;
  readonly p999Ratio: Summary | null;
  /** Median p99 ratio ≤ target; null without a target or a ratio. */
  readonly withinTarget: boolean | null;
}

/** The scenario as planned, each config's figures and the pairs compared. */
export interface HolSummary extends Pick<HolPlan, 'rate' | 'slowEvery' | 'slowMs'> {
  readonly configs: readonly HolConfigSummary[];
  readonly comparisons: readonly HolComparison[];
}

function holRuns(runs: readonly RunRecord[], config: string): HolRecord[] {
  return runs.filter((r): r is HolRecord => r.kind === 'hol' && r.config === config);
}

function fastByRound(runs: readonly HolRecord[], k: keyof Omit<LatencyProfile, 'n'>): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of runs) {
    const v = r.fast?.[k];
    if (v !== undefined && r.error === undefined) m.set(r.round, v);
  }
  return m;
}

/** Medians over rounds per config, and the paired ratios of the plan's pairs whose sides both ran. */
export function summarizeHol(plan: HolPlan, runs: readonly RunRecord[]): HolSummary {
  const configs = plan.configs
    .map((config) => ({ config, rs: holRuns(runs, config) }))
    .filter((x) => x.rs.length > 0)
    .map(({ config, rs }): HolConfigSummary => {
      const ok = rs.filter((r) => r.error === undefined);
      const med = (k: keyof Omit<LatencyProfile, 'n'>): Summary | null => summarize([...fastByRound(rs, k).values()]);
      return {
        config,
        fastP50Us: med('p50Us'),
        fastP99Us: med('p99Us'),
        fastP999Us: med('p999Us'),
        fastMaxUs: med('maxUs'),
        slowP50Us: summarize(ok.map((r) => r.slow?.p50Us)),
        late: ok.reduce((s, r) => s + (r.wrk?.late ?? 0), 0),
        errors: ok.reduce((s, r) => s + (r.wrk === undefined ? 0 : totalWrkErrors(r.wrk)), 0),
        unmatched: ok.reduce((s, r) => s + (r.unmatched ?? 0), 0),
        otherStatuses: ok.reduce<Record<string, number>>((sum, r) => {
          for (const [status, n] of Object.entries(r.otherStatuses ?? {})) sum[status] = (sum[status] ?? 0) + n;
          return sum;
        }, {}),
      };
    });
  const comparisons = plan.pairs.flatMap((pair): HolComparison[] => {
    const a = holRuns(runs, pair.a);
    const b = holRuns(runs, pair.b);
    const p99Ratio = pairedRatio(fastByRound(a, 'p99Us'), fastByRound(b, 'p99Us'));
    if (p99Ratio === null) return [];
    return [
      {
        ...pair,
        p99Ratio,
        p50Ratio: pairedRatio(fastByRound(a, 'p50Us'), fastByRound(b, 'p50Us')),
        p999Ratio: pairedRatio(fastByRound(a, 'p999Us'), fastByRound(b, 'p999Us')),
        withinTarget: pair.target === undefined ? null : p99Ratio.median <= pair.target,
      },
    ];
  });
  return { rate: plan.rate, slowEvery: plan.slowEvery, slowMs: plan.slowMs, configs, comparisons };
}

/** "median (min–max)", or the median alone when the rounds agree; `unit` follows the median. */
const fmt = (s: Summary | null, digits = 0, unit = ''): string =>
  s === null
    ? '–'
    : s.n < 2 || s.min === s.max
      ? `${s.median.toFixed(digits)}${unit}`
      : `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** "pipelined ÷ depth 1 (a ÷ b): fast requests' p99 1.05× (0.98–1.20), p50 1.01×, p99.9 1.10×, target ≤ 1.20: yes". */
export function holComparisonLine(c: HolComparison): string {
  const target = c.target === undefined || c.withinTarget === null ? '' : `, target ≤ ${c.target.toFixed(2)}: ${c.withinTarget ? 'yes' : 'NO'}`;
  return `${c.label} (${c.a} ÷ ${c.b}): fast requests' p99 ${fmt(c.p99Ratio, 2, '×')}, p50 ${fmt(c.p50Ratio, 2, '×')}, p99.9 ${fmt(c.p999Ratio, 2, '×')}${target}`;
}

export function holTables(h: HolSummary): Table[] {
  const what = `paced wrk at ${h.rate} req/s, 1 request in every ${h.slowEvery} answered by the upstream after ${h.slowMs} ms`;
  return [
    {
      title: `Head-of-line: fast requests beside slow ones (${h.rate} req/s)`,
      note: `${what}; latency of the other (fast) requests only, µs from each request's send (timed by the wrk script per request, by the id the upstream echoes), median over rounds (range). “late” counts send slots that found every connection busy; “unmatched” 200 responses had no known id; “not 200” counts the other statuses (the proxy's own 503 or 504, say) by status.`,
      head: ['config', 'fast p50', 'fast p99', 'fast p99.9', 'fast max', 'slow p50', 'late', 'errors', 'unmatched', 'not 200'],
      rows: h.configs.map((c) => [
        c.config,
        fmt(c.fastP50Us),
        fmt(c.fastP99Us),
        fmt(c.fastP999Us),
        fmt(c.fastMaxUs),
        fmt(c.slowP50Us),
        String(c.late),
        String(c.errors),
        String(c.unmatched),
        Object.entries(c.otherStatuses)
          .map(([status, n]) => `${status}: ${n}`)
          .join(', ') || '0',
      ]),
    },
    {
      title: 'Head-of-line: paired ratios',
      note: 'a ÷ b of the fast requests’ latency, paired round by round (median of the per-round ratios, range). Target from issue 13: with one 500 ms request in every 100, the fast requests’ p99 rises by at most 20 % over the non-multiplexed path.',
      head: ['ratio', 'a', 'b', 'fast p99 a ÷ b', 'fast p50 a ÷ b', 'fast p99.9 a ÷ b', 'target (p99)'],
      rows: h.comparisons.map((c) => [
        c.label,
        c.a,
        c.b,
        fmt(c.p99Ratio, 2, '×'),
        fmt(c.p50Ratio, 2, '×'),
        fmt(c.p999Ratio, 2, '×'),
        c.target === undefined ? '–' : `≤ ${c.target.toFixed(2)}${c.withinTarget === null ? '' : `: ${c.withinTarget ? 'yes' : 'NO'}`}`,
      ]),
    },
  ];
}

// Turns raw run records into per-config summaries: medians and ranges across rounds, ratios
// to nginx and latency added over direct, both paired by round (so a drift of the machine
// during the run hits both sides of each ratio alike).

import type { RunRecord, RateRecord, ThroughputRecord, AutocannonRecord } from './measure.js';
import { byRound, pairedDiff, pairedRatio, summarize, type Summary } from './stats.js';
import { totalWrkErrors } from './wrk.js';

export interface RateSummary {
  readonly rate: number;
  readonly achieved: Summary | null;
  readonly p50Us: Summary | null;
  readonly p90Us: Summary | null;
  readonly p99Us: Summary | null;
  readonly p999Us: Summary | null;
  /** The slowest request of the run (wrk's max), median over rounds. */
  readonly maxUs: Summary | null;
  /** Paired by round with the direct config at the same rate. */
  readonly addedP50Us: Summary | null;
  readonly addedP99Us: Summary | null;
  readonly addedP999Us: Summary | null;
  readonly late: number;
  readonly cpuUsPerReq: Summary | null;
  /** µs per request the config's threads waited for a CPU while runnable (RateRecord.waitUsPerReq); absent when no run measured it. */
  readonly waitUsPerReq?: Summary | null;
}

export interface VariantSummary {
  readonly variant: string;
  readonly rps: Summary | null;
  readonly cpuUsPerReq: Summary | null;
  readonly cpuRatioToNginx: Summary | null;
}

/**
 * A config made of several proxies in series (outrigger-mtls: client + server sidecar), set
 * against the single-proxy config (`outrigger-1w`) in the same rounds: its CPU per request is
 * the sum of every proxy's tree, so the fair yardstick is n × the single proxy's.
 */
export interface MultiProxySummary {
  /** The single-proxy config compared with. */
  readonly single: string;
  readonly proxies: number;
  /** CPU µs/req of each proxy's tree, and its ratio to the single proxy's (paired by round). */
  readonly parts: readonly { readonly name: string; readonly cpuUsPerReq: Summary | null; readonly cpuRatioToSingle: Summary | null }[];
  /** n × the single proxy's CPU µs/req, per round. */
  readonly singleTimesN: Summary | null;
  /** This config's CPU ÷ (n × single), paired by round. */
  readonly cpuRatioToSingleTimesN: Summary | null;
  /** This config's CPU − n × single, µs/req, paired by round. */
  readonly cpuOverSingleTimesNUs: Summary | null;
  /** This config's req/s ÷ the single proxy's, paired by round. */
  readonly rpsRatioToSingle: Summary | null;
}

export interface ConfigSummary {
  readonly config: string;
  readonly rps: Summary | null;
  readonly cpuUsPerReq: Summary | null;
  readonly upstreamCpuUsPerReq: Summary | null;
  readonly cpuRatioToNginx: Summary | null;
  readonly rpsRatioToNginx: Summary | null;
  readonly p99UsAtMax: Summary | null;
  readonly idleRssKb: number | null;
  readonly loadedRssKb: Summary | null;
  /** wrk socket errors + status >= 400, and autocannon errors + non-2xx, over all runs. */
  readonly errors: number;
  readonly non2xx: number;
  readonly failedRuns: number;
  readonly rates: readonly RateSummary[];
  readonly autocannon: { readonly rps: Summary | null; readonly p99Ms: Summary | null };
  readonly variants: readonly VariantSummary[];
  /** Only for configs of several proxies (see MultiProxySummary). */
  readonly multiProxy?: MultiProxySummary;
}

type ByRound = Map<number, number>;

const vals = (m: ByRound): number[] => [...m.values()];

export function summarizeRuns(
  configs: readonly string[],
  runs: readonly RunRecord[],
  idleRssKb: Readonly<Record<string, number>>,
  opts: { rates: readonly number[]; variants: readonly string[]; reference?: string; direct?: string; single?: string } = { rates: [], variants: [] },
): ConfigSummary[] {
  const reference = opts.reference ?? 'nginx';
  const direct = opts.direct ?? 'direct';
  const single = opts.single ?? 'outrigger-1w';
  const tput = (config: string, variant = 'GET /'): ThroughputRecord[] =>
    runs.filter((r): r is ThroughputRecord => r.kind === 'throughput' && r.config === config && r.variant === variant);
  const rate = (config: string, rps: number): RateRecord[] => runs.filter((r): r is RateRecord => r.kind === 'rate' && r.config === config && r.rate === rps);
  const cannon = (config: string): AutocannonRecord[] => runs.filter((r): r is AutocannonRecord => r.kind === 'autocannon' && r.config === config);

  const refCpu = byRound(tput(reference), (r) => r.cpuUsPerReq);
  const refRps = byRound(tput(reference), (r) => r.wrk?.requestsPerSec);

  return configs.map((config): ConfigSummary => {
    const mine = runs.filter((r) => r.config === config);
    const t = tput(config);
    const cpu = byRound(t, (r) => r.cpuUsPerReq);
    const rps = byRound(t, (r) => r.wrk?.requestsPerSec);
    let errors = 0;
    let non2xx = 0;
    for (const r of mine) {
      if (r.kind === 'autocannon') {
        errors += (r.result?.errors ?? 0) + (r.result?.timeouts ?? 0);
        non2xx += r.result?.non2xx ?? 0;
      } else if (r.wrk !== undefined) {
        errors += totalWrkErrors(r.wrk);
        non2xx += r.wrk.errors.status;
      }
    }
    const rates = opts.rates.map((rps2): RateSummary => {
      const rr = rate(config, rps2);
      const dr = rate(direct, rps2);
      const pick = (k: 'p50Us' | 'p90Us' | 'p99Us' | 'p999Us' | 'maxUs') => byRound(rr, (r) => r.wrk?.latency[k]);
      const pickDirect = (k: 'p50Us' | 'p99Us' | 'p999Us') => byRound(dr, (r) => r.wrk?.latency[k]);
      return {
        rate: rps2,
        achieved: summarize(vals(byRound(rr, (r) => r.wrk?.requestsPerSec))),
        p50Us: summarize(vals(pick('p50Us'))),
        p90Us: summarize(vals(pick('p90Us'))),
        p99Us: summarize(vals(pick('p99Us'))),
        p999Us: summarize(vals(pick('p999Us'))),
        maxUs: summarize(vals(pick('maxUs'))),
        addedP50Us: pairedDiff(pick('p50Us'), pickDirect('p50Us')),
        addedP99Us: pairedDiff(pick('p99Us'), pickDirect('p99Us')),
        addedP999Us: pairedDiff(pick('p999Us'), pickDirect('p999Us')),
        late: rr.reduce((s, r) => s + (r.wrk?.late ?? 0), 0),
        cpuUsPerReq: summarize(vals(byRound(rr, (r) => r.cpuUsPerReq))),
        ...(rr.some((r) => r.waitUsPerReq !== undefined) ? { waitUsPerReq: summarize(vals(byRound(rr, (r) => r.waitUsPerReq))) } : {}),
      };
    });
    const variants = opts.variants.map((v): VariantSummary => {
      const vt = tput(config, v);
      const vcpu = byRound(vt, (r) => r.cpuUsPerReq);
      return {
        variant: v,
        rps: summarize(vals(byRound(vt, (r) => r.wrk?.requestsPerSec))),
        cpuUsPerReq: summarize(vals(vcpu)),
        cpuRatioToNginx:
          config === direct
            ? null
            : pairedRatio(
                vcpu,
                byRound(tput(reference, v), (r) => r.cpuUsPerReq),
              ),
      };
    });
    const c = cannon(config);
    const multiProxy = multi(t, cpu, rps);
    return {
      config,
      rps: summarize(vals(rps)),
      cpuUsPerReq: summarize(vals(cpu)),
      upstreamCpuUsPerReq: summarize(vals(byRound(t, (r) => r.upstreamCpuUsPerReq))),
      cpuRatioToNginx: config === direct ? null : pairedRatio(cpu, refCpu),
      rpsRatioToNginx: pairedRatio(rps, refRps),
      p99UsAtMax: summarize(vals(byRound(t, (r) => r.wrk?.latency.p99Us))),
      idleRssKb: idleRssKb[config] ?? null,
      loadedRssKb: summarize(vals(byRound(t, (r) => r.rss?.peakKb))),
      errors,
      non2xx,
      failedRuns: mine.filter((r) => r.error !== undefined).length,
      rates,
      autocannon: {
        rps: summarize(vals(byRound(c, (r) => r.result?.requestsPerSec))),
        p99Ms: summarize(vals(byRound(c, (r) => r.result?.latencyP99Ms))),
      },
      variants,
      ...(multiProxy !== null ? { multiProxy } : {}),
    };
  });

  function multi(t: readonly ThroughputRecord[], cpu: ByRound, rps: ByRound): MultiProxySummary | null {
    const names = [...new Set(t.flatMap((r) => (r.error === undefined ? Object.keys(r.partsCpuUsPerReq ?? {}) : [])))];
    if (names.length < 2) return null;
    const sCpu = byRound(tput(single), (r) => r.cpuUsPerReq);
    const sTimesN: ByRound = new Map([...sCpu].map(([round, v]) => [round, v * names.length]));
    return {
      single,
      proxies: names.length,
      parts: names.map((name) => {
        const pc = byRound(t, (r) => r.partsCpuUsPerReq?.[name]);
        return { name, cpuUsPerReq: summarize(vals(pc)), cpuRatioToSingle: pairedRatio(pc, sCpu) };
      }),
      singleTimesN: summarize(vals(sTimesN)),
      cpuRatioToSingleTimesN: pairedRatio(cpu, sTimesN),
      cpuOverSingleTimesNUs: pairedDiff(cpu, sTimesN),
      rpsRatioToSingle: pairedRatio(
        rps,
        byRound(tput(single), (r) => r.wrk?.requestsPerSec),
      ),
    };
  }
}

/** One line per config of its latency at `rate` (medians over rounds, µs): bench:ci prints them under its gates. */
export function rateLines(summary: readonly ConfigSummary[], rate: number): string[] {
  const us = (x: Summary | null | undefined): string => (x == null ? '–' : x.median.toFixed(0));
  return summary.flatMap((s) => {
    const q = s.rates.find((x) => x.rate === rate);
    if (q === undefined || q.p99Us === null) return [];
    const added = s.config === 'direct' ? '' : `; added p99 ${us(q.addedP99Us)}, p99.9 ${us(q.addedP999Us)}`;
    const wait = q.waitUsPerReq == null ? '' : `; waited for a CPU ${us(q.waitUsPerReq)} µs/req`;
    return [`- ${s.config}: p50 ${us(q.p50Us)}, p99 ${us(q.p99Us)}, p99.9 ${us(q.p999Us)}, max ${us(q.maxUs)}${added}${wait}; late ${q.late}`];
  });
}

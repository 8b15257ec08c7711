// Issue 13's fast hop between two sidecars, as figures of one run (targets/HOP_TARGETS): the
// mTLS path's CPU per request ÷ two plaintext sidecars' (target ≤ 1.3), whole and per sidecar,
// with outrigger's default pipelining and with pipeline_depth 1; the mTLS path's p99 added over
// direct at 1000 req/s (target ≤ 1 ms), beside two nginx in series; and the head-of-line scenario (bench/lib/hol.ts):
// with one 500 ms request in every 100, the fast requests' p99 pipelined ÷ depth 1 (≤ 1.2), and
// the same for one sidecar pipelining GETs to the app (pool.pipeline_plaintext) ÷ without.
// Shared by npm run bench and bench:ci, which print hopLines() under their tables.

import type { ComparisonSpec } from './comparisons.js';
import { comparisonLine } from './comparisons.js';
import { holComparisonLine, type HolPlan } from './hol.js';
import { UNPIPELINED_TARGET } from './targets.js';
import type { BenchResults } from './results.js';

export const PIPELINED = 'outrigger-mtls-strict';
export const DEPTH1 = 'outrigger-mtls-strict-depth1';
export const PLAIN_PAIR = 'outrigger-pair-plain';
/** Two nginx in series: the same path's floor on this machine, printed beside the sidecar pairs. */
export const NGINX_PAIR = 'nginx-pair';
/** Two Node TCP relays in series (bench/node_relay.ts): the floor of two Node processes in a row. */
export const NODE_RELAY_PAIR = 'node-relay-pair';

/** Issue 13: the two-sidecar mTLS path's p99 added over direct at this rate is at most ADDED_P99_TARGET_US. */
export const ADDED_P99_RATE = 1000;
export const ADDED_P99_TARGET_US = 1000;

/** The CPU ratios, whole path and per sidecar, paired by round. */
export function hopComparisons(): ComparisonSpec[] {
  const perSidecar = (label: string, a: string, b: string): ComparisonSpec[] =>
    (['client', 'server'] as const).map((part) => ({ label: `${label}, ${part} sidecar`, a: { config: a, part }, b: { config: b, part } }));
  return [
    { label: 'mTLS path, pipelined ÷ two plaintext sidecars', a: { config: PIPELINED }, b: { config: PLAIN_PAIR }, target: 1.3 },
    ...perSidecar('mTLS path, pipelined ÷ two plaintext sidecars', PIPELINED, PLAIN_PAIR),
    { label: 'mTLS path, depth 1 ÷ two plaintext sidecars', a: { config: DEPTH1 }, b: { config: PLAIN_PAIR }, target: 1.3 },
    ...perSidecar('mTLS path, depth 1 ÷ two plaintext sidecars', DEPTH1, PLAIN_PAIR),
    { label: 'mTLS path, pipelined ÷ depth 1', a: { config: PIPELINED }, b: { config: DEPTH1 } },
    ...perSidecar('mTLS path, pipelined ÷ depth 1', PIPELINED, DEPTH1),
    { label: 'two plaintext sidecars ÷ two node relays', a: { config: PLAIN_PAIR }, b: { config: NODE_RELAY_PAIR } },
  ];
}

/** One sidecar, strict engine, default config (GETs pipelined to the upstream on 127.0.0.1): the pipeline_plaintext head-of-line pair, against UNPIPELINED_TARGET. */
const STRICT_1W = 'outrigger-strict-1w';

/**
 * The head-of-line scenario at `rate` for `seconds` per round through direct (the floor), the
 * pipelined and the depth-1 mTLS paths, and one sidecar with and without pipeline_plaintext.
 * 64 wrk connections: at 1000 req/s the slow requests keep about 5 busy, so the fast ones always
 * find a free one at the (client) sidecar.
 */
export function hopHolPlan(seconds: number, rate = ADDED_P99_RATE): HolPlan {
  return {
    configs: ['direct', PIPELINED, DEPTH1, STRICT_1W, UNPIPELINED_TARGET.name],
    rate,
    seconds,
    connections: 64,
    slowEvery: 100,
    slowMs: 500,
    pairs: [
      { label: 'head-of-line, pipelined ÷ depth 1', a: PIPELINED, b: DEPTH1, target: 1.2 },
      { label: 'head-of-line, depth 1 ÷ direct', a: DEPTH1, b: 'direct' },
      // One sidecar pipelining GETs to the app (pool.pipeline_plaintext, the default for a loopback app) against the same without.
      { label: 'head-of-line, strict (pipelined to the app) ÷ strict, pipeline_plaintext: false', a: STRICT_1W, b: UNPIPELINED_TARGET.name, target: 1.2 },
    ],
  };
}

/** The fast hop's figures measured in `r` ("- …" lines; none when its configs did not run). */
export function hopLines(r: Pick<BenchResults, 'comparisons' | 'summary' | 'hol'>): string[] {
  const labels = new Set(hopComparisons().map((c) => c.label));
  const lines = (r.comparisons ?? []).filter((c) => labels.has(c.label)).map((c) => `- ${comparisonLine(c)}`);
  for (const config of [PIPELINED, DEPTH1, PLAIN_PAIR, NGINX_PAIR, NODE_RELAY_PAIR]) {
    const q = r.summary.find((s) => s.config === config)?.rates.find((x) => x.rate === ADDED_P99_RATE);
    const added = q?.addedP99Us ?? null;
    if (added === null) continue;
    const range = added.n < 2 ? '' : ` (${added.min.toFixed(0)}…${added.max.toFixed(0)})`;
    const target =
      config === PLAIN_PAIR || config === NGINX_PAIR || config === NODE_RELAY_PAIR
        ? ''
        : `, target ≤ ${ADDED_P99_TARGET_US} µs: ${added.median <= ADDED_P99_TARGET_US ? 'yes' : 'NO'}`;
    const wait = q?.waitUsPerReq == null ? '' : `; its threads waited for a CPU ${q.waitUsPerReq.median.toFixed(0)} µs/req`;
    lines.push(`- ${config}: p99 added over direct @${ADDED_P99_RATE}/s ${added.median.toFixed(0)} µs${range}${target}${wait}`);
  }
  for (const c of r.hol?.comparisons ?? []) lines.push(`- ${holComparisonLine(c)}`);
  return lines;
}

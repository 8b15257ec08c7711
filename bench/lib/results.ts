// The shape of results.json: everything a run measured (raw records), what it skipped and why,
// the machine and tool versions, and the summaries the reports are rendered from. The last
// fields from `comparisons` on came later and are optional (older results.json files have none of them).

import type { ConnectionsReading } from './admin.js';
import type { LoopDelayReading } from './memory.js';
import type { Comparison } from './comparisons.js';
import type { HolSummary } from './hol.js';
import type { RunRecord } from './measure.js';
import type { ToolStatus } from './peers.js';
import type { ConfigSummary } from './summary.js';
import type { ThreadSummary } from './threads.js';
import type { KeptIdleReading } from './rss.js';

export interface BenchMeta {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly quick: boolean;
  readonly rounds: number;
  readonly plan: Readonly<Record<string, unknown>>;
  readonly host: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly kernel: string;
    readonly loadavgStart: readonly number[];
    readonly loadavgEnd: readonly number[];
    readonly clkTck: number;
  };
  readonly tools: readonly ToolStatus[];
  readonly upstream: string;
}

export interface BenchResults {
  readonly schema: 'outrigger-bench/1';
  readonly meta: BenchMeta;
  readonly configs: readonly { readonly name: string; readonly description: string }[];
  readonly skipped: readonly { readonly name: string; readonly reason: string }[];
  /** RSS per config once idle (bench/lib/rss.ts IDLE_RSS_AT_MS after its own start; before 2026-12-06: 1 s after the last config started). */
  readonly idleRssKb: Readonly<Record<string, number>>;
  /** RSS per config bench/lib/rss.ts STARTUP_RSS_AT_MS after its own start (absent in older results). */
  readonly startupRssKb?: Readonly<Record<string, number>>;
  /** CPU ms per second of each config's tree while idle, from IDLE_RSS_AT_MS to IDLE_CPU_UNTIL_MS after its start (absent in older results). */
  readonly idleCpuMsPerS?: Readonly<Record<string, number>>;
  /** A second copy of one config, started first and sent no traffic for the whole session: its RSS over time (bench:ci; absent in older results). */
  readonly keptIdle?: KeptIdleReading;
  readonly runs: readonly RunRecord[];
  readonly summary: readonly ConfigSummary[];
  /** Paired ratios between configs or their processes (node ÷ uws engine, server sidecar 2 ÷ 1 workers, …). */
  readonly comparisons?: readonly Comparison[];
  /** CPU per request by thread of every measured process (throughput runs, GET /). */
  readonly threads?: readonly ThreadSummary[];
  /** GET /stats `connections` of every outrigger process, read after the last round. */
  readonly connections?: readonly ConnectionsReading[];
  /** GET /stats `event_loop_delay` of every outrigger process, read after the last round. */
  readonly loopDelay?: readonly LoopDelayReading[];
  /** The head-of-line scenario's fast-request latency per config and its paired ratios (when the plan ran it). */
  readonly hol?: HolSummary;
}

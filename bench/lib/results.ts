// The shape of results.json: everything a run measured (raw records), what it skipped and why,
// the machine and tool versions, and the summaries the reports are rendered from.

import type { RunRecord } from './measure.js';
import type { ToolStatus } from './peers.js';
import type { ConfigSummary } from './summary.js';

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
  readonly idleRssKb: Readonly<Record<string, number>>;
  readonly runs: readonly RunRecord[];
  readonly summary: readonly ConfigSummary[];
}

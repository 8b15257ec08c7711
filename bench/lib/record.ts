// What every raw record of a bench run starts with (measure.ts' runs, hol.ts' scenario): its
// round, its config, when it started, and the error when the run failed.

import type { RunningTarget } from './targets.js';

export interface RunBase {
  readonly round: number;
  readonly config: string;
  readonly startedAt: string;
  readonly error?: string;
}

/** What every record of a run starts with: its round and config, and when it started. */
export function runStart(t: RunningTarget, round: number): RunBase {
  return { round, config: t.spec.name, startedAt: new Date().toISOString() };
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// Shared helpers for the config tests: default compile options and small accessors that fail
// loudly when a result is not what the test expects.
import { expect } from 'vitest';
import type { CompileOptions, LoadResult } from '../../src/config/load.js';
import type { ConfigProblem } from '../../src/config/types.js';

export const OPTS: CompileOptions = { version: 1, availableParallelism: 4, enableTestHooks: false };

export function ok(r: LoadResult): Extract<LoadResult, { ok: true }> {
  if (!r.ok) expect.fail(`expected a valid config, got:\n${r.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return r;
}

export function problems(r: LoadResult): ConfigProblem[] {
  if (r.ok) expect.fail('expected problems, the config compiled');
  return r.problems;
}

/** Problems as `path: message` strings (no lines). */
export function listed(r: LoadResult): string[] {
  return problems(r).map((p) => `${p.path}: ${p.message}`);
}

/** A minimal valid config as a plain object, to be tweaked per test. */
export function minimal(): Record<string, unknown> {
  return {
    listeners: [{ name: 'out', address: '127.0.0.1:15001', routes: [{ cluster: 'api' }] }],
    clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }] }],
  };
}

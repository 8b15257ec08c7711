// Shared helpers for the config tests: default compile options and small accessors that fail
// loudly when a result is not what the test expects.
import { expect } from 'vitest';
import type { CompileOptions, LoadResult } from '../../src/config/load.js';
import type { ConfigProblem, RetrySpec } from '../../src/config/types.js';

export const OPTS: CompileOptions = { version: 1, availableParallelism: 4, enableTestHooks: false };

/** What `retries: {}` compiles to: one retry on connect failure and reset, 25-250 ms backoff, idempotent methods, 64 KiB bodies. */
export const RETRY_DEFAULTS: RetrySpec = {
  attempts: 1,
  onConnectFailure: true,
  onReset: true,
  on5xx: false,
  onGatewayError: false,
  onRetriable4xx: false,
  statuses: [],
  grpcStatuses: [],
  perTryTimeoutMs: 0,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  allowNonIdempotent: false,
  maxBodyBytes: 65536,
};

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

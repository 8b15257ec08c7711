// Config load + validate + compile (src/config/load.ts) of 10 and 1000 routes: main-thread
// work on every apply, here so that a slow schema change shows up. For 1000 routes also its
// parts: the YAML parse as parseConfigText does it (js-yaml), the `yaml` document model it builds
// only for lines of problems and for admin API bodies, and validate + compile (compileConfig on
// the parsed object). The router each worker builds from it is router_build.bench.

import type { Bench } from 'tinybench';
import { LineCounter, parseDocument } from 'yaml';
import { compileConfig, fastParse, parseConfigText } from '../../src/config/load.js';
import { configWithRoutes } from './config_text.js';

export const title = 'config: parse + validate + compile';

const opts = { version: 1, availableParallelism: 1, enableTestHooks: false };

export function register(bench: Bench): void {
  for (const n of [10, 1000]) {
    const text = configWithRoutes(n, 'path_prefix');
    const probe = parseConfigText(text, opts);
    if (!probe.ok) throw new Error(`bench config does not compile: ${JSON.stringify(probe.problems.slice(0, 3))}`);
    bench.add(`${n} routes`, () => {
      parseConfigText(text, opts);
    });
  }
  const text = configWithRoutes(1000, 'path_prefix');
  const parsed: unknown = parseDocument(text, { merge: true, uniqueKeys: true }).toJS();
  bench
    .add('1000 routes: YAML parse only (js-yaml, the path taken)', () => {
      fastParse(text);
    })
    .add('1000 routes: YAML document model (yaml: lines, admin bodies)', () => {
      parseDocument(text, { lineCounter: new LineCounter(), merge: true, uniqueKeys: true, prettyErrors: false }).toJS();
    })
    .add('1000 routes: validate + compile only', () => {
      compileConfig(parsed, opts);
    });
}

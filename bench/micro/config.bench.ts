// Config load + validate + compile (src/config/load.ts) of 10 and 1000 routes: main-thread
// work on every apply, here so that a slow schema change shows up.

import type { Bench } from 'tinybench';
import { parseConfigText } from '../../src/config/load.js';
import { configWithRoutes } from './config_text.js';

export const title = 'config: parse + validate + compile';

export function register(bench: Bench): void {
  for (const n of [10, 1000]) {
    const text = configWithRoutes(n, 'path_prefix');
    const probe = parseConfigText(text, { version: 1, availableParallelism: 1, enableTestHooks: false });
    if (!probe.ok) throw new Error(`bench config does not compile: ${JSON.stringify(probe.problems.slice(0, 3))}`);
    bench.add(`${n} routes`, () => {
      parseConfigText(text, { version: 1, availableParallelism: 1, enableTestHooks: false });
    });
  }
}

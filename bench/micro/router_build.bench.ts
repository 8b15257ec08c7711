// Router build (buildRouter: compile matchers, index by host and path) of 1000 routes — the
// per-listener work of every config apply in every worker — beside the linear reference, whose
// build is the per-route compilation alone. Config parse + validate + compile is config.bench.

import type { Bench } from 'tinybench';
import { buildLinearRouter, buildRouter } from '../../src/dataplane/router.js';
import type { RouteTableKind } from './config_text.js';
import { routeSpecsFor } from './router.bench.js';

export const title = 'router: build of 1000 routes';

export function register(bench: Bench): void {
  for (const kind of ['path_prefix', 'path', 'host', 'mixed'] as const satisfies readonly RouteTableKind[]) {
    const specs = routeSpecsFor(1000, kind);
    bench
      .add(`1000 ${kind} — indexed`, () => {
        buildRouter(specs);
      })
      .add(`1000 ${kind} — linear`, () => {
        buildLinearRouter(specs);
      });
  }
}

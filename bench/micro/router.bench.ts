// Route matching (src/dataplane/router.ts) on 10 and 1000 routes: best case (first route),
// worst case (last route), a miss, and host-bucketed routes.

import type { Bench } from 'tinybench';
import { parseConfigText } from '../../src/config/load.js';
import { buildRouter, type HeaderLookup } from '../../src/dataplane/router.js';
import { configWithRoutes } from './config_text.js';

export const title = 'router: match on 10 / 1000 routes';

const noHeaders: HeaderLookup = () => undefined;

function routerFor(n: number, kind: 'path_prefix' | 'host') {
  const r = parseConfigText(configWithRoutes(n, kind), { version: 1, availableParallelism: 1, enableTestHooks: false });
  if (!r.ok) throw new Error(`bench config does not compile: ${JSON.stringify(r.problems.slice(0, 3))}`);
  const listener = r.snapshot.listeners[0];
  if (listener === undefined) throw new Error('bench config has no listener');
  return buildRouter(listener.routes);
}

export function register(bench: Bench): void {
  let sink = 0;
  for (const n of [10, 1000]) {
    const byPath = routerFor(n, 'path_prefix');
    const byHost = routerFor(n, 'host');
    const last = n - 1;
    bench
      .add(`${n} path routes, first`, () => {
        sink += byPath.match('GET', 'api.local', '/svc0/x', noHeaders)?.index ?? -1;
      })
      .add(`${n} path routes, last`, () => {
        sink += byPath.match('GET', 'api.local', `/svc${last}/x`, noHeaders)?.index ?? -1;
      })
      .add(`${n} path routes, miss`, () => {
        sink += byPath.match('GET', 'api.local', '/nothing', noHeaders)?.index ?? -1;
      })
      .add(`${n} host routes, last`, () => {
        sink += byHost.match('GET', `svc${last}.local:8080`, '/api/x', noHeaders)?.index ?? -1;
      });
  }
  if (sink === 0.5) console.log(sink);
}

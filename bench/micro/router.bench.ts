// Route matching (src/dataplane/router.ts) with 1, 10, 100 and 1000 routes: the first, middle and
// last route and a miss, on path-prefix, exact-path, host and mixed tables (config text →
// compiled config → router, as a listener builds it). Each case runs on the indexed router and on
// the linear reference (buildLinearRouter) in the same run. Times are per match: every task call
// makes BATCH matches.

import type { Bench } from 'tinybench';
import { parseConfigText } from '../../src/config/load.js';
import { buildLinearRouter, buildRouter, type HeaderLookup, type Router } from '../../src/dataplane/router.js';
import { configWithRoutes, type RouteTableKind } from './config_text.js';

export const title = 'router: match on 1 / 10 / 100 / 1000 routes, indexed vs linear reference';

const BATCH = 100;
export const opsPerCall = BATCH;

const noHeaders: HeaderLookup = () => undefined;
const canary: HeaderLookup = (name) => (name === 'x-canary' ? '1' : undefined);

export function routeSpecsFor(n: number, kind: RouteTableKind) {
  const r = parseConfigText(configWithRoutes(n, kind), { version: 1, availableParallelism: 1, enableTestHooks: false });
  if (!r.ok) throw new Error(`bench config does not compile: ${JSON.stringify(r.problems.slice(0, 3))}`);
  const listener = r.snapshot.listeners[0];
  if (listener === undefined) throw new Error('bench config has no listener');
  return listener.routes;
}

interface Case {
  readonly name: string;
  readonly kind: RouteTableKind;
  readonly n: number;
  readonly host: string;
  readonly path: string;
  readonly method?: string;
  readonly header?: HeaderLookup;
  /** The route index the case must hit (-1: none), checked on both routers before timing. */
  readonly want: number;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const n of [1, 10, 100, 1000]) {
    const mid = n >> 1;
    const last = n - 1;
    out.push(
      { name: `${n} path_prefix, first`, kind: 'path_prefix', n, host: 'api.local', path: '/svc0/x', want: 0 },
      { name: `${n} path_prefix, middle`, kind: 'path_prefix', n, host: 'api.local', path: `/svc${mid}/x`, want: mid },
      { name: `${n} path_prefix, last`, kind: 'path_prefix', n, host: 'api.local', path: `/svc${last}/x`, want: last },
      { name: `${n} path_prefix, miss`, kind: 'path_prefix', n, host: 'api.local', path: '/nothing', want: -1 },
    );
  }
  out.push(
    { name: '1000 path (exact), last', kind: 'path', n: 1000, host: 'api.local', path: '/svc999', want: 999 },
    { name: '1000 path (exact), miss', kind: 'path', n: 1000, host: 'api.local', path: '/svc999/', want: -1 },
    { name: '1000 host, last', kind: 'host', n: 1000, host: 'svc999.local:8080', path: '/api/x', want: 999 },
    { name: '1000 host, miss', kind: 'host', n: 1000, host: 'other.local', path: '/api/x', want: -1 },
    { name: '1000 mixed, last prefix', kind: 'mixed', n: 1000, host: 'api.local', path: '/svc998/x', want: 998 },
    { name: '1000 mixed, regex', kind: 'mixed', n: 1000, host: 'api.local', path: '/re993/42', want: 993 },
    { name: '1000 mixed, header', kind: 'mixed', n: 1000, host: 'api.local', path: '/svc995/x', header: canary, want: 995 },
    { name: '1000 mixed, wildcard host', kind: 'mixed', n: 1000, host: 'a.zone997.local', path: '/svc997/x', want: 997 },
    { name: '1000 mixed, method', kind: 'mixed', n: 1000, host: 'api.local', path: '/svc989/x', method: 'POST', want: 989 },
    { name: '1000 mixed, catch-all', kind: 'mixed', n: 1000, host: 'api.local', path: '/nothing', want: 999 },
  );
  return out;
}

export function register(bench: Bench): void {
  let sink = 0;
  const tables = new Map<string, { indexed: Router; linear: Router }>();
  for (const c of cases()) {
    const key = `${c.kind}/${c.n}`;
    let table = tables.get(key);
    if (table === undefined) {
      const specs = routeSpecsFor(c.n, c.kind);
      table = { indexed: buildRouter(specs), linear: buildLinearRouter(specs) };
      tables.set(key, table);
    }
    const method = c.method ?? 'GET';
    const header = c.header ?? noHeaders;
    for (const [label, router] of [
      ['indexed', table.indexed],
      ['linear', table.linear],
    ] as const) {
      const got = router.match(method, c.host, c.path, header)?.index ?? -1;
      if (got !== c.want) throw new Error(`${c.name} (${label}): matched route ${got}, expected ${c.want}`);
      bench.add(`${c.name} — ${label}`, () => {
        for (let i = 0; i < BATCH; i++) sink += router.match(method, c.host, c.path, header)?.index ?? -1;
      });
    }
  }
  if (sink === 0.5) console.log(sink);
}

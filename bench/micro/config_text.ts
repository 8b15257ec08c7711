// Generates config text with N routes for the micro benchmarks (router, config compile).
//   path_prefix  {path_prefix: /svcI/}
//   path         {path: /svcI} (exact)
//   host         {host: svcI.local, path_prefix: /api/}
//   mixed        a table with every kind of match: route I is, by I mod 10, a path regex (3), a
//                prefix with a header (5), a prefix on a wildcard host (7), a prefix for POST
//                only (9), else a plain prefix /svcI/; the last route is a catch-all (`{}`).

export type RouteTableKind = 'path_prefix' | 'path' | 'host' | 'mixed';

function matchFor(i: number, n: number, kind: RouteTableKind): string {
  switch (kind) {
    case 'host':
      return `{host: svc${i}.local, path_prefix: /api/}`;
    case 'path':
      return `{path: /svc${i}}`;
    case 'path_prefix':
      return `{path_prefix: /svc${i}/}`;
    case 'mixed':
      if (i === n - 1) return '{}';
      switch (i % 10) {
        case 3:
          return `{path_regex: "/re${i}/[0-9]+"}`;
        case 5:
          return `{path_prefix: /svc${i}/, headers: {x-canary: "1"}}`;
        case 7:
          return `{host: "*.zone${i}.local", path_prefix: /svc${i}/}`;
        case 9:
          return `{path_prefix: /svc${i}/, methods: [POST]}`;
        default:
          return `{path_prefix: /svc${i}/}`;
      }
  }
}

export function configWithRoutes(n: number, kind: RouteTableKind): string {
  const routes: string[] = [];
  for (let i = 0; i < n; i++) routes.push(`      - match: ${matchFor(i, n, kind)}\n        cluster: c${i % 10}`);
  const clusters: string[] = [];
  for (let i = 0; i < 10; i++) clusters.push(`  - name: c${i}\n    endpoints: [{address: 127.0.0.1:${20000 + i}}]`);
  return `listeners:\n  - name: bench\n    address: 127.0.0.1:15001\n    routes:\n${routes.join('\n')}\nclusters:\n${clusters.join('\n')}\n`;
}

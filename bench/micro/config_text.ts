// Generates config text with N routes for the micro benchmarks (router, config compile).

export function configWithRoutes(n: number, kind: 'path_prefix' | 'host'): string {
  const routes: string[] = [];
  for (let i = 0; i < n; i++) {
    const match = kind === 'host' ? `{host: svc${i}.local, path_prefix: /api/}` : `{path_prefix: /svc${i}/}`;
    routes.push(`      - match: ${match}\n        cluster: c${i % 10}`);
  }
  const clusters: string[] = [];
  for (let i = 0; i < 10; i++) clusters.push(`  - name: c${i}\n    endpoints: [{address: 127.0.0.1:${20000 + i}}]`);
  return `listeners:\n  - name: bench\n    address: 127.0.0.1:15001\n    routes:\n${routes.join('\n')}\nclusters:\n${clusters.join('\n')}\n`;
}

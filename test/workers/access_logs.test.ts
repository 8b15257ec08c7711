// Access logs load their code (pino) only when a config names one: a sidecar with an access log
// writes one entry per request, in order, from the first request on (also those that arrive
// while the code loads), and flushes them when it stops.
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, cluster, config, httpGet, startSidecar, startUpstream } from '../helpers/sidecar.js';

describe('access log (loaded on demand)', () => {
  afterAll(closeAll);

  it('writes every request, first one included, and flushes at stop', async () => {
    const app = await startUpstream();
    const cfg = config([{ match: { path_prefix: '/' }, cluster: 'app' }], [cluster('app', [app.address])], {
      listener: { access_log: { path: 'stdout', format: 'json' } },
    });
    const sc = await startSidecar(cfg);
    for (const p of ['/first', '/second', '/third']) expect((await httpGet(sc.url(p))).status).toBe(200);
    expect(await sc.stop()).toBe(0);
    const paths = sc
      .entries()
      .filter((e) => e['listener'] === 'main' && typeof e['path'] === 'string')
      .map((e) => [e['path'], e['status']]);
    expect(paths).toEqual([
      ['/first', 200],
      ['/second', 200],
      ['/third', 200],
    ]);
  });
});

// An app whose listen queue is full when a burst of new connections reaches it: Python's
// http.server (test/fixtures/py_app.py) listening with a backlog of 1 and accepting nothing until
// 2.5 s after the burst, as an app busy at start-up would. Linux drops a SYN that finds the
// accept queue full and the client sends it again 1 s later, then 3 s after the first: the
// connects past the queue take ~3 s here. The default `pool.connect_timeout_ms` (5000, Envoy's)
// outlasts that, so a sidecar in front loses nothing a client connecting directly would not. With
// 1000 (the default before) a connect fails at 1 s, before its SYN is sent again, and so does the
// one retry (its SYN at ~1 s, sent again at ~2 s, while the app still holds): a 502.
//
// The burst comes from one HTTP/2 client (its streams' HEADERS leave in one write), so the
// sidecar opens a connection to the app for each request at once.

import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, h2Burst, proxyConfig, startHeldPythonApp, startSidecar } from '../helpers/sidecar.js';

afterEach(closeAll);

/** Eight GETs in one burst through a 1-worker sidecar to an app that holds its backlog of 1 until 2.5 s after; each answer's status and error. */
async function burstToBusyApp(pool: Record<string, unknown> | undefined): Promise<string[]> {
  const app = await startHeldPythonApp('HTTP/1.1', 1);
  const sc = await startSidecar(proxyConfig([`127.0.0.1:${app.port}`], pool === undefined ? {} : { pool }));
  const release = setTimeout(app.release, 2500);
  const answers = await h2Burst(
    sc.port(),
    Array.from({ length: 8 }, (_, i) => ['GET', `/burst/${i}`] as const),
  );
  clearTimeout(release);
  return answers.map((a) => (a.status === 200 ? `200 ${a.body.split(' ')[1]}` : `${a.status} ${(JSON.parse(a.body) as { error: string }).error}`));
}

describe('a burst of new connections to an app whose listen queue is full', () => {
  it('with the default connect timeout every request is answered once the app accepts', async () => {
    const answers = await burstToBusyApp(undefined);
    expect(answers).toEqual(Array.from({ length: 8 }, (_, i) => `200 /burst/${i}`));
  });

  it('with connect_timeout_ms 1000 the connects past the queue fail (502) before the SYN is sent again', async () => {
    // The premise of the test above: the app's queue does drop SYNs, so a short timeout loses requests.
    const answers = await burstToBusyApp({ connect_timeout_ms: 1000 });
    expect(answers).toContain('502 upstream_connect_failed');
    expect(answers.filter((a) => a.startsWith('200 ')).length).toBeGreaterThan(0); // the ones the queue held
  });
});

// One rescue (issue 12): an exception that is not a ProxyError — a bug in the proxy — is answered
// 500 internal_error (never a 400 blaming the client), logged through the worker's log channel
// with the request id, and leaves the connection and the worker serving. Both engines.

import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, hookRoutes, httpGet, startSidecar, startUpstream } from '../helpers/sidecar.js';

const HOOKS = { env: { OUTRIGGER_ENABLE_TEST_HOOKS: '1' } };

describe.each(['node', 'uws', 'strict'] as const)('an unexpected exception on the %s engine', (engine) => {
  afterAll(closeAll);

  it('is a 500 internal_error with the request id, logged, and the sidecar serves on', async () => {
    const app = await startUpstream();
    const sc = await startSidecar(
      {
        node: { workers: 1 },
        listeners: [
          {
            name: 'main',
            address: '127.0.0.1:0',
            engine,
            routes: hookRoutes('/bug', 'test_throw'),
          },
        ],
        clusters: [{ name: 'app', endpoints: [{ address: app.address }] }],
      },
      HOOKS,
    );
    const res = await httpGet(sc.url('/bug'), { headers: { 'x-request-id': 'bug-42' } });
    expect(res.status).toBe(500);
    expect(res.headers['x-outrigger-error']).toBe('internal_error');
    expect(JSON.parse(res.body.toString())).toEqual({
      error: 'internal_error',
      message: 'the proxy failed while handling the request',
      request_id: 'bug-42',
    });
    const line = await sc.waitForLog((e) => e.msg === 'internal error while handling a request');
    expect(line['request_id']).toBe('bug-42');
    expect(String(line['err'])).toMatch(/TypeError: test_throw hook on route/);
    expect((await httpGet(sc.url('/fine'))).status).toBe(200);
    expect(sc.exited()).toBe(false);
  });
});

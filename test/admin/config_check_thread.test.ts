// ConfigCheckThread's thread, with a stand-in check module that answers with its thread id: checks
// in a row share one thread; end() ends it at once (the sidecar does so after its start-up check)
// and the next check starts a new one.
import { describe, expect, it } from 'vitest';
import { ConfigCheckThread } from '../../src/admin/config_check_thread.js';
import type { CheckRequest } from '../../src/admin/config_check.js';

const STAND_IN = new URL(
  `data:text/javascript,${encodeURIComponent(`
import { parentPort, threadId } from 'node:worker_threads';
parentPort.on('message', ({ id }) => parentPort.postMessage({ id, answer: { ok: false, problems: [{ path: 'thread', message: String(threadId), line: null }] } }));
`)}`,
);

const REQUEST: CheckRequest = { file: 'unused by the stand-in', opts: { version: 1, availableParallelism: 1, enableTestHooks: false } };

/** The id of the thread that answered. */
async function threadOf(checks: ConfigCheckThread): Promise<string> {
  const answer = await checks.check(REQUEST);
  if (answer.ok) throw new Error('the stand-in always refuses');
  return answer.problems[0]!.message;
}

describe('ConfigCheckThread', () => {
  it('checks in a row share a thread; after end() the next check runs in a new one', async () => {
    const checks = new ConfigCheckThread(STAND_IN);
    const first = await threadOf(checks);
    expect(await threadOf(checks)).toBe(first);
    await checks.end();
    const next = await threadOf(checks);
    expect(next).not.toBe(first);
    await checks.end();
  });
});

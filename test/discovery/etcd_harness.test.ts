// The etcd test cluster itself (test/helpers/etcd.ts): three members agree on a write, the
// cluster keeps a quorum with one member killed, and a restarted member catches up.

import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster } from '../helpers/etcd.js';
import { closeAll, eventually } from '../helpers/live.js';

const why = etcdUnavailable();

describe.skipIf(why !== null)(`a 3-member etcd cluster on loopback${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('replicates writes, survives one member killed, and a restarted member catches up', async () => {
    const etcd = await startEtcdCluster();
    await etcd.ctl(['put', '/t/a', '1']);
    await etcd.members[0]!.kill();
    // If the killed member led, the write waits for the election of another (it can outlast one command timeout on a loaded machine).
    await eventually(
      () =>
        etcd.ctl(['put', '/t/b', '2']).then(
          () => true,
          () => undefined,
        ),
      'a write with one member killed',
      40_000,
      500,
    );
    await etcd.members[0]!.start();
    const got = await etcd.ctl(['get', '/t/b', '--endpoints', etcd.members[0]!.endpoint, '--consistency', 's']);
    expect(got).toContain('2');
    const members = await etcd.ctl(['member', 'list']);
    expect(members.trim().split('\n')).toHaveLength(3);
  });
});

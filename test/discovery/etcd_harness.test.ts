// The etcd test cluster itself (test/helpers/etcd.ts): three members agree on a write, the
// cluster keeps a quorum with one member killed, and a restarted member catches up.

import { afterAll, describe, expect, it } from 'vitest';
import { etcdUnavailable, startEtcdCluster } from '../helpers/etcd.js';
import { closeAll } from '../helpers/live.js';

const why = etcdUnavailable();

describe.skipIf(why !== null)(`a 3-member etcd cluster on loopback${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('replicates writes, survives one member killed, and a restarted member catches up', async () => {
    const etcd = await startEtcdCluster();
    await etcd.ctl(['put', '/t/a', '1']);
    await etcd.members[0]!.kill();
    await etcd.ctl(['put', '/t/b', '2']);
    await etcd.members[0]!.start();
    const got = await etcd.ctl(['get', '/t/b', '--endpoints', etcd.members[0]!.endpoint, '--consistency', 's']);
    expect(got).toContain('2');
    const members = await etcd.ctl(['member', 'list']);
    expect(members.trim().split('\n')).toHaveLength(3);
  });
});

// `outrigger run` refuses to start on unsafe or unusable certificate material, with a message
// that says what to do: a private key that group or others may read, an expired leaf, a leaf
// that is not valid yet. The explicit opt-out (tls.allow_insecure_key_permissions) starts.

import { chmodSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CA_KEY_FILE } from '../../src/tls/ca.js';
import {
  API,
  caSource,
  closeAll,
  filesSource,
  HOUR_MS,
  leaf,
  newCa,
  runUntilExit,
  serverSideConfig,
  startSidecar,
  tempDir,
  writeTlsFiles,
} from '../helpers/sidecar.js';

afterAll(closeAll);

describe('outrigger run refuses unsafe certificate material at start', () => {
  it('a tls.key readable by others: exit 2 with the chmod to run; starts when explicitly allowed', async () => {
    const ca = await newCa();
    const files = writeTlsFiles(tempDir(), ca.certPem, leaf(ca, API));
    chmodSync(files.key, 0o644);
    const cfg = serverSideConfig({ tls: filesSource(files), app: '127.0.0.1:9' });
    const r = await runUntilExit(cfg);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`tls.key ${files.key} is accessible by group or others (mode 0644): run "chmod 600 ${files.key}"`);
    const allowed = await startSidecar({ ...cfg, tls: { ...filesSource(files), allow_insecure_key_permissions: true } });
    expect(allowed.exited()).toBe(false);
    await allowed.stop();
  });

  it('a CA directory whose ca.key is group-readable (tls.ca mode)', async () => {
    const ca = await newCa();
    chmodSync(path.join(ca.dir, CA_KEY_FILE), 0o640);
    const r = await runUntilExit(serverSideConfig({ tls: caSource(ca), app: '127.0.0.1:9' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`run "chmod 600 ${path.join(ca.dir, CA_KEY_FILE)}"`);
  });

  it('an expired leaf in files mode', async () => {
    const ca = await newCa();
    const expired = leaf(ca, API, { notBefore: new Date(Date.now() - 3 * HOUR_MS), ttlHours: 1 });
    const files = writeTlsFiles(tempDir(), ca.certPem, expired);
    const r = await runUntilExit(serverSideConfig({ tls: filesSource(files), app: '127.0.0.1:9' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`tls.cert ${files.cert}: expired at ${expired.notAfter.toISOString()}`);
  });

  it('a not-yet-valid leaf in files mode', async () => {
    const ca = await newCa();
    const future = leaf(ca, API, { notBefore: new Date(Date.now() + HOUR_MS), ttlHours: 1 });
    const files = writeTlsFiles(tempDir(), ca.certPem, future);
    const r = await runUntilExit(serverSideConfig({ tls: filesSource(files), app: '127.0.0.1:9' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`tls.cert ${files.cert}: not valid before`);
  });
});

// Shared parts of the `outrigger mesh` tests: the CLI run to its exit, a mesh file written for it,
// and `mesh status` read back (each sidecar's row, and a wait until every given sidecar runs a
// version).

import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { eventually, spawnCli, tempDir, type Sidecar } from '../helpers/sidecar.js';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `outrigger mesh ...args`, run to its exit. */
export async function mesh(args: readonly string[]): Promise<CliResult> {
  const p = spawnCli(['mesh', ...args]);
  const code = await p.exit(30_000);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** `doc` written to a fresh mesh file; its path. */
export function meshFile(doc: unknown): string {
  const file = path.join(tempDir('outrigger-mesh-'), 'mesh.json');
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

export interface StatusRow {
  id: string;
  service: string | null;
  applied_version: number | null;
  status: string;
  error?: string;
  lag: number | null;
  registered?: boolean;
}

export interface MeshStatus {
  current_version: number | null;
  sidecars: StatusRow[];
}

/** A sidecar's id in mesh status (`<hostname>-<pid>`). */
export const sidecarIdOf = (sc: Pick<Sidecar, 'pid'>): string => `${os.hostname()}-${sc.pid}`;

export const rowOf = (rows: readonly StatusRow[], sc: Pick<Sidecar, 'pid'>): StatusRow | undefined => rows.find((r) => r.id === sidecarIdOf(sc));

/** `mesh status --json` against `etcdFlag` (HOST:PORT,...); it must exit 0. */
export async function meshStatus(etcdFlag: string): Promise<MeshStatus> {
  const r = await mesh(['status', '--etcd', etcdFlag, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as MeshStatus;
}

/** Waits until `mesh status` shows every one of `scs` at `version` with status ok and lag 0. */
export async function untilAllAt(etcdFlag: string, scs: readonly Pick<Sidecar, 'pid'>[], version: number, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      const s = await meshStatus(etcdFlag);
      return scs.every((sc) => {
        const r = rowOf(s.sidecars, sc);
        return r?.applied_version === version && r.status === 'ok' && r.lag === 0;
      })
        ? true
        : undefined;
    },
    `every sidecar at mesh version ${version}`,
    timeoutMs,
    200,
  );
}

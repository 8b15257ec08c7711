// What the test helpers started and must clean up (processes, servers, sockets, agents, temp
// directories), and the one bounded wait every helper and test uses (vi.waitFor underneath).
// `closeAll()` in afterAll/afterEach stops everything, then removes the temp directories.

import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';

export interface Closable {
  close(): Promise<unknown>;
}

const live = new Set<Closable>();
const dirs = new Set<string>();

/** Registers `c` for closeAll(); returns a function that unregisters it. */
export function track(c: Closable): () => void {
  live.add(c);
  return () => void live.delete(c);
}

/** Closes every sidecar, upstream, socket and agent the helpers started, then removes their temp dirs. */
export async function closeAll(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.allSettled(all.map((x) => x.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * Binds `server` (a net, http or http2 server) on 127.0.0.1, port 0, and returns `127.0.0.1:<port>`.
 * closeAll() closes it, destroying what is still in `open` (its sessions or sockets: a Set, or the
 * keys of a Map) first: a server's close() waits for its connections to end, and a fake upstream's
 * may never end on their own.
 */
export async function listenTracked(server: Server, open: { keys(): Iterable<{ destroy(): void }> }): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track({
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open.keys()) s.destroy();
        server.close(() => resolve());
      }),
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A fresh temp directory, removed by closeAll(). */
export function tempDir(prefix = 'outrigger-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** A pause, for pacing what a test sends (a slow client); never to wait for something to happen. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits (bounded) until `cond()` is true; the error names `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  await eventually(() => (cond() ? true : undefined), what, timeoutMs);
}

/**
 * Waits (bounded) until `probe` resolves to something other than undefined and returns it. A
 * probe that throws is tried again; the last error is in the timeout's message.
 */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  return vi.waitFor(
    async () => {
      const v = await probe();
      if (v === undefined) throw new Error(`still waiting for ${what}`);
      return v;
    },
    { timeout: timeoutMs, interval: intervalMs },
  );
}

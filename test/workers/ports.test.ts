// The main thread's port resolution (src/workers/ports.ts), on real 127.0.0.1 sockets: a port
// found free stays reserved until the workers have bound it. Without the reservation another
// socket could take the port in the window between the check and a worker's bind (a worker's
// start-up, hundreds of milliseconds): test/edge/safety's sidecar once failed to start in CI
// with "bind 127.0.0.1:44223: Address already in use" for a port 0 listener.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import type { Snapshot } from '../../src/config/types.js';
import { reusePortListen, socketLocalPort } from '../../src/net/reuseport.js';
import { PortInUseError, resolvePorts } from '../../src/workers/ports.js';
import { OPTS, ok } from '../config/helpers.js';
import { closeSync } from 'node:fs';

function snap(address: string): Snapshot {
  const raw = {
    node: { workers: 1 },
    listeners: [{ name: 'in', address, engine: 'strict', routes: [{ cluster: 'app' }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1:9' }] }],
  };
  return ok(compileConfig(raw, OPTS)).snapshot;
}

/** Binds host:port without SO_REUSEPORT (what any other program, or a connection's local end, would need): the error code, or null when it bound. */
function exclusiveBind(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

describe('resolvePorts', () => {
  it('port 0: the port chosen stays held against other binds until release, while SO_REUSEPORT listeners (the workers) can bind it', async () => {
    const { snapshot, release } = await resolvePorts(snap('127.0.0.1:0'), null);
    cleanups.push(release);
    const port = snapshot.listeners[0]!.port;
    expect(port).toBeGreaterThan(0);

    // Another socket cannot take it in the window before the workers bind.
    expect(await exclusiveBind(port)).toBe('EADDRINUSE');

    // A worker's listener binds it, and takes connections (the reservation takes none).
    const fd = reusePortListen('127.0.0.1', port);
    expect(socketLocalPort(fd)).toBe(port);
    const server = net.createServer((s) => s.end('worker'));
    await new Promise<void>((resolve) => server.listen({ fd }, resolve));
    cleanups.push(() => server.close());
    for (let i = 0; i < 5; i++) {
      const text = await new Promise<string>((resolve, reject) => {
        let got = '';
        net
          .connect({ host: '127.0.0.1', port })
          .on('data', (d) => (got += d.toString()))
          .on('end', () => resolve(got))
          .on('error', reject);
      });
      expect(text).toBe('worker');
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));

    release();
    release(); // idempotent
    expect(await exclusiveBind(port)).toBeNull();
  });

  it('a configured port another process holds is refused, and nothing stays reserved', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    cleanups.push(() => holder.close());
    const held = (holder.address() as net.AddressInfo).port;
    const free = await resolvePorts(snap('127.0.0.1:0'), null);
    const freePort = free.snapshot.listeners[0]!.port;
    free.release();

    const raw = {
      node: { workers: 1 },
      listeners: [
        { name: 'a', address: `127.0.0.1:${freePort}`, engine: 'strict', routes: [{ cluster: 'app' }] },
        { name: 'b', address: `127.0.0.1:${held}`, engine: 'strict', routes: [{ cluster: 'app' }] },
      ],
      clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1:9' }] }],
    };
    const err = await resolvePorts(ok(compileConfig(raw, OPTS)).snapshot, null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortInUseError);
    expect((err as Error).message).toContain(`listener b: 127.0.0.1:${held} is already in use by another process`);
    // Listener a's port was reserved before b failed: it was let go.
    expect(await exclusiveBind(freePort)).toBeNull();
  });

  it('a port the previous config holds is neither checked nor reserved again', async () => {
    const first = await resolvePorts(snap('127.0.0.1:0'), null);
    const port = first.snapshot.listeners[0]!.port;
    // The workers bound it (and hold it now); the first reservation is gone.
    const fd = reusePortListen('127.0.0.1', port);
    cleanups.push(() => closeSync(fd));
    first.release();

    const second = await resolvePorts(snap('127.0.0.1:0'), first.snapshot);
    expect(second.snapshot.listeners[0]!.port).toBe(port);
    second.release();
  });
});

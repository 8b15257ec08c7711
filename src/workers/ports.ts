// Listener ports on the main thread, before any worker binds: port 0 becomes one concrete free
// port for every worker (kept across reloads for the same listener name), and a port that we
// do not hold yet must be free: uWS binds with SO_REUSEPORT and would otherwise silently share
// it with a stale process. A port found free stays reserved until the workers have bound it:
// between the check and a worker's bind (a worker's start-up, hundreds of milliseconds) the
// kernel would otherwise hand the same port to any other socket, an outgoing connection's
// local end included, and the worker's bind would fail.

import { closeSync } from 'node:fs';
import net from 'node:net';
import type { ListenerSpec, Snapshot } from '../config/types.js';
import { reservePort, reusePortAvailable } from '../net/reuseport.js';

/** A listener port that another process already holds, or a bind failure: refused at start. */
export class PortInUseError extends Error {}

/** A snapshot whose listener ports are concrete, and the reservations that hold the new ones. */
export interface ResolvedPorts {
  readonly snapshot: Snapshot;
  /** Lets the reserved ports go: once every worker has bound them, or failed to. Idempotent. */
  release(this: void): void;
}

/** Tries for a port 0 listener before giving up: each one lost a race for a port found free. */
const PORT_ZERO_ATTEMPTS = 5;

/**
 * Gives every listener a concrete port (port 0 → a free port, kept across reloads for the same
 * listener name) and checks that ports we do not hold yet are free, by binding them without
 * SO_REUSEPORT: that fails if any other socket, SO_REUSEPORT or not, is bound there. Each such
 * port is then reserved (reservePort) until `release()`.
 */
export async function resolvePorts(snapshot: Snapshot, previous: Snapshot | null): Promise<ResolvedPorts> {
  const reserved: number[] = [];
  const release = (): void => {
    for (const fd of reserved.splice(0)) closeSync(fd);
  };
  const held = new Map<string, ListenerSpec>();
  for (const l of previous?.listeners ?? []) held.set(l.name, l);
  const heldAddrs = new Set([...held.values()].map((l) => `${l.host}:${l.port}`));
  const listeners: ListenerSpec[] = [];
  const problems: string[] = [];
  for (const l of snapshot.listeners) {
    let port = l.port;
    const prev = held.get(l.name);
    if (port === 0 && prev !== undefined && prev.host === l.host) port = prev.port;
    if (port === 0 || !heldAddrs.has(`${l.host}:${port}`)) {
      try {
        const claimed = await claim(l.host, port);
        port = claimed.port;
        if (claimed.fd !== null) reserved.push(claimed.fd);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? String(e);
        problems.push(
          code === 'EADDRINUSE'
            ? `listener ${l.name}: ${l.host}:${port} is already in use by another process (is another sidecar still running?)`
            : `listener ${l.name}: cannot bind ${l.host}:${port}: ${code}`,
        );
        continue;
      }
    }
    listeners.push(port === l.port ? l : Object.freeze({ ...l, port }));
  }
  if (problems.length > 0) {
    release();
    throw new PortInUseError(problems.join('; '));
  }
  return { snapshot: Object.freeze({ ...snapshot, listeners: Object.freeze(listeners) }), release };
}

/**
 * A free port (`wanted`, or any for 0) and its reservation (null without the native addon, which
 * the listeners that bind through it need anyway). Port 0 tries again when another socket took
 * the port between the check and the reservation.
 */
async function claim(host: string, wanted: number): Promise<{ port: number; fd: number | null }> {
  for (let attempt = 1; ; attempt++) {
    const port = await probeFree(host, wanted);
    if (!reusePortAvailable()) return { port, fd: null };
    try {
      return { port, fd: reservePort(host, port) };
    } catch (e) {
      if (wanted !== 0 || attempt >= PORT_ZERO_ATTEMPTS || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
}

function probeFree(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
      srv.close(() => resolve(bound));
    });
  });
}

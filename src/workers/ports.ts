// Listener ports on the main thread, before any worker binds: port 0 becomes one concrete free
// port for every worker (kept across reloads for the same listener name), and a port that we
// do not hold yet must be free: uWS binds with SO_REUSEPORT and would otherwise silently share
// it with a stale process.

import net from 'node:net';
import type { ListenerSpec, Snapshot } from '../config/types.js';

/** A listener port that another process already holds, or a bind failure: refused at start. */
export class PortInUseError extends Error {}

/**
 * Gives every listener a concrete port (port 0 → a free port, kept across reloads for the same
 * listener name) and checks that ports we do not hold yet are free, by binding them without
 * SO_REUSEPORT: that fails if any other socket, SO_REUSEPORT or not, is bound there.
 */
export async function resolvePorts(snapshot: Snapshot, previous: Snapshot | null): Promise<Snapshot> {
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
        port = await probeFree(l.host, port);
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
  if (problems.length > 0) throw new PortInUseError(problems.join('; '));
  return Object.freeze({ ...snapshot, listeners: Object.freeze(listeners) });
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

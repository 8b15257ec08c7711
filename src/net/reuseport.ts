// Typed wrapper over the native/reuseport addon: SO_REUSEPORT listening sockets that each worker
// thread passes to `net.Server.listen({fd})` (Node 20's `net` has no reusePort option), so the
// kernel spreads connections across workers; port reservations (bound, not listening) that hold
// a port for them until they have bound it; plus SO_ORIGINAL_DST for iptables interception.

import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Addon {
  listen(host: string, port: number, backlog: number): number;
  reserve(host: string, port: number): number;
  localPort(fd: number): number;
  dup(fd: number): number;
  originalDst(fd: number): { address: string; port: number } | null;
  exitNow(code: number): never;
  trimMalloc(): boolean;
}

/** Nearest directory at or above this file that holds package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

let addon: Addon | undefined;
let loadError: Error | undefined;

function load(): Addon {
  if (addon !== undefined) return addon;
  if (loadError === undefined) {
    let file = 'native/reuseport/build/Release/reuseport.node';
    try {
      file = path.join(packageRoot(), file);
      addon = createRequire(import.meta.url)(file) as Addon;
      return addon;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      loadError = new Error(`the reuseport native addon is not built: run npm ci (loading ${file} failed: ${why})`, {
        cause: err,
      });
    }
  }
  throw loadError;
}

/** True when the native addon loaded (the functions below would otherwise throw). */
export function reusePortAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/**
 * A non-blocking, close-on-exec TCP listening socket with SO_REUSEADDR and SO_REUSEPORT, bound to
 * `host` (an IPv4 or IPv6 literal; "::" is dual-stack) and `port` (0: any free port). Returns the
 * fd for `server.listen({fd})`, which takes ownership (server.close() closes it). Throws an Error
 * with `code` (e.g. EADDRINUSE, also when a socket without SO_REUSEPORT holds the port).
 */
export function reusePortListen(host: string, port: number, backlog = 511): number {
  return load().listen(host, port, backlog);
}

/**
 * A socket bound to `host`:`port` with SO_REUSEPORT alone (no SO_REUSEADDR) and not listening:
 * it takes no connections, yet holds the port against any other bind and against the kernel's
 * choice of a local port for an outgoing connection, while SO_REUSEPORT listeners of the same
 * user (uWS's, reusePortListen's) can still bind it. Returns the fd; close it (fs.closeSync)
 * once they have. Throws like reusePortListen.
 */
export function reservePort(host: string, port: number): number {
  return load().reserve(host, port);
}

/** The local port of a socket (e.g. after `reusePortListen(host, 0)`). */
export function socketLocalPort(fd: number): number {
  return load().localPort(fd);
}

/**
 * Binds `server` to host:port on an SO_REUSEPORT socket (every worker binds the same port; the
 * kernel spreads connections across them). Resolves to the bound port (port 0: the one chosen);
 * rejects with the listener's name and address when the port cannot be had.
 *
 * `inherit`: the listening fd of this worker's current listener on the same address, when a reload
 * replaces that listener. `server` then listens on a duplicate of it instead of a new socket, so
 * the connections already queued in its accept backlog are accepted by `server` once the old
 * listener closes its own fd; a new socket would leave them in the old one, whose close resets them.
 */
export function listenReusePort(
  server: Server,
  at: { readonly name: string; readonly host: string; readonly port: number },
  inherit: number | null = null,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = inherit === null ? reusePortListen(at.host, at.port) : load().dup(inherit);
    } catch (e) {
      reject(new Error(`listener ${at.name}: cannot listen on ${at.host}:${at.port}: ${(e as Error).message}`));
      return;
    }
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve(socketLocalPort(fd));
    });
  });
}

/** The fd `server` listens on (null when it does not listen, or listens through uWS). */
export function listeningFd(server: Server): number | null {
  const fd = (server as Server & { _handle?: { fd?: number } | null })._handle?.fd;
  return server.listening && typeof fd === 'number' && fd >= 0 ? fd : null;
}

/**
 * The destination an accepted connection was addressed to before an iptables REDIRECT/DNAT, or
 * null when it was not redirected (no conntrack entry, or the original destination is the
 * socket's own local address).
 */
export function originalDestination(fd: number): { address: string; port: number } | null {
  return load().originalDst(fd);
}

/** True when the addon loaded and has SO_ORIGINAL_DST (an `original_destination` listener needs it). */
export function originalDestinationAvailable(): boolean {
  try {
    return typeof load().originalDst === 'function';
  } catch {
    return false;
  }
}

/**
 * Ends the process at once with `code` (_exit(2): no exit handlers, no worker teardown). Only for
 * a worker stuck with uWS sockets open, which Node's own exit would turn into an abort.
 */
export function exitNow(code: number): never {
  return load().exitNow(code);
}

/**
 * glibc's malloc_trim(0): the free pages of every malloc arena go back to the kernel. Whether
 * anything was released (false where libc is not glibc). Walks every arena under its lock, so it
 * is for idle moments (cli/idle_memory.ts), not the request path.
 */
export function trimMalloc(): boolean {
  return load().trimMalloc();
}

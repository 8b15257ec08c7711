// Start-up checks that must fail loudly: the Node major version, that uWebSockets.js loaded
// its native binary (it silently falls back to a slow pure-JS implementation otherwise), and
// that a config routing by original destination has the addon that reads it.

import { createRequire } from 'node:module';
import type { ListenerSpec } from '../config/types.js';
import { originalDestinationAvailable } from '../net/reuseport.js';

/** Returns null when the runtime is fine, or one sentence saying what is wrong. */
export function checkRuntime(): string | null {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 20) {
    return `Node.js 20 is required (found ${process.versions.node}); the uWebSockets.js build outrigger uses only loads on Node 20.`;
  }
  let uws: { getParts?: unknown };
  try {
    uws = createRequire(import.meta.url)('uWebSockets.js') as { getParts?: unknown };
  } catch (e) {
    return `uWebSockets.js could not be loaded (${(e as Error).message.split('\n')[0]}); run "npm ci".`;
  }
  if (typeof uws.getParts !== 'function') {
    return 'uWebSockets.js loaded without its native binary (pure-JS fallback); refusing to run slowly. Check that this platform is linux-x64 with glibc >= 2.36 and Node 20.';
  }
  return null;
}

/**
 * Null when no listener routes by original destination or the native addon that reads
 * SO_ORIGINAL_DST loaded; else one sentence (refused at start, not at the first connection).
 */
export function checkInterception(
  listeners: readonly Pick<ListenerSpec, 'name' | 'originalDestination'>[],
  available = originalDestinationAvailable,
): string | null {
  const l = listeners.find((x) => x.originalDestination !== null);
  if (l === undefined || available()) return null;
  return `listener ${l.name} has original_destination: true, but the native addon that reads SO_ORIGINAL_DST (native/reuseport) is not built or not loadable: run "npm ci"`;
}

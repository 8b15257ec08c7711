// Start-up checks that must fail loudly: the Node major version, that uWebSockets.js loaded
// its native binary when a listener uses the uws engine (it silently falls back to a slow pure-JS
// implementation otherwise), and that a config routing by original destination has the addon
// that reads it.

import { createRequire } from 'node:module';
import type { ListenerSpec } from '../config/types.js';
import { uwsNativeProblem } from '../dataplane/uws_check.js';
import { originalDestinationAvailable } from '../net/reuseport.js';

/** Returns null when the runtime is fine, or one sentence saying what is wrong. */
export function checkRuntime(): string | null {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 20) {
    return `Node.js 20 is required (found ${process.versions.node}); the uWebSockets.js build outrigger uses only loads on Node 20.`;
  }
  return null;
}

/**
 * Null when no listener uses the uws engine, or uWebSockets.js loads with its native binary;
 * else one sentence. Only then is uWS loaded on the main thread (a strict-only sidecar never
 * loads it: ~2 MiB); a worker checks again when a reload adds a uws listener (uws_engine.ts).
 */
export function checkEngines(listeners: readonly Pick<ListenerSpec, 'engine'>[]): string | null {
  if (!listeners.some((l) => l.engine === 'uws')) return null;
  let uws: unknown;
  try {
    uws = createRequire(import.meta.url)('uWebSockets.js');
  } catch (e) {
    return `uWebSockets.js could not be loaded (${(e as Error).message.split('\n')[0]}); run "npm ci".`;
  }
  return uwsNativeProblem(uws);
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

// Start-up checks that must fail loudly: the Node major version, and that uWebSockets.js loaded
// its native binary (it silently falls back to a slow pure-JS implementation otherwise).

import { createRequire } from 'node:module';

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

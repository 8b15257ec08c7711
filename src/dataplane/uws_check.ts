// Whether uWebSockets.js loaded its native binary: it silently falls back to a slow pure-JS
// implementation when the binary does not load (another glibc, another Node), and outrigger
// refuses to run on that. Checked on the main thread at start (cli/preflight.ts) and in a worker
// when it loads the uws engine (uws_engine.ts).

/** Null when `uws` (the loaded module) is the native build, else one sentence. */
export function uwsNativeProblem(uws: unknown): string | null {
  if (typeof (uws as { getParts?: unknown } | null)?.getParts === 'function') return null;
  return 'uWebSockets.js loaded without its native binary (pure-JS fallback); refusing to run slowly. Check that this platform is linux-x64 with glibc >= 2.36 and Node 20.';
}

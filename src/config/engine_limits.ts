// What an engine cannot apply is refused, never ignored: `engine: uws` has one fixed HTTP idle
// timeout (~10 s in this uWS build: a head or body that trickles slower is cut even while it
// progresses, and one that trickles faster is never cut) and no hook to count or refuse
// connections at accept (this build has no `App.filter`). So `timeouts` and `max_connections` on
// a uws listener are problems that name the engine that applies them. Reads the raw input
// defensively, like checks.ts, so these come in the same pass as every other problem.
import type { RawProblem } from './paths.js';

const USE_STRICT = 'use engine: strict (the default), which applies it';

/** Problems for listener settings that the listener's engine cannot apply. */
export function engineLimitProblems(raw: unknown): RawProblem[] {
  const out: RawProblem[] = [];
  if (!isObj(raw) || !Array.isArray(raw['listeners'])) return out;
  raw['listeners'].forEach((l: unknown, i: number) => {
    if (!isObj(l) || l['engine'] !== 'uws') return;
    if (l['timeouts'] !== undefined) {
      out.push({
        path: ['listeners', i, 'timeouts'],
        message: `engine: uws cannot apply timeouts (this uWS build has one fixed ~10 s idle timeout for heads and bodies, and cuts an upload that trickles slower than that even while it progresses): ${USE_STRICT}`,
      });
    }
    if (l['max_connections'] !== undefined) {
      out.push({
        path: ['listeners', i, 'max_connections'],
        message: `engine: uws cannot apply max_connections (this uWS build has no hook to count or refuse connections at accept): ${USE_STRICT}`,
      });
    }
  });
  return out;
}

function isObj(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

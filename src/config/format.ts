// A config's problems as text, for stderr and logs. Free of the parsers and the schema (zod,
// yaml, js-yaml), so that the sidecar's main thread can word a refusal without loading them.
import type { ConfigProblem } from './types.js';

/** One problem per line: `listeners[0].routes[2].cluster: unknown cluster "ap" (line 14)`. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${p.path === '' ? '' : `${p.path}: `}${p.message}${p.line === null ? '' : ` (line ${p.line})`}`).join('\n');
}

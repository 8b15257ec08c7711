// Route and header regexes run over attacker-controlled input (paths and header values up to
// the head limit), so they must match in linear time. V8 has a linear (automaton) engine beside
// its backtracking one: a pattern is accepted only when the linear engine can run it (no
// backreferences, lookaround or similar), and V8 is told to switch to that engine when a match
// backtracks excessively — ordinary matches keep the fast engine (≈ 30 ns for a route regex here),
// catastrophic ones (`^(a+)+$` on "aaa…b") finish in linear time instead of hanging a worker.
// V8 ignores flags it does not know, so a self-test (linearRegexUnavailable) proves the engine is
// in effect before any regex is accepted; without it every regex in a config is refused.

import v8 from 'node:v8';

/** Backtracks before V8 falls back to the linear engine for one match. */
const BACKTRACKS_BEFORE_FALLBACK = 10_000;

let enabled = false;

/** Turns on V8's linear engine and the fallback to it (process-wide flags; idempotent). */
export function enableLinearRegex(): void {
  if (enabled) return;
  enabled = true;
  v8.setFlagsFromString('--enable-experimental-regexp-engine');
  v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  v8.setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`);
}

/** Thrown by compileLinearRegex when this runtime cannot guarantee linear-time matching at all. */
export class LinearRegexUnavailable extends Error {
  override readonly name = 'LinearRegexUnavailable';
}

/** The probe: `^(a+)+$` on 25 a's and a mismatch backtracks 2^25 times (seconds) without the fallback. */
const PROBE_SOURCE = '^(a+)+$';
const PROBE_INPUT = `${'a'.repeat(25)}!`;
/**
 * With the fallback the probe takes well under a millisecond (10 000 backtracks, then a linear
 * pass); without it, seconds. The bound sits between the two, far from both.
 */
const PROBE_BOUND_MS = 250;

/** undefined: not run yet; null: the linear engine is in effect; else why it is not. */
let selfTest: string | null | undefined;

/**
 * Start-up self-test, once per thread before the first regex is accepted: turns the linear
 * engine on, then checks that it really is in effect — the `l` flag compiles (the engine exists)
 * and a catastrophic match finishes at once (V8 switches to it on excessive backtracking). A
 * Node whose V8 ignores these flags would otherwise backtrack silently. Null when in effect,
 * else the reason it is not.
 */
export function linearRegexUnavailable(): string | null {
  if (selfTest !== undefined) return selfTest;
  enableLinearRegex();
  selfTest = probe();
  return selfTest;
}

function probe(): string | null {
  try {
    // eslint-disable-next-line no-invalid-regexp -- 'l' is V8's linear-engine flag, unknown to ESLint
    new RegExp('a', 'l');
  } catch {
    return `V8's linear regex engine is not available in Node ${process.versions.node} (the 'l' flag does not compile)`;
  }
  const re = new RegExp(PROBE_SOURCE);
  const t0 = performance.now();
  re.test(PROBE_INPUT);
  const ms = performance.now() - t0;
  if (ms > PROBE_BOUND_MS) {
    return `V8 in Node ${process.versions.node} does not switch to its linear regex engine on excessive backtracking (a catastrophic probe took ${Math.round(ms)} ms)`;
  }
  return null;
}

/**
 * Compiles `source` for matching in linear time, or throws with V8's reason (for example
 * "Cannot be executed in linear time" for a backreference or lookahead), or throws
 * LinearRegexUnavailable when the self-test found that this runtime cannot match in linear time
 * (then no regex is accepted: never a silently backtracking one).
 */
export function compileLinearRegex(source: string): RegExp {
  const unavailable = linearRegexUnavailable();
  if (unavailable !== null) throw new LinearRegexUnavailable(unavailable);
  const re = new RegExp(source); // syntax errors read as they always do
  // eslint-disable-next-line no-invalid-regexp -- 'l' is V8's linear-engine flag (enabled by enableLinearRegex() above), unknown to ESLint
  new RegExp(source, 'l'); // proves the linear engine can run it, should backtracking explode
  return re;
}

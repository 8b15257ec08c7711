// Route and header regexes run over attacker-controlled input (paths and header values up to
// the head limit), so they must match in linear time. V8 has a linear (automaton) engine beside
// its backtracking one: a pattern is accepted only when the linear engine can run it (no
// backreferences, lookaround or similar), and V8 is told to switch to that engine when a match
// backtracks excessively — ordinary matches keep the fast engine (≈ 30 ns for a route regex here),
// catastrophic ones (`^(a+)+$` on "aaa…b") finish in linear time instead of hanging a worker.

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

/**
 * Compiles `source` for matching in linear time, or throws with V8's reason (for example
 * "Cannot be executed in linear time" for a backreference or lookahead).
 */
export function compileLinearRegex(source: string): RegExp {
  enableLinearRegex();
  const re = new RegExp(source); // syntax errors read as they always do
  // eslint-disable-next-line no-invalid-regexp -- 'l' is V8's linear-engine flag (enabled by enableLinearRegex() above), unknown to ESLint
  new RegExp(source, 'l'); // proves the linear engine can run it, should backtracking explode
  return re;
}

// A state machine's whole table checked against the moves a test expects (src/upstream/transitions.ts):
// every listed move allowed, every other pair of states refused with the machine's error.

import { expect } from 'vitest';
import { transition, type TransitionTable } from '../../src/upstream/transitions.js';

/** Tries every `from → to` over the table's states: those in `legal` return `to`, every other throws. */
export function expectExactMoves<S extends string>(table: TransitionTable<S>, machine: string, legal: readonly `${S}→${S}`[]): void {
  const states = Object.keys(table) as S[];
  for (const from of states) {
    for (const to of states) {
      const move = () => transition(table, machine, 1, from, to);
      if (legal.includes(`${from}→${to}`)) expect(move(), `${from} → ${to}`).toBe(to);
      else expect(move, `${from} → ${to}`).toThrow(`${machine} 1: illegal transition ${from} → ${to}`);
    }
  }
}

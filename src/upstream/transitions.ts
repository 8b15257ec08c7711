// The connections' state machines (STYLE §6): each lists once, in a table, where every one of its
// states may go, and makes every move through `transition`, which refuses a move the table does
// not list. Such a move is a bug: it throws, and the tests walk each table's full matrix.

/** For each state of a machine, the states it may move to. */
export type TransitionTable<S extends string> = Readonly<Record<S, readonly S[]>>;

/**
 * `to` when `table` allows `from → to`; otherwise throws `<machine> <id>: illegal transition
 * <from> → <to>` (machine: what the states belong to, e.g. "h2 session").
 */
export function transition<S extends string>(table: TransitionTable<S>, machine: string, id: number, from: S, to: S): S {
  if (!table[from].includes(to)) throw new Error(`${machine} ${id}: illegal transition ${from} → ${to}`);
  return to;
}

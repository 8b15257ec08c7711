// The routes of one host pattern, indexed by path: exact paths in a map, prefixes (any path = the
// empty prefix) in a radix tree (edges labelled with strings, split where two paths diverge), and
// regex routes in the same tree at the node of their literal prefix (regex_prefix.ts).
// A lookup walks the tree along the request path and hands the route lists whose path can match
// to a Candidates merge, which checks them in config order: the cost follows the path's length
// and the routes that can match, not the route count. Groups are frozen data; Candidates is
// scratch.

import type { HeaderLookup } from './router.js';

/** What the tree needs of a compiled route. */
export interface RouteCandidate {
  /** Position in the listener's route list: lower wins. */
  readonly index: number;
  /** Method and header matchers only (the tree has already vouched for the path). */
  matchesConditions(method: string, header: HeaderLookup): boolean;
  /** Path, method and headers (for regex routes, whose literal prefix only narrows them down). */
  matchesRest(method: string, path: string, header: HeaderLookup): boolean;
}

/** Children looked up in a Map from this many on; fewer are scanned (cheaper for a handful). */
const FANOUT_MAP_MIN = 8;

class PathNode<T extends RouteCandidate> {
  /** The edge from the parent: the path characters this node adds (empty at the root). */
  label: string;
  /** Routes whose path prefix ends here, in config order. */
  prefix: T[] | null = null;
  /** Regex routes whose literal prefix ends here, in config order (their regex still decides). */
  regex: T[] | null = null;
  /** First character code of each child's label, and the child; or `byCode` for a wide fan-out. */
  codes: number[] = [];
  kids: PathNode<T>[] = [];
  byCode: Map<number, PathNode<T>> | null = null;

  constructor(label: string) {
    this.label = label;
  }

  child(code: number): PathNode<T> | undefined {
    const byCode = this.byCode;
    if (byCode !== null) return byCode.get(code);
    const codes = this.codes;
    for (let i = 0; i < codes.length; i++) if (codes[i] === code) return this.kids[i];
    return undefined;
  }

  setChild(code: number, node: PathNode<T>): void {
    const at = this.codes.indexOf(code);
    if (at >= 0) this.kids[at] = node;
    else {
      this.codes.push(code);
      this.kids.push(node);
    }
  }

  /** After the last insert: wide fan-outs get their map; then frozen. */
  seal(): void {
    for (const kid of this.kids) kid.seal();
    if (this.kids.length >= FANOUT_MAP_MIN) this.byCode = new Map(this.codes.map((c, i) => [c, this.kids[i] as PathNode<T>]));
    if (this.prefix !== null) Object.freeze(this.prefix);
    if (this.regex !== null) Object.freeze(this.regex);
    Object.freeze(this.codes);
    Object.freeze(this.kids);
    Object.freeze(this);
  }
}

/** Builds a RouteGroup: add routes in config order, then `build()`. */
export class RouteGroupBuilder<T extends RouteCandidate> {
  private readonly root = new PathNode<T>('');
  private readonly exact = new Map<string, T[]>();

  addExact(path: string, route: T): void {
    const routes = this.exact.get(path);
    if (routes === undefined) this.exact.set(path, [route]);
    else routes.push(route);
  }

  addPrefix(prefix: string, route: T): void {
    const node = this.nodeFor(prefix);
    (node.prefix ??= []).push(route);
  }

  /** A regex route: a candidate for the paths that start with `literalPrefix`, checked in full. */
  addRegex(literalPrefix: string, route: T): void {
    const node = this.nodeFor(literalPrefix);
    (node.regex ??= []).push(route);
  }

  build(): RouteGroup<T> {
    this.root.seal();
    for (const routes of this.exact.values()) Object.freeze(routes);
    return new RouteGroup(this.exact.size === 0 ? null : this.exact, this.root);
  }

  /** The node whose path from the root is exactly `path`, splitting an edge or adding one. */
  private nodeFor(path: string): PathNode<T> {
    let node = this.root;
    let pos = 0;
    while (pos < path.length) {
      const code = path.charCodeAt(pos);
      const next = node.child(code);
      if (next === undefined) {
        const leaf = new PathNode<T>(path.slice(pos));
        node.setChild(code, leaf);
        return leaf;
      }
      const label = next.label;
      let common = 1;
      while (common < label.length && pos + common < path.length && label.charCodeAt(common) === path.charCodeAt(pos + common)) common++;
      if (common < label.length) {
        // `path` leaves (or ends inside) this edge: split it where they part.
        const middle = new PathNode<T>(label.slice(0, common));
        next.label = label.slice(common);
        middle.setChild(next.label.charCodeAt(0), next);
        node.setChild(code, middle);
        node = middle;
      } else {
        node = next;
      }
      pos += common;
    }
    return node;
  }
}

export class RouteGroup<T extends RouteCandidate> {
  constructor(
    /** Exact path → its routes in config order; null when there are none. */
    private readonly exact: ReadonlyMap<string, readonly T[]> | null,
    private readonly root: PathNode<T>,
  ) {
    Object.freeze(this);
  }

  /**
   * Adds to `into` the route lists whose path can match `path`: the routes with exactly that
   * path, and on every node whose path is a prefix of `path`, its prefix routes (both checked for
   * method and headers only) and its regex routes (checked in full).
   */
  collect(path: string, into: Candidates<T>): void {
    const exact = this.exact?.get(path);
    if (exact !== undefined) into.add(exact, false);
    let node: PathNode<T> | undefined = this.root;
    let pos = 0;
    for (;;) {
      if (node.prefix !== null) into.add(node.prefix, false);
      if (node.regex !== null) into.add(node.regex, true);
      if (pos === path.length) return;
      node = node.child(path.charCodeAt(pos));
      if (node === undefined || !path.startsWith(node.label, pos)) return;
      pos += node.label.length;
    }
  }
}

/**
 * Scratch for one lookup at a time: the candidate lists of the groups a request can match, merged
 * by route index so that routes are checked in config order and the first that accepts the
 * request wins — the same routes, in the same order, as a linear scan checks past host and path.
 * Owned by one router, reused by every lookup (a lookup runs to completion before the next).
 */
export class Candidates<T extends RouteCandidate> {
  private lists: (readonly T[])[] = [];
  /** Whether each list's routes need their path checked too (regex routes). */
  private full: boolean[] = [];
  private cursors: number[] = [];
  private count = 0;

  reset(): void {
    this.count = 0;
  }

  add(list: readonly T[], full: boolean): void {
    const n = this.count++;
    if (n < this.lists.length) {
      this.lists[n] = list;
      this.full[n] = full;
      this.cursors[n] = 0;
    } else {
      this.lists.push(list);
      this.full.push(full);
      this.cursors.push(0);
    }
  }

  /** The first route in config order, among the lists added since reset(), that accepts the request. */
  first(method: string, path: string, header: HeaderLookup): T | null {
    const count = this.count;
    if (count === 0) return null;
    if (count === 1) return firstOf(this.lists[0] as readonly T[], this.full[0] as boolean, method, path, header);
    const lists = this.lists;
    const cursors = this.cursors;
    for (;;) {
      let next = -1;
      let nextIndex = Number.MAX_SAFE_INTEGER;
      for (let k = 0; k < count; k++) {
        const list = lists[k] as readonly T[];
        const cursor = cursors[k] as number;
        if (cursor < list.length) {
          const index = (list[cursor] as T).index;
          if (index < nextIndex) {
            next = k;
            nextIndex = index;
          }
        }
      }
      if (next < 0) return null;
      const cursor = cursors[next] as number;
      cursors[next] = cursor + 1;
      const route = (lists[next] as readonly T[])[cursor] as T;
      if (this.full[next] === true ? route.matchesRest(method, path, header) : route.matchesConditions(method, header)) return route;
    }
  }
}

function firstOf<T extends RouteCandidate>(list: readonly T[], full: boolean, method: string, path: string, header: HeaderLookup): T | null {
  for (let i = 0; i < list.length; i++) {
    const route = list[i] as T;
    if (full ? route.matchesRest(method, path, header) : route.matchesConditions(method, header)) return route;
  }
  return null;
}

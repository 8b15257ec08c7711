// The busiest request paths (what `outrigger top` shows), bounded on both sides. A worker counts
// each (listener, route, method, path) in a cell of its own, at most MAX_WORKER_PATHS cells at
// once; a cell idle for a whole stats interval is dropped, so a path that keeps being requested
// keeps its cell and a scan of one-off paths only churns the free ones. Requests that find no
// free cell are counted as untracked. The main thread adds the workers' growth into at most
// MAX_TRACKED_PATHS entries (cumulative since they entered); when full, the entry idle the longest
// makes room, never one that grew in the last RECENT_MS. Pure data; no I/O.

/** Distinct paths one worker counts at once. */
export const MAX_WORKER_PATHS = 64;
/** Distinct paths the main thread keeps (what GET /stats lists). */
export const MAX_TRACKED_PATHS = 128;
/** Longer paths are counted under their first this-many characters. */
export const MAX_PATH_CHARS = 200;
/** A main-side entry that grew this recently is never evicted (the newcomer is untracked instead). */
const RECENT_MS = 2000;

/** One path's growth over one stats interval on one worker. */
export interface PathDelta {
  readonly listener: string;
  /** '' = no route matched. */
  readonly route: string;
  readonly method: string;
  readonly path: string;
  readonly requests: number;
  /** 5xx or no response (as /stats counts failures). */
  readonly failures: number;
  readonly durationSumMicros: number;
}

/** What a worker posts each interval: the paths that grew, and the requests no cell could take. */
export interface PathsDelta {
  readonly paths: readonly PathDelta[];
  readonly untracked: number;
}

class PathCell {
  requests = 0;
  failures = 0;
  durationSumMicros = 0;

  constructor(
    /** The route's method → path → cell map this cell sits in (to leave it when idle). */
    readonly byMethod: Map<string, Map<string, PathCell>>,
    readonly listener: string,
    readonly route: string,
    readonly method: string,
    readonly path: string,
  ) {}

  /** Leaves its route's maps, and the method's map with it when it was the method's last path. */
  leave(): void {
    const byPath = this.byMethod.get(this.method);
    if (byPath === undefined) return;
    byPath.delete(this.path);
    if (byPath.size === 0) this.byMethod.delete(this.method);
  }
}

/**
 * Worker side: per-route maps of method → path → cell, at most MAX_WORKER_PATHS cells in all.
 * Maps exist only for cells (a client inventing methods or paths cannot make them grow).
 */
export class PathCounter {
  /** Keyed by the owner's per-route object (its stats handle), so no key string is built per request. */
  private readonly routes = new WeakMap<object, Map<string, Map<string, PathCell>>>();
  private cells: PathCell[] = [];
  private untracked = 0;

  /** One finished request; `routeKey` stands for (listener, route), whose names it carries. */
  record(routeKey: object, listener: string, route: string, method: string, path: string, status: number, micros: number): void {
    const key = path.length > MAX_PATH_CHARS ? path.slice(0, MAX_PATH_CHARS) : path;
    let cell = this.routes.get(routeKey)?.get(method)?.get(key);
    if (cell === undefined) {
      if (this.cells.length >= MAX_WORKER_PATHS) {
        this.untracked += 1;
        return;
      }
      cell = this.newCell(routeKey, listener, route, method, key);
    }
    cell.requests += 1;
    // As /stats counts them (worker_stats.ts' code classes): 5xx, and no response or a status out of range.
    if (status < 100 || status >= 500) cell.failures += 1;
    cell.durationSumMicros += micros;
  }

  private newCell(routeKey: object, listener: string, route: string, method: string, path: string): PathCell {
    let byMethod = this.routes.get(routeKey);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.routes.set(routeKey, byMethod);
    }
    let byPath = byMethod.get(method);
    if (byPath === undefined) {
      byPath = new Map();
      byMethod.set(method, byPath);
    }
    const cell = new PathCell(byMethod, listener, route, method, path);
    byPath.set(path, cell);
    this.cells.push(cell);
    return cell;
  }

  /** The growth since the last call; cells that did not grow are dropped (null: nothing to report). */
  take(): PathsDelta | null {
    const paths: PathDelta[] = [];
    const kept: PathCell[] = [];
    for (const c of this.cells) {
      if (c.requests === 0) {
        c.leave();
        continue;
      }
      paths.push({
        listener: c.listener,
        route: c.route,
        method: c.method,
        path: c.path,
        requests: c.requests,
        failures: c.failures,
        durationSumMicros: c.durationSumMicros,
      });
      c.requests = 0;
      c.failures = 0;
      c.durationSumMicros = 0;
      kept.push(c);
    }
    this.cells = kept;
    const untracked = this.untracked;
    this.untracked = 0;
    return paths.length === 0 && untracked === 0 ? null : { paths, untracked };
  }
}

/** One path in GET /stats: counts since it entered the table (cumulative; rates are differences). */
export interface PathJson {
  readonly listener: string;
  readonly route: string;
  readonly method: string;
  readonly path: string;
  readonly requests: number;
  readonly success_count: number;
  readonly failure_count: number;
  /** Sum of the requests' durations, ms (mean = this / requests). */
  readonly duration_sum_ms: number;
}

export interface PathsJson {
  /** At most this many paths are listed (the busiest by requests first). */
  readonly max_tracked: number;
  /** Requests counted under no listed path since start (no free cell, or an entry evicted later). */
  readonly untracked_requests: number;
  readonly paths: readonly PathJson[];
}

interface PathEntry {
  readonly listener: string;
  readonly route: string;
  readonly method: string;
  readonly path: string;
  requests: number;
  failures: number;
  durationSumMicros: number;
  lastGrewMs: number;
}

/** Main side: the workers' path growth added up, at most MAX_TRACKED_PATHS entries. */
export class PathTotals {
  private readonly entries = new Map<string, PathEntry>();
  private untracked = 0;

  add(delta: PathsDelta, nowMs: number): void {
    this.untracked += delta.untracked;
    for (const d of delta.paths) {
      const key = `${d.listener}\u0000${d.route}\u0000${d.method}\u0000${d.path}`;
      let e = this.entries.get(key);
      if (e === undefined) {
        if (this.entries.size >= MAX_TRACKED_PATHS && !this.evictIdlest(nowMs)) {
          this.untracked += d.requests;
          continue;
        }
        e = { listener: d.listener, route: d.route, method: d.method, path: d.path, requests: 0, failures: 0, durationSumMicros: 0, lastGrewMs: nowMs };
        this.entries.set(key, e);
      }
      e.requests += d.requests;
      e.failures += d.failures;
      e.durationSumMicros += d.durationSumMicros;
      e.lastGrewMs = nowMs;
    }
  }

  json(): PathsJson {
    const paths = [...this.entries.values()]
      .sort((a, b) => b.requests - a.requests)
      .map((e) => ({
        listener: e.listener,
        route: e.route,
        method: e.method,
        path: e.path,
        requests: e.requests,
        success_count: e.requests - e.failures,
        failure_count: e.failures,
        duration_sum_ms: Math.round(e.durationSumMicros) / 1000,
      }));
    return { max_tracked: MAX_TRACKED_PATHS, untracked_requests: this.untracked, paths };
  }

  /** Drops the entry idle the longest (fewest requests among equals) unless it grew within RECENT_MS; whether one was dropped. */
  private evictIdlest(nowMs: number): boolean {
    let victimKey: string | null = null;
    let victim: PathEntry | null = null;
    for (const [key, e] of this.entries) {
      if (victim === null || e.lastGrewMs < victim.lastGrewMs || (e.lastGrewMs === victim.lastGrewMs && e.requests < victim.requests)) {
        victim = e;
        victimKey = key;
      }
    }
    if (victim === null || victimKey === null || victim.lastGrewMs > nowMs - RECENT_MS) return false;
    this.entries.delete(victimKey);
    this.untracked += victim.requests;
    return true;
  }
}

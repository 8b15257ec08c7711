// Per-worker stats: the recording side, called on every finished request. Handles are built once
// per config version (by name, so counters continue across reloads); record() then touches only
// fields of pre-built objects — no strings, no Map lookups, no allocation after a cell's first
// request. takeDelta() packs everything since the previous call into a StatsDelta for the main
// thread. Touches nothing outside this worker.

import type { CellDelta, ClassCounts, ClusterDelta, StatsDelta } from './delta.js';
import { CODE_CLASS_COUNT } from './delta.js';
import { LatencyRecorder } from './recorder.js';
import { PathCounter } from './top_paths.js';

export type { StatsDelta } from './delta.js';

/** A latency recorder unused for this many takeDelta() intervals is released (≈69 KiB each). */
const RELEASE_AFTER_IDLE_INTERVALS = 8;

/** Response class index (see CODE_CLASSES): 1..5 for 1xx..5xx, 0 for no response / out of range. */
export function codeClassIndex(status: number): number {
  const k = (status / 100) | 0;
  return k >= 1 && k <= 5 ? k : 0;
}

/** One listener. Requests that matched no route are counted on its `noRoute` pseudo-route. */
export class ListenerStatsHandle {
  /** @internal */ readonly noRoute: RouteStatsHandle;
  /** @internal */ readonly routes = new Map<string, RouteStatsHandle>();

  constructor(readonly name: string) {
    this.noRoute = new RouteStatsHandle(this, '');
  }
}

/** One route of one listener. */
export class RouteStatsHandle {
  /** @internal Cells by cluster slot: 0 = no cluster, else ClusterStatsHandle.slot. */
  readonly cells: Array<RequestCell | null> = [];

  constructor(
    readonly listener: ListenerStatsHandle,
    readonly name: string,
  ) {}
}

/**
 * What holds a latency recorder: a request cell (request durations) or a cluster (upstream
 * durations). The recorder is attached at the first sample and released after idle intervals.
 */
interface RecorderHolder {
  latency: LatencyRecorder | null;
  /** The takeDelta() interval the recorder last had samples in. */
  usedInterval: number;
}

/** One upstream cluster: its own counters and gauges, and the slot its cells use in routes. */
export class ClusterStatsHandle {
  connectFailures = 0;
  timeouts = 0;
  resets = 0;
  /** @internal upstream latency (the try's own time, not the request's) */ latency: LatencyRecorder | null = null;
  /** @internal */ usedInterval = 0;
  active = 0;
  poolOpen = 0;
  poolIdle = 0;
  /** @internal a gauge was set since the last delta */ gaugesSet = false;
  /** @internal in WorkerStats.dirtyClusters */ dirty = false;

  constructor(
    readonly name: string,
    /** @internal index into RouteStatsHandle.cells, ≥ 1 */ readonly slot: number,
  ) {}
}

/** Requests of one (route, cluster) pair in the current interval. */
class RequestCell {
  requests = 0;
  readonly classes = new Float64Array(CODE_CLASS_COUNT);
  bytesIn = 0;
  bytesOut = 0;
  latency: LatencyRecorder | null = null;
  usedInterval = 0;
  dirty = false;

  constructor(
    readonly route: RouteStatsHandle,
    readonly cluster: ClusterStatsHandle | null,
  ) {}
}

export class WorkerStats {
  private readonly listeners = new Map<string, ListenerStatsHandle>();
  private readonly clusters = new Map<string, ClusterStatsHandle>();
  private readonly dirtyCells: RequestCell[] = [];
  private readonly dirtyClusters: ClusterStatsHandle[] = [];
  /** Cells and clusters currently holding a LatencyRecorder (swept for idle ones). */
  private cellsWithRecorder: RequestCell[] = [];
  private clustersWithRecorder: ClusterStatsHandle[] = [];
  /** Number of takeDelta() calls so far; recorders remember the interval they were last used in. */
  private interval = 0;
  /** The busiest paths (bounded; `outrigger top`). */
  private readonly paths = new PathCounter();

  constructor(readonly workerId: number) {}

  listener(name: string): ListenerStatsHandle {
    let l = this.listeners.get(name);
    if (l === undefined) {
      l = new ListenerStatsHandle(name);
      this.listeners.set(name, l);
    }
    return l;
  }

  /** Same (listener, route) → the same handle, across config versions. */
  route(listener: string, route: string): RouteStatsHandle {
    const l = this.listener(listener);
    if (route === '') return l.noRoute;
    let r = l.routes.get(route);
    if (r === undefined) {
      r = new RouteStatsHandle(l, route);
      l.routes.set(route, r);
    }
    return r;
  }

  cluster(name: string): ClusterStatsHandle {
    let c = this.clusters.get(name);
    if (c === undefined) {
      c = new ClusterStatsHandle(name, this.clusters.size + 1);
      this.clusters.set(name, c);
    }
    return c;
  }

  /**
   * One finished request. `r` null = no route matched (counted on the listener); when `r` is
   * given it carries its listener and `l` is not consulted. `c` null = no cluster (local reply).
   * Durations in µs; `upstreamMicros` ≤ 0 = no upstream exchange (not recorded).
   * `status` 0 = no response (client aborted, connection reset mid-response).
   */
  record(
    l: ListenerStatsHandle,
    r: RouteStatsHandle | null,
    c: ClusterStatsHandle | null,
    status: number,
    totalMicros: number,
    upstreamMicros: number,
    bytesIn: number,
    bytesOut: number,
  ): void {
    const route = r === null ? l.noRoute : r;
    const slot = c === null ? 0 : c.slot;
    let cell = route.cells[slot];
    if (cell === undefined || cell === null) cell = newCell(route, c, slot);
    cell.requests += 1;
    cell.classes[codeClassIndex(status)]! += 1;
    cell.bytesIn += bytesIn;
    cell.bytesOut += bytesOut;
    let latency = cell.latency;
    if (latency === null) latency = this.attachRecorder(cell, this.cellsWithRecorder);
    latency.record(totalMicros);
    if (!cell.dirty) {
      cell.dirty = true;
      this.dirtyCells.push(cell);
    }
    if (c !== null && upstreamMicros > 0) {
      let upstream = c.latency;
      if (upstream === null) upstream = this.attachRecorder(c, this.clustersWithRecorder);
      upstream.record(upstreamMicros);
      if (!c.dirty) this.markCluster(c);
    }
  }

  /** The path of one finished request (record() counts the request itself); `r` null = no route matched. */
  recordPath(l: ListenerStatsHandle, r: RouteStatsHandle | null, method: string, path: string, status: number, totalMicros: number): void {
    const route = r === null ? l.noRoute : r;
    this.paths.record(route, l.name, route.name, method, path, status, totalMicros);
  }

  upstreamConnectFailure(c: ClusterStatsHandle): void {
    c.connectFailures += 1;
    if (!c.dirty) this.markCluster(c);
  }

  upstreamTimeout(c: ClusterStatsHandle): void {
    c.timeouts += 1;
    if (!c.dirty) this.markCluster(c);
  }

  upstreamReset(c: ClusterStatsHandle): void {
    c.resets += 1;
    if (!c.dirty) this.markCluster(c);
  }

  /** In-flight requests to the cluster on this worker. */
  setActive(c: ClusterStatsHandle, active: number): void {
    c.active = active;
    c.gaugesSet = true;
    if (!c.dirty) this.markCluster(c);
  }

  /** Pooled upstream connections of the cluster on this worker: open (busy + idle) and idle. */
  setPoolConnections(c: ClusterStatsHandle, open: number, idle: number): void {
    c.poolOpen = open;
    c.poolIdle = idle;
    c.gaugesSet = true;
    if (!c.dirty) this.markCluster(c);
  }

  /** Everything recorded since the previous call (structured-clone safe); resets the counters. */
  takeDelta(): StatsDelta {
    this.interval += 1;
    const cells: CellDelta[] = [];
    for (const cell of this.dirtyCells) {
      cells.push(this.takeCell(cell));
    }
    this.dirtyCells.length = 0;
    const clusters: ClusterDelta[] = [];
    for (const c of this.dirtyClusters) {
      clusters.push(this.takeCluster(c));
    }
    this.dirtyClusters.length = 0;
    this.releaseIdleRecorders();
    const paths = this.paths.take();
    return paths === null ? { workerId: this.workerId, cells, clusters } : { workerId: this.workerId, cells, clusters, paths };
  }

  private takeCell(cell: RequestCell): CellDelta {
    const k = cell.classes;
    const classes: ClassCounts = [k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!];
    const recorder = this.recorderWithSamples(cell);
    const durationSumMicros = recorder === null ? 0 : recorder.sumMicros;
    const latency = recorder === null ? null : recorder.takeSparse();
    const delta: CellDelta = {
      listener: cell.route.listener.name,
      route: cell.route.name,
      cluster: cell.cluster === null ? '' : cell.cluster.name,
      requests: cell.requests,
      classes,
      bytesIn: cell.bytesIn,
      bytesOut: cell.bytesOut,
      durationSumMicros,
      latency,
    };
    cell.requests = 0;
    k.fill(0);
    cell.bytesIn = 0;
    cell.bytesOut = 0;
    cell.dirty = false;
    return delta;
  }

  private takeCluster(c: ClusterStatsHandle): ClusterDelta {
    const recorder = this.recorderWithSamples(c);
    const upstreamSumMicros = recorder === null ? 0 : recorder.sumMicros;
    const upstreamLatency = recorder === null ? null : recorder.takeSparse();
    const delta: ClusterDelta = {
      name: c.name,
      connectFailures: c.connectFailures,
      timeouts: c.timeouts,
      resets: c.resets,
      upstreamSumMicros,
      upstreamLatency,
      gauges: c.gaugesSet ? { active: c.active, poolOpen: c.poolOpen, poolIdle: c.poolIdle } : null,
    };
    c.connectFailures = 0;
    c.timeouts = 0;
    c.resets = 0;
    c.gaugesSet = false;
    c.dirty = false;
    return delta;
  }

  private markCluster(c: ClusterStatsHandle): void {
    c.dirty = true;
    this.dirtyClusters.push(c);
  }

  /** A holder's first sample (or its first since its recorder was released): a recorder, swept from `holders` when idle. */
  private attachRecorder<H extends RecorderHolder>(h: H, holders: H[]): LatencyRecorder {
    const recorder = new LatencyRecorder();
    h.latency = recorder;
    h.usedInterval = this.interval;
    holders.push(h);
    return recorder;
  }

  /** The holder's recorder when it has samples since the last delta (marking it used), else null. */
  private recorderWithSamples(h: RecorderHolder): LatencyRecorder | null {
    const recorder = h.latency;
    if (recorder === null || recorder.total === 0) return null;
    h.usedInterval = this.interval;
    return recorder;
  }

  /** Bounds memory to the recently used cells: idle recorders go back to the GC. */
  private releaseIdleRecorders(): void {
    const oldest = this.interval - RELEASE_AFTER_IDLE_INTERVALS;
    this.cellsWithRecorder = releaseUnusedSince(this.cellsWithRecorder, oldest);
    this.clustersWithRecorder = releaseUnusedSince(this.clustersWithRecorder, oldest);
  }
}

/** Drops the recorders of the holders not used after interval `oldest`; the holders that keep theirs. */
function releaseUnusedSince<H extends RecorderHolder>(holders: H[], oldest: number): H[] {
  if (!holders.some((h) => h.usedInterval <= oldest)) return holders;
  return holders.filter((h) => {
    if (h.usedInterval > oldest) return true;
    h.latency = null;
    return false;
  });
}

/** First request of a (route, cluster) pair: the only allocation on the record() path. */
function newCell(route: RouteStatsHandle, c: ClusterStatsHandle | null, slot: number): RequestCell {
  const cells = route.cells;
  // Grow densely (never leave holes past the end) so the array keeps fast elements.
  while (cells.length <= slot) cells.push(null);
  const cell = new RequestCell(route, c);
  cells[slot] = cell;
  return cell;
}

// Main-thread side of the data plane: spawns the worker threads, posts each worker the delta from
// the config it runs to the next one (config/delta.ts) and reports an apply done only when every
// worker acked it (rolling back everywhere if one fails), restarts a crashed worker with backoff
// (its first delta carries the whole config), and drains them on shutdown.
// Before any worker binds, ports.ts checks that no other process owns a listener port.

import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { compileDelta } from '../config/delta.js';
import { listenersOf } from '../config/placement.js';
import type { Snapshot } from '../config/types.js';
import type { Log } from '../log.js';
import type { StatsDelta } from '../stats/delta.js';
import type { TlsMaterial } from '../tls/material.js';
import type { SpanRecord } from '../tracing/span_buffer.js';
import { mergeClusterViews, mergeListenerViews } from './inspection.js';
import {
  type BoundListener,
  type ClusterView,
  type EndpointState,
  type FromWorker,
  type ListenerView,
  type OutcomeEvent,
  type ToWorker,
  type WorkerInit,
} from './messages.js';
import { PortInUseError, resolvePorts } from './ports.js';

export interface SupervisorOptions {
  readonly log: Pick<Log, 'info' | 'warn' | 'error'>;
  readonly enableTestHooks: boolean;
  /** Called with each stats delta a worker posts. */
  readonly onStats?: (workerId: number, delta: StatsDelta) => void;
  /** Span records (tracing) a worker posted with its stats, and the spans its buffer dropped. */
  readonly onSpans?: (records: readonly SpanRecord[], dropped: number) => void;
  /** Outcomes of upstream tries for passive outlier detection, in arrival order. */
  readonly onOutcomes?: (events: readonly OutcomeEvent[]) => void;
  /** Called when a worker died (before it is restarted). */
  readonly onWorkerExit?: (workerId: number) => void;
  /** Called when the watchdog finds a worker stuck (before it is replaced). */
  readonly onWorkerStall?: (workerId: number) => void;
  /**
   * A stuck worker that serves uWS listeners cannot be replaced: a thread that ends with uWS
   * sockets open aborts the whole process. The caller exits cleanly instead (the service
   * manager restarts the sidecar).
   */
  readonly onUnrecoverableStall?: (workerId: number, stalledMs: number) => void;
}

interface Pending {
  version: number;
  waiting: Set<number>;
  failures: string[];
  resolve: () => void;
}

const WORKER_URL = new URL('./worker_main.js', import.meta.url);
/**
 * A worker's V8 heap, sized for a sidecar: the young generation (where per-request garbage dies)
 * capped at 4 MiB instead of growing to 16 MiB semi-spaces under load. Measured with wrk -c50
 * through a 1-worker sidecar: peak RSS 92 MiB instead of 104-106, CPU per request within the
 * run-to-run noise (README, Performance: memory).
 */
const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4 } as const;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
const STABLE_AFTER_MS = 10_000;
/** A new worker loads its modules before its first message: the watchdog allows it this long (or the stall limit, if longer). */
const STARTUP_GRACE_MS = 10_000;

class WorkerSlot {
  worker: Worker | null = null;
  restarts = 0;
  startedAt = 0;
  /** Date.now() of the worker's last message (heartbeats: messages.ts heartbeatMs). */
  lastBeat = 0;
  /** The worker has sent a message (loaded its modules and beats); until then the watchdog allows STARTUP_GRACE_MS. */
  heard = false;
  /** The watchdog's one-shot timer: due when the worker has been silent for `watchdogMs`; each message restarts it. */
  watchdog: NodeJS.Timeout | null = null;
  /** The silence `watchdog` was set for, ms (0: none set). */
  watchdogMs = 0;
  version = 0;
  /** The config the worker will run once it has applied everything posted to it; null = none yet. */
  config: Snapshot | null = null;
  /** What the worker keeps running if the apply in flight fails (a worker's apply is all or nothing). */
  keptOnFailure: Snapshot | null = null;
  listeners: readonly BoundListener[] = [];
  constructor(readonly id: number) {}
}

export class Supervisor {
  private readonly slots: WorkerSlot[] = [];
  private current: Snapshot | null = null;
  private pending: Pending | null = null;
  private stopping = false;
  private drainWaiters: Array<() => void> = [];
  private inspections = new Map<number, (slot: WorkerSlot, clusters: readonly ClusterView[], listeners: readonly ListenerView[]) => void>();
  private nextInspection = 1;
  /** Health/ejection verdicts that differ from the default (healthy, not ejected), by `cluster\u0000address`. */
  private readonly endpointStates = new Map<string, EndpointState>();
  /** Worker restarts since start (crashes). */
  restarts = 0;
  private material: TlsMaterial | null = null;
  /**
   * Seed for the TLS session ticket keys, shared by every worker (tls/contexts.ts's
   * newTicketKeySeed(): 32 random bytes), made here so that the main thread of a plaintext
   * sidecar does not load the TLS modules (and node-forge with them).
   */
  private readonly ticketKeySeed = randomBytes(32);

  constructor(private readonly opts: SupervisorOptions) {}

  get snapshot(): Snapshot | null {
    return this.current;
  }

  /** Bound listeners as the workers report them (all workers share the same ports). */
  get listeners(): readonly BoundListener[] {
    return this.slots[0]?.listeners ?? [];
  }

  /**
   * Workers that are up and serving a complete config: the current version, or the previous one
   * while an apply is in flight (a reload must not make /ready flap; only a worker that has not
   * applied any config yet, or is down, is not ready).
   */
  get readyWorkers(): number {
    return this.slots.filter((s) => s.worker !== null && s.version !== 0).length;
  }

  /** Resolves ports, checks they are free, spawns workers and waits until all of them listen. */
  async start(snapshot: Snapshot): Promise<Snapshot> {
    const { snapshot: resolved, release } = await resolvePorts(snapshot, null);
    this.current = resolved;
    for (let i = 0; i < resolved.node.workers; i++) this.slots.push(new WorkerSlot(i + 1));
    const done = this.expectAcks(resolved.version);
    for (const slot of this.slots) this.spawn(slot);
    const failures = await done.finally(release);
    if (failures.length > 0) {
      await this.stop();
      throw new PortInUseError(failures.join('; '));
    }
    return resolved;
  }

  private applying: Promise<unknown> = Promise.resolve();

  /** Applies a new snapshot on every worker; resolves once all acked, rejects (after rolling back) otherwise. Applies run one at a time. */
  apply(snapshot: Snapshot): Promise<Snapshot> {
    return this.update(() => snapshot);
  }

  /**
   * Applies the snapshot `make` derives from the one the workers run, made at its turn among the
   * applies: discovered endpoints (discovery/manager.ts) must not undo a reload queued before them.
   */
  update(make: (running: Snapshot) => Snapshot): Promise<Snapshot> {
    const run = this.applying.then(() => {
      if (this.current === null) throw new Error('no config runs yet');
      return this.applyNow(make(this.current));
    });
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(snapshot: Snapshot): Promise<Snapshot> {
    const previous = this.current;
    const { snapshot: resolved, release } = await resolvePorts(snapshot, previous);
    this.current = resolved;
    this.rewatch();
    const failures = await this.broadcastApply(resolved).finally(release);
    if (failures.length === 0) return resolved;
    if (previous !== null) {
      this.current = previous;
      this.rewatch();
      await this.broadcastApply(previous);
    }
    throw new Error(`config version ${resolved.version} was rolled back: ${failures.join('; ')}`);
  }

  /** Stops accepting on every worker, waits for in-flight requests (bounded), then stops them. */
  async drain(timeoutMs: number): Promise<number> {
    this.stopping = true;
    let unfinished = 0;
    const live = this.slots.filter((s) => s.worker !== null);
    await Promise.all(
      live.map(
        (slot) =>
          new Promise<void>((resolve) => {
            const w = slot.worker!;
            const onMsg = (m: FromWorker): void => {
              if (m.type === 'drained') {
                unfinished += m.unfinished;
                w.off('message', onMsg);
                resolve();
              }
            };
            w.on('message', onMsg);
            w.once('exit', () => resolve());
            this.post(w, { type: 'drain', timeoutMs });
          }),
      ),
    );
    await this.stop();
    return unfinished;
  }

  /** Asks every worker to close its sockets and exit; terminates one that does not within 2 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        const w = slot.worker;
        slot.worker = null;
        this.setWatchdog(slot, 0, 0);
        if (w === null) return;
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        this.post(w, { type: 'stop' });
        const timer = setTimeout(() => void w.terminate(), 2000);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const f of this.drainWaiters) f();
  }

  /** The certificate material the workers have (null before the first, and without top-level tls). */
  get currentMaterial(): TlsMaterial | null {
    return this.material;
  }

  /** This sidecar's certificate material, to every worker now and to every worker spawned later. */
  setMaterial(material: TlsMaterial): void {
    this.material = material;
    for (const slot of this.slots) if (slot.worker !== null) this.post(slot.worker, { type: 'secrets', material });
  }

  /** Records and broadcasts the main thread's verdict on an endpoint (health check or ejection). */
  setEndpointState(cluster: string, address: string, change: { healthy?: boolean; ejected?: boolean }): void {
    const key = `${cluster}\u0000${address}`;
    const prev = this.endpointStates.get(key) ?? { cluster, address, healthy: true, ejected: false };
    const next: EndpointState = { cluster, address, healthy: change.healthy ?? prev.healthy, ejected: change.ejected ?? prev.ejected };
    if (next.healthy && !next.ejected) this.endpointStates.delete(key);
    else this.endpointStates.set(key, next);
    for (const slot of this.slots) if (slot.worker !== null) this.post(slot.worker, { type: 'endpoint_states', states: [next] });
  }

  /** Every worker's view of the clusters, summed (GET /clusters). Workers that do not answer within 1 s are left out. */
  async inspect(): Promise<{ workers: number; clusters: ClusterView[]; listeners: ListenerView[] }> {
    const id = this.nextInspection++;
    const live = this.slots.filter((s) => s.worker !== null);
    const views: Array<readonly ClusterView[]> = [];
    const lviews: Array<readonly ListenerView[]> = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.inspections.set(id, (_slot, clusters, listeners) => {
        views.push(clusters);
        lviews.push(listeners);
        if (views.length === live.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const s of live) this.post(s.worker!, { type: 'inspect', id });
      if (live.length === 0) resolve();
    });
    this.inspections.delete(id);
    return { workers: views.length, clusters: mergeClusterViews(views), listeners: mergeListenerViews(lviews) };
  }

  private broadcastApply(snapshot: Snapshot): Promise<string[]> {
    const done = this.expectAcks(snapshot.version);
    for (const slot of this.slots) this.postConfig(slot, snapshot);
    return done;
  }

  /** Posts a worker the delta from the config it runs (or will, once posted deltas apply) to `target`. */
  private postConfig(slot: WorkerSlot, target: Snapshot): void {
    if (slot.worker === null) return;
    const delta = compileDelta(slot.config, target, slot.id);
    slot.keptOnFailure = slot.config;
    slot.config = target;
    this.post(slot.worker, { type: 'apply', delta });
  }

  private expectAcks(version: number): Promise<string[]> {
    return new Promise((resolve) => {
      // Every slot acks: a worker that is restarting applies the current snapshot when it is up.
      const waiting = new Set(this.slots.map((s) => s.id));
      const p: Pending = { version, waiting, failures: [], resolve: () => resolve(p.failures) };
      this.pending = p;
      if (waiting.size === 0) p.resolve();
    });
  }

  private ack(slot: WorkerSlot, version: number, failure: string | null): void {
    const p = this.pending;
    if (p === null || p.version !== version) return;
    if (failure !== null) p.failures.push(`worker ${slot.id}: ${failure}`);
    p.waiting.delete(slot.id);
    if (p.waiting.size === 0) {
      this.pending = null;
      p.resolve();
    }
  }

  private spawn(slot: WorkerSlot): void {
    const init: WorkerInit = { workerId: slot.id, enableTestHooks: this.opts.enableTestHooks, ticketKeySeed: this.ticketKeySeed };
    const w = new Worker(WORKER_URL, { workerData: init, resourceLimits: WORKER_RESOURCE_LIMITS });
    slot.worker = w;
    slot.startedAt = Date.now();
    slot.lastBeat = slot.startedAt;
    slot.heard = false;
    this.watch(slot);
    w.on('message', (m: FromWorker) => this.onMessage(slot, m));
    w.on('error', (err) => this.opts.log.error({ worker: slot.id, err: err.message }, 'worker crashed'));
    w.on('exit', (code) => this.onExit(slot, w, code));
    if (this.material !== null) this.post(w, { type: 'secrets', material: this.material });
    slot.config = null;
    if (this.current !== null) this.postConfig(slot, this.current);
    if (this.endpointStates.size > 0) this.post(w, { type: 'endpoint_states', states: [...this.endpointStates.values()] });
  }

  private onMessage(slot: WorkerSlot, m: FromWorker): void {
    slot.lastBeat = Date.now();
    slot.heard = true;
    this.watch(slot);
    switch (m.type) {
      case 'heartbeat':
        break;
      case 'applied':
        slot.version = m.version;
        slot.listeners = m.listeners;
        this.ack(slot, m.version, null);
        break;
      case 'apply_failed':
        this.opts.log.error({ worker: slot.id, version: m.version, err: m.error }, 'worker failed to apply config');
        slot.config = slot.keptOnFailure;
        this.ack(slot, m.version, m.error);
        break;
      case 'log':
        this.opts.log[m.level]({ worker: slot.id, ...m.fields }, m.msg);
        break;
      case 'stats':
        this.opts.onStats?.(slot.id, m.delta);
        if (m.spans !== undefined) this.opts.onSpans?.(m.spans.records, m.spans.dropped);
        break;
      case 'outcomes':
        this.opts.onOutcomes?.(m.events);
        break;
      case 'inspect_result':
        this.inspections.get(m.id)?.(slot, m.clusters, m.listeners);
        break;
      case 'drained':
        break;
    }
  }

  /** Workers found stuck by the watchdog and replaced (or, with uWS listeners, the process exited). */
  stalls = 0;

  /** How long `slot` may stay silent, ms: the stall limit in force, or STARTUP_GRACE_MS (if longer) before its first message; 0 = no watchdog. */
  private allowance(slot: WorkerSlot): number {
    const limit = this.current?.node.workerStallMs ?? 0;
    if (limit <= 0 || slot.worker === null || this.stopping) return 0;
    return slot.heard ? limit : Math.max(limit, STARTUP_GRACE_MS);
  }

  /**
   * Restarts `slot`'s watchdog from its last message (now): one one-shot timer per worker, which
   * each message restarts with timer.refresh() and which fires only after `allowance` of silence.
   * A healthy worker's watchdog never fires, so watching workers that talk costs the main thread
   * no wake-ups of its own (a check every heartbeat period did: 10 a second at a 500 ms limit;
   * Node still wakes about once per allowance to find a refreshed timer not yet due).
   */
  private watch(slot: WorkerSlot): void {
    const ms = this.allowance(slot);
    if (slot.watchdog !== null && ms === slot.watchdogMs) {
      slot.watchdog.refresh();
      return;
    }
    this.setWatchdog(slot, ms, ms);
  }

  /** A new stall limit: each watchdog set again for it, counted from the worker's last message, not from now. */
  private rewatch(): void {
    for (const slot of this.slots) {
      const ms = this.allowance(slot);
      if (ms !== slot.watchdogMs) this.setWatchdog(slot, ms, Math.max(0, slot.lastBeat + ms - Date.now()));
    }
  }

  private setWatchdog(slot: WorkerSlot, ms: number, dueInMs: number): void {
    if (slot.watchdog !== null) clearTimeout(slot.watchdog);
    slot.watchdogMs = ms;
    slot.watchdog = ms > 0 ? setTimeout(() => this.onSilent(slot), dueInMs).unref() : null;
  }

  /** `slot`'s watchdog fired: the worker has been silent for longer than its allowance, so it is stuck. */
  private onSilent(slot: WorkerSlot): void {
    slot.watchdog = null;
    const w = slot.worker;
    const ms = this.allowance(slot);
    if (w === null || ms === 0) return;
    const now = Date.now();
    const stalledMs = now - slot.lastBeat;
    if (stalledMs <= ms) {
      this.setWatchdog(slot, ms, ms - stalledMs + 1); // stuck means silent for longer than the limit
      return;
    }
    this.stalls++;
    this.opts.onWorkerStall?.(slot.id);
    this.setWatchdog(slot, ms, ms); // reported once per allowance of further silence
    const current = this.current;
    if (current !== null && listenersOf(current.listeners, current.node.workers, slot.id).some((l) => l.engine === 'uws')) {
      this.opts.log.error(
        { worker: slot.id, stalled_ms: stalledMs },
        'worker stuck; it serves uws listeners, which a stuck thread cannot release: exiting so the sidecar is restarted',
      );
      this.opts.onUnrecoverableStall?.(slot.id, stalledMs);
      return;
    }
    this.opts.log.error({ worker: slot.id, stalled_ms: stalledMs }, 'worker stuck; replacing it');
    void w.terminate(); // 'exit' restarts it with backoff, as after a crash
  }

  private onExit(slot: WorkerSlot, w: Worker, code: number): void {
    if (slot.worker !== w) return; // terminated on purpose
    slot.worker = null;
    this.setWatchdog(slot, 0, 0);
    slot.version = 0;
    slot.config = null;
    this.opts.onWorkerExit?.(slot.id);
    // A worker that dies while an apply waits for it must not hold the apply up.
    if (this.pending !== null && this.pending.waiting.has(slot.id)) {
      if (this.stopping) this.ack(slot, this.pending.version, `exited with code ${code}`);
    }
    if (this.stopping) return;
    this.restarts++;
    const uptime = Date.now() - slot.startedAt;
    if (uptime > STABLE_AFTER_MS) slot.restarts = 0;
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** slot.restarts);
    slot.restarts++;
    this.opts.log.warn({ worker: slot.id, code, restarts: this.restarts, backoff_ms: backoff }, 'worker exited; restarting');
    setTimeout(() => {
      if (!this.stopping) this.spawn(slot);
    }, backoff).unref();
  }

  private post(w: Worker, msg: ToWorker): void {
    w.postMessage(msg);
  }
}

// Worker thread entry: owns one WorkerRuntime and the worker-side owners of what requests leave
// behind (stats, access logs, outlier reports, drain); applies the config deltas the supervisor
// posts (acking each version), answers /clusters inspections, beats a heartbeat for the
// watchdog, and drains on request. A worker never reads files or the environment; everything
// arrives in messages.

import type { ConfigDelta } from '../config/delta.js';
import type { ProxyError } from '../errors.js';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { AccessLogs } from './access_logs.js';
import { Drain } from './drain.js';
import { heartbeatMs, type FromWorker, type ToWorker, type WorkerInit } from './messages.js';
import { OutcomeReporter } from './outcome_reporter.js';
import { WorkerRuntime, type RequestObserver } from './runtime.js';
import { StatsReporter } from './stats_reporter.js';
import { clusterViews, listenerViews } from './views.js';
import { SpanBuffer } from '../tracing/span_buffer.js';

const STATS_INTERVAL_MS = 1000;
/** How long a stopping worker waits for the connections it closed to report their end (their close events come a loop turn later). */
const CLOSE_WAIT_MS = 500;

class WorkerThread {
  private readonly runtime: WorkerRuntime;
  private readonly stats: StatsReporter;
  private readonly accessLogs = new AccessLogs();
  /** Sampled requests' spans, handed to the main thread with each stats post. */
  private readonly spans = new SpanBuffer();
  private readonly outcomes: OutcomeReporter;
  private readonly drain: Drain;
  /** Beat period: a heartbeat for the watchdog each beat, and the stats once a second (which count as the beat); run from the loop-delay sampler's timer. */
  private beatMs = heartbeatMs(5_000);
  private lastFlush = performance.now();
  /** Applies run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly port: MessagePort,
    private readonly init: WorkerInit,
  ) {
    this.outcomes = new OutcomeReporter((events) => this.post({ type: 'outcomes', events }));
    this.runtime = new WorkerRuntime(this.observer(), init.workerId, Buffer.from(init.ticketKeySeed));
    // Watchdog: the supervisor restarts a worker whose heartbeats stop (its event loop is stuck).
    // The pulse rides on the loop-delay sampler's timer: one wake-up per beat at rest, not two.
    this.stats = new StatsReporter(
      init.workerId,
      this.runtime,
      (delta, transfer) => {
        const spans = this.spans.take();
        this.port.postMessage((spans === null ? { type: 'stats', delta } : { type: 'stats', delta, spans }) satisfies FromWorker, transfer);
      },
      { everyMs: this.beatMs, run: () => this.onPulse() },
    );
    this.drain = new Drain(() => this.runtime.inflight);
    port.on('message', (msg: ToWorker) => this.onMessage(msg));
  }

  private onPulse(): void {
    const now = performance.now();
    // Flush once a second: the first beat at or after 1 s since the last flush (within half a beat).
    if (now - this.lastFlush >= STATS_INTERVAL_MS - this.beatMs / 2) {
      this.lastFlush = now;
      if (this.stats.flush()) return; // any message is a beat
    }
    this.post({ type: 'heartbeat' });
  }

  /** Beats as often as the stall limit in force asks (from the apply message, before the apply runs). */
  private setStallLimit(stallMs: number): void {
    const every = heartbeatMs(stallMs);
    if (every === this.beatMs) return;
    this.beatMs = every;
    this.post({ type: 'heartbeat' });
    this.stats.setPulseEvery(every);
  }

  /** Where listeners report finished requests and tries: straight to the owners. */
  private observer(): RequestObserver {
    return {
      onExchangeDone: (l, ex) => {
        this.stats.exchangeDone(l, ex);
        this.accessLogs.exchangeDone(l, ex);
        this.spans.ended(ex.head, {
          listener: l.spec.name,
          route: ex.route.name,
          cluster: ex.cluster.spec.name,
          upstream: ex.endpoint.address,
          status: ex.status,
          error: ex.error?.code ?? null,
        });
        this.drain.exchangeDone();
      },
      onTryOutcome: (c, e, outcome) => this.outcomes.record(c, e, outcome),
      onLocalReply: (l, routeIndex, err, head, requestId) => {
        this.stats.localReply(l, routeIndex, err, head);
        this.accessLogs.localReply(l, routeIndex, err, head, requestId);
        this.spans.ended(head, {
          listener: l.spec.name,
          route: l.spec.routes[routeIndex]?.name ?? null,
          cluster: null,
          upstream: null,
          status: err.status,
          error: err.code,
        });
        if (err.code === 'internal_error') this.internalError(l.spec.name, err, requestId);
      },
      onUpgradeEnded: (l, record) => {
        if (record !== null) this.accessLogs.upgradeDone(l, record);
        this.drain.exchangeDone();
      },
      onTcpEnded: (l, record) => {
        this.accessLogs.tcpDone(l, record);
        this.drain.exchangeDone();
      },
      onInflightEnded: () => this.drain.exchangeDone(),
      onDestinationRefused: (l, d, client) =>
        this.post({
          type: 'log',
          level: 'warn',
          msg: 'original destination refused (outbound_policy: registry_only)',
          fields: { listener: l.spec.name, destination: d.address, client, worker: this.init.workerId },
        }),
      ...testHooks(this.init),
    };
  }

  private post(msg: FromWorker): void {
    this.port.postMessage(msg);
  }

  private onMessage(msg: ToWorker): void {
    switch (msg.type) {
      case 'apply': {
        const delta = msg.delta;
        if (delta.node !== null) this.setStallLimit(delta.node.workerStallMs);
        this.queue = this.queue.then(() => this.apply(delta));
        break;
      }
      case 'secrets':
        // Before any apply queued after it (a TLS listener needs the material to start).
        this.runtime.setMaterial(msg.material);
        break;
      case 'endpoint_states': {
        const states = msg.states;
        // After any apply queued before it, so that new endpoints exist.
        this.queue = this.queue.then(() => {
          for (const st of states) this.runtime.setEndpointState(st.cluster, st.address, st.healthy, st.ejected);
        });
        break;
      }
      case 'inspect':
        this.post({
          type: 'inspect_result',
          id: msg.id,
          version: this.runtime.version,
          clusters: clusterViews(this.runtime),
          listeners: listenerViews(this.runtime),
        });
        break;
      case 'drain':
        this.runtime.stopAccepting();
        void this.drain.wait(msg.timeoutMs).then((unfinished) => {
          this.stats.flush();
          this.post({ type: 'drained', unfinished });
        });
        break;
      case 'stop':
        void this.stop();
        break;
    }
  }

  private async apply(delta: ConfigDelta): Promise<void> {
    try {
      const listeners = await this.runtime.apply(delta);
      if (delta.tracing !== undefined) this.spans.configure(delta.tracing?.maxQueuedSpans ?? null);
      await this.accessLogs.applied(delta);
      this.post({ type: 'applied', version: delta.version, listeners });
    } catch (e) {
      this.post({ type: 'apply_failed', version: delta.version, error: e instanceof Error ? e.message : String(e) });
    }
  }

  /**
   * Closes every socket, waits (bounded) until the connections that cut off have ended — their
   * access log lines and counters are written as they end, a turn later — then flushes and exits.
   */
  private async stop(): Promise<void> {
    this.runtime.closeSockets();
    await this.drain.wait(CLOSE_WAIT_MS);
    this.stats.flush();
    this.shutdown();
    // Exit on the next turn, once uWS has really closed its sockets.
    setImmediate(() => process.exit(0));
  }

  /** Flushes what is buffered and closes every socket (before the thread exits). */
  shutdown(): void {
    this.stats.close();
    this.accessLogs.flushAll();
    this.runtime.close();
  }

  /** A bug caught while handling one request (answered 500 internal_error): logged on the main thread with the request id. */
  private internalError(listener: string, err: ProxyError, requestId: string | null): void {
    const cause = err.cause instanceof Error ? err.cause : null;
    this.post({
      type: 'log',
      level: 'error',
      msg: 'internal error while handling a request',
      fields: { listener, request_id: requestId, worker: this.init.workerId, err: cause?.stack ?? err.message },
    });
  }

  /** A bug that escaped every handler: report it before the thread exits. */
  crashed(err: Error): void {
    this.post({ type: 'log', level: 'error', msg: 'worker crashed', fields: { err: err.message } });
  }
}

/** A test_stall route named `stall_<N>ms` blocks the loop for N ms (a short stall, for the event-loop delay figures). */
const SHORT_STALL_ROUTE = /^stall_(\d{1,5})ms$/;

/** Test hooks (routes marked test_stall / test_crash), inert unless the sidecar enabled them. */
function testHooks(init: WorkerInit): Pick<RequestObserver, 'onTestStall' | 'onTestCrash'> {
  return {
    onTestStall(route) {
      if (!init.enableTestHooks) return;
      // A stuck event loop, as an endless loop in a bug would make it (bounded: 10 minutes), or
      // a short stall when the route's name asks for one.
      const short = SHORT_STALL_ROUTE.exec(route);
      const until = Date.now() + (short !== null ? Number(short[1]) : 600_000);
      while (Date.now() < until) {
        /* spin */
      }
    },
    onTestCrash(route) {
      if (!init.enableTestHooks) return;
      // Crash after the handler returns, the way a real bug in async code would.
      setImmediate(() => {
        throw new Error(`test_crash route "${route}" hit: worker ${init.workerId} crashes on purpose`);
      });
    },
  };
}

if (parentPort === null) throw new Error('worker_main must run in a worker thread');
const thread = new WorkerThread(parentPort, workerData as WorkerInit);
// A bug that escapes every handler: report it, close every uWS socket (Node aborts the whole
// process when a thread exits with uWS sockets open), then exit so the supervisor restarts us.
process.on('uncaughtException', (err) => {
  thread.crashed(err);
  try {
    thread.shutdown();
  } finally {
    setImmediate(() => process.exit(1));
  }
});

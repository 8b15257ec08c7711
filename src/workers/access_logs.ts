// Worker side of access logging: one AccessLog per listener that has access_log set, created
// on its first request and replaced when a config delta says the listener's access_log changed
// (or drops it when the listener goes). Writes one entry per finished request. The access-log
// code (pino, ~1 MiB of a worker's heap) loads only once a config names an access log: the
// apply that brings one waits for it, and the few entries of requests that arrive between the
// listener's bind and that load are kept and written first.

import type { AccessEntry, AccessLog, TcpAccessEntry } from '../dataplane/access_log.js';
import type { AccessLogSpec } from '../config/types.js';
import type { Exchange } from '../dataplane/exchange.js';
import type { ListenerRuntime } from '../dataplane/listener.js';
import type { RequestHead } from '../dataplane/request_head.js';
import type { TcpRecord } from '../dataplane/tcp_proxy.js';
import type { UpgradeRecord } from '../dataplane/upgrade.js';
import type { ConfigDelta } from '../config/delta.js';
import type { ProxyError } from '../errors.js';
import { isoTime } from '../time.js';

/** Entries kept while the access-log code loads (bounded; more are dropped). */
const MAX_EARLY_ENTRIES = 10_000;

export class AccessLogs {
  /** By listener name. */
  private readonly logs = new Map<string, AccessLog>();
  private AccessLogClass: (typeof import('../dataplane/access_log.js'))['AccessLog'] | null = null;
  private loading: Promise<void> | null = null;
  private early: Array<{ readonly name: string; readonly spec: AccessLogSpec; readonly entry: AccessEntry | TcpAccessEntry }> = [];

  exchangeDone(l: ListenerRuntime, ex: Exchange): void {
    if (l.spec.accessLog === null) return;
    this.write(l, ex.head, ex.route.name, ex, ex.status, ex.error, ex.head.requestId);
  }

  localReply(l: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null, requestId: string): void {
    if (l.spec.accessLog === null) return;
    this.write(l, head, routeIndex >= 0 ? (l.spec.routes[routeIndex]?.name ?? null) : null, null, err.status, err, requestId);
  }

  /** An answered upgrade (WebSocket) ended: one line for its request, the upstream's answer and the bytes of the whole tunnel. */
  upgradeDone(l: ListenerRuntime, r: UpgradeRecord): void {
    const spec = l.spec.accessLog;
    if (spec === null) return;
    const head = r.req.head;
    this.emit(l.spec.name, spec, {
      listener: l.spec.name,
      route: l.spec.routes[r.req.routeIndex]?.name ?? null,
      cluster: r.cluster,
      upstream: r.upstream,
      method: head.method,
      protocol: head.protocol,
      path: head.target,
      status: r.status,
      duration_ms: Math.round(r.durationMs * 1000) / 1000,
      bytes_in: r.bytesFromClient,
      bytes_out: r.bytesFromUpstream,
      request_id: head.requestId,
      client: head.client,
      peer: head.peer,
      error: null,
      detail: null,
      tries: 1,
      trace_id: head.trace?.traceId ?? null,
    });
  }

  /** A connection of a tcp listener ended: one line with its start, duration, bytes both ways, peer, endpoint and how it ended. */
  tcpDone(l: ListenerRuntime, r: TcpRecord): void {
    const spec = l.spec.accessLog;
    if (spec === null) return;
    this.emit(l.spec.name, spec, {
      listener: l.spec.name,
      protocol: 'tcp',
      cluster: r.cluster,
      upstream: r.upstream,
      client: r.client,
      peer: r.peer,
      destination_port: r.destinationPort,
      start: isoTime(r.startMs),
      duration_ms: r.durationMs,
      bytes_from_client: r.bytesFromClient,
      bytes_from_upstream: r.bytesFromUpstream,
      end: r.end,
    });
  }

  /**
   * After a config delta: logs whose settings changed, or whose listener went, are flushed and
   * dropped; resolves once the access-log code is loaded when the delta brings an access log.
   */
  async applied(delta: ConfigDelta): Promise<void> {
    for (const name of delta.listeners.removed) this.drop(name);
    for (const c of delta.listeners.changed) if (c.accessLog) this.drop(c.spec.name);
    const specs = [...delta.listeners.added, ...delta.listeners.changed.map((c) => c.spec)];
    if (this.AccessLogClass === null && specs.some((l) => l.accessLog !== null)) await this.load();
  }

  private load(): Promise<void> {
    this.loading ??= import('../dataplane/access_log.js').then((m) => {
      this.AccessLogClass = m.AccessLog;
      const early = this.early;
      this.early = [];
      for (const e of early) writeEntry(this.logOf(e.name, e.spec), e.entry);
    });
    return this.loading;
  }

  private logOf(name: string, spec: AccessLogSpec): AccessLog {
    let log = this.logs.get(name);
    // A removed listener's last connections reopen its log when they end: a listener that takes
    // the name later with other settings writes to its own, not to that one.
    if (log !== undefined && (log.spec.path !== spec.path || log.spec.format !== spec.format)) {
      log.close();
      log = undefined;
    }
    if (log === undefined) {
      log = new this.AccessLogClass!(spec);
      this.logs.set(name, log);
    }
    return log;
  }

  /** Writes what is buffered (worker shutdown). */
  flushAll(): void {
    for (const log of this.logs.values()) log.flush();
  }

  private drop(name: string): void {
    this.logs.get(name)?.close();
    this.logs.delete(name);
  }

  private write(
    l: ListenerRuntime,
    head: RequestHead | null,
    route: string | null,
    ex: Exchange | null,
    status: number,
    err: ProxyError | null,
    requestId: string,
  ): void {
    const spec = l.spec.accessLog;
    if (spec === null) return;
    const entry: AccessEntry = {
      listener: l.spec.name,
      route,
      cluster: ex === null ? null : ex.cluster.spec.name,
      upstream: ex === null ? null : ex.endpoint.address,
      method: head?.method ?? '',
      protocol: head?.protocol ?? null,
      path: head?.target ?? '',
      status,
      duration_ms: ex === null ? 0 : Math.round((ex.endMs - ex.startMs) * 1000) / 1000,
      bytes_in: ex?.bytesIn ?? 0,
      bytes_out: ex?.bytesOut ?? 0,
      request_id: requestId,
      client: head?.client ?? '',
      peer: head?.peer ?? null,
      error: err === null ? null : err.code,
      detail: err === null ? null : err.message,
      tries: ex?.tries ?? 0,
      trace_id: head?.trace?.traceId ?? null,
    };
    this.emit(l.spec.name, spec, entry);
  }

  private emit(name: string, spec: AccessLogSpec, entry: AccessEntry | TcpAccessEntry): void {
    if (this.AccessLogClass !== null) {
      writeEntry(this.logOf(name, spec), entry);
    } else {
      // Before the code has loaded (a request between the bind and the end of the apply).
      if (this.early.length < MAX_EARLY_ENTRIES) this.early.push({ name, spec, entry });
      void this.load();
    }
  }
}

function writeEntry(log: AccessLog, entry: AccessEntry | TcpAccessEntry): void {
  if ('destination_port' in entry) log.writeTcp(entry);
  else log.write(entry);
}

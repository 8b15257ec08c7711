// Worker side of access logging: one AccessLog per listener that has access_log set, created
// on its first request and replaced when a config delta says the listener's access_log changed
// (or drops it when the listener goes). Writes one entry per finished request.

import { AccessLog } from '../dataplane/access_log.js';
import type { Exchange } from '../dataplane/exchange.js';
import type { ListenerRuntime } from '../dataplane/listener.js';
import type { RequestHead } from '../dataplane/request_head.js';
import type { ConfigDelta } from '../config/delta.js';
import type { ProxyError } from '../errors.js';

export class AccessLogs {
  /** By listener name. */
  private readonly logs = new Map<string, AccessLog>();

  exchangeDone(l: ListenerRuntime, ex: Exchange): void {
    if (l.spec.accessLog === null) return;
    this.write(l, ex.head, ex.route.name, ex, ex.status, ex.error);
  }

  localReply(l: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null): void {
    if (l.spec.accessLog === null) return;
    this.write(l, head, routeIndex >= 0 ? (l.spec.routes[routeIndex]?.name ?? null) : null, null, err.status, err);
  }

  /** After a config delta: logs whose settings changed, or whose listener went, are flushed and dropped. */
  applied(delta: ConfigDelta): void {
    for (const name of delta.listeners.removed) this.drop(name);
    for (const c of delta.listeners.changed) if (c.accessLog) this.drop(c.spec.name);
  }

  /** Writes what is buffered (worker shutdown). */
  flushAll(): void {
    for (const log of this.logs.values()) log.flush();
  }

  private drop(name: string): void {
    this.logs.get(name)?.flush();
    this.logs.delete(name);
  }

  private write(l: ListenerRuntime, head: RequestHead | null, route: string | null, ex: Exchange | null, status: number, err: ProxyError | null): void {
    const spec = l.spec.accessLog;
    if (spec === null) return;
    let log = this.logs.get(l.spec.name);
    if (log === undefined) {
      log = new AccessLog(spec);
      this.logs.set(l.spec.name, log);
    }
    log.write({
      listener: l.spec.name,
      route,
      cluster: ex === null ? null : ex.cluster.spec.name,
      upstream: ex === null ? null : ex.endpoint.address,
      method: head?.method ?? '',
      path: head?.target ?? '',
      status,
      duration_ms: ex === null ? 0 : Math.round((ex.endMs - ex.startMs) * 1000) / 1000,
      bytes_in: ex?.bytesIn ?? 0,
      bytes_out: ex?.bytesOut ?? 0,
      request_id: head?.requestId ?? '',
      client: head?.client ?? '',
      peer: head?.peer ?? null,
      error: err === null ? null : err.code,
      detail: err === null ? null : err.message,
      tries: ex?.tries ?? 0,
    });
  }
}

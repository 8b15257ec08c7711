// Access log for a listener (optional): one JSON line (or a short text line) per request,
// written off the request path: lines go to a pino logger on an async, buffered sonic-boom
// destination (stdout or a file), so a request never waits for a write.

import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import type { AccessLogSpec } from '../config/types.js';
import { pinoIsoTime } from '../time.js';

export interface AccessEntry {
  readonly listener: string;
  readonly route: string | null;
  readonly cluster: string | null;
  readonly upstream: string | null;
  readonly method: string;
  /** `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`; null when no head was parsed. */
  readonly protocol: string | null;
  readonly path: string;
  readonly status: number;
  readonly duration_ms: number;
  readonly bytes_in: number;
  readonly bytes_out: number;
  readonly request_id: string;
  readonly client: string;
  readonly peer: string | null;
  readonly error: string | null;
  /** The error's detailed message (endpoint, parser message, peer): for operators, never for callers. */
  readonly detail: string | null;
  readonly tries: number;
  /** The request's trace id when tracing is on (sampled or not), else null. */
  readonly trace_id: string | null;
}

/** One connection of a `protocol: tcp` listener (its end: tcp_proxy.ts TcpEnd). */
export interface TcpAccessEntry {
  readonly listener: string;
  readonly protocol: 'tcp';
  readonly cluster: string;
  readonly upstream: string | null;
  readonly client: string;
  readonly peer: string | null;
  readonly destination_port: number;
  /** ISO time the connection was accepted. */
  readonly start: string;
  readonly duration_ms: number;
  readonly bytes_from_client: number;
  readonly bytes_from_upstream: number;
  readonly end: string;
}

export class AccessLog {
  private readonly logger: Logger;
  private readonly dest: ReturnType<typeof pino.destination>;
  private readonly text: boolean;

  constructor(readonly spec: AccessLogSpec) {
    // The file is opened here, synchronously (once per log): a destination sonic-boom opens by
    // itself is not ready for a while, and lines buffered until then were lost when the log was
    // flushed and dropped before it was (a reload right after the first request).
    const dest = pino.destination({ dest: spec.path === 'stdout' ? 1 : openLogFile(spec.path), sync: false, minLength: 4096 });
    this.dest = dest;
    this.logger = pino({ base: null, timestamp: pinoIsoTime, messageKey: 'msg' }, dest);
    this.text = spec.format === 'text';
  }

  write(e: AccessEntry): void {
    if (this.text) {
      this.logger.info(
        `${e.client} ${e.peer ?? '-'} "${e.method} ${e.path}${e.protocol === null ? '' : ` ${e.protocol}`}" ${e.status} ${e.bytes_out} ${e.duration_ms.toFixed(3)}ms ${e.upstream ?? '-'} ${e.request_id}${e.trace_id === null ? '' : ` trace_id=${e.trace_id}`}${e.error === null ? '' : ` ${e.error} ${JSON.stringify(e.detail ?? '')}`}`,
      );
    } else {
      this.logger.info(e, 'access');
    }
  }

  writeTcp(e: TcpAccessEntry): void {
    if (this.text) {
      this.logger.info(
        `${e.client} ${e.peer ?? '-'} "TCP :${e.destination_port}" ${e.end} ${e.bytes_from_client} ${e.bytes_from_upstream} ${e.duration_ms.toFixed(3)}ms ${e.upstream ?? '-'}`,
      );
    } else {
      this.logger.info(e, 'access');
    }
  }

  /**
   * Writes what is buffered, synchronously (worker shutdown, or a log being replaced): the thread
   * may exit on the next turn, before an asynchronous write would have run.
   */
  flush(): void {
    try {
      this.dest.flushSync();
    } catch {
      // a destination that failed (its error was reported) has nothing more to write
    }
  }

  /** Writes what is buffered and closes the file (a log dropped by a reload; stdout stays open). */
  close(): void {
    this.flush();
    this.dest.destroy();
  }
}

/** Opens a log file for appending (its directory created for a config file's path; an admin API path is /proc/self/fd/N). */
function openLogFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a', 0o640);
  } catch (e) {
    process.stderr.write(`outrigger: cannot open access log "${path}": ${(e as Error).message}; its lines are dropped\n`);
    return openSync('/dev/null', 'a');
  }
}

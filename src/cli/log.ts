// The process logger: pino JSON lines on stdout (one line per event, machine-readable; the
// `ready` line is what scripts and tests wait for).
//
// Written synchronously: the main thread logs rarely (start, reloads, worker events), and every
// line must be out before an exit that does not return to the event loop (the watchdog's _exit(70)
// lost its "worker stuck" line with pino's default asynchronous destination).

import { pino, type Logger } from 'pino';
import { pinoIsoTime } from '../time.js';

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pinoIsoTime }, pino.destination({ fd: 1, sync: true }));
}

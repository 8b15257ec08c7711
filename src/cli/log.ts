// The process logger: pino JSON lines on stdout (one line per event, machine-readable; the
// `ready` line is what scripts and tests wait for).

import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

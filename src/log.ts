// What the main-thread parts (supervisor, discovery) log through: the process logger (pino,
// cli/log.ts) satisfies it structurally, and a test or benchmark can hand in a quiet stand-in.
// A part that needs fewer levels takes a Pick of it.

export interface Log {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

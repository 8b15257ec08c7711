// Which worker threads serve which listener: decided here and nowhere else. compile.ts divides
// a listener's limits (rate limits) among the workers that serve it; config deltas give each
// worker the listeners placed on it. Pure.

import type { ListenerSpec } from './types.js';

/**
 * The worker ids (1..workers) that serve a listener: every one of them, whatever its engine or
 * TLS mode. Each worker binds its own SO_REUSEPORT socket on the listener's port (uWS sets the
 * option itself, node-engine listeners get a socket from the reuseport addon) and the kernel
 * spreads connections among them.
 */
export function listenerPlacement(_listener: Pick<ListenerSpec, 'name' | 'engine' | 'tls'>, workers: number): readonly number[] {
  return Array.from({ length: Math.max(1, workers) }, (_, i) => i + 1);
}

/** The listeners of a snapshot that a worker serves, in config order. */
export function listenersOf(listeners: readonly ListenerSpec[], workers: number, worker: number): ListenerSpec[] {
  return listeners.filter((l) => listenerPlacement(l, workers).includes(worker));
}

// Waiting for whichever of several events comes first.

import type { EventEmitter } from 'node:events';

/** Resolves at the first of `events` on `emitter`, and then listens to none of them any more. */
export function firstEvent(emitter: EventEmitter, events: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      for (const e of events) emitter.off(e, done);
      resolve();
    };
    for (const e of events) emitter.on(e, done);
  });
}

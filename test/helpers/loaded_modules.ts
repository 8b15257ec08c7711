// What a sidecar's threads load, read from the resolution log that module_log.mjs writes (start
// the sidecar with `moduleLogEnv(file)` in its environment): for tests that keep a module off a
// thread that does not need it.
import path from 'node:path';
import { ROOT } from './sidecar.js';

const MODULE_LOG_HOOK = path.join(ROOT, 'test', 'helpers', 'module_log.mjs');

/** The environment that makes every thread of a process log its module resolutions to `file`. */
export function moduleLogEnv(file: string): Record<string, string> {
  return { NODE_OPTIONS: `--import ${MODULE_LOG_HOOK}`, MODULE_LOG: file };
}

/** The modules a thread loaded: everything reachable in the resolution log from its entry point. */
export function loadedFrom(log: string, entry: RegExp): Set<string> {
  const children = new Map<string, string[]>();
  for (const line of log.split('\n')) {
    const [parent, child] = line.split(' ');
    if (parent === undefined || child === undefined) continue;
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const roots = (children.get('-') ?? []).filter((url) => entry.test(url));
  const seen = new Set<string>(roots);
  const todo = [...roots];
  for (let url = todo.pop(); url !== undefined; url = todo.pop()) {
    for (const child of children.get(url) ?? []) {
      if (seen.has(child)) continue;
      seen.add(child);
      todo.push(child);
    }
  }
  return seen;
}

/** The main thread's modules (from the CLI's entry point). */
export const MAIN_ENTRY = /\/dist\/src\/cli\/main\.js$/;

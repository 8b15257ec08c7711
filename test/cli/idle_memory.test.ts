// Memory handed back at rest (src/cli/idle_memory.ts): glibc's malloc_trim through the native
// addon really returns freed arena pages (a child process frees 35 MiB in 1 KiB pieces between
// kept ones, so free() alone cannot shrink the heap), and MallocTrimWhenIdle calls it only after
// TRIM_AFTER_IDLE_S idle seconds in a row, never in a busy one.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BUSY_CPU_MS } from '../../src/cli/compilers.js';
import { MallocTrimWhenIdle, TRIM_AFTER_IDLE_S } from '../../src/cli/idle_memory.js';
import { ROOT } from '../helpers/sidecar.js';

const CHILD = `
import { readFileSync } from 'node:fs';
const { trimMalloc } = await import(${JSON.stringify(`${ROOT}/dist/src/net/reuseport.js`)});
const anonKb = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const keep = [];
let drop = [];
for (let i = 0; i < 40000; i++) {
  const b = new ArrayBuffer(1024 + (i % 7));
  new Uint8Array(b).fill(1);
  (i % 8 === 0 ? keep : drop).push(b);
}
drop = null;
globalThis.gc();
globalThis.gc();
const before = anonKb();
const released = trimMalloc();
console.log(JSON.stringify({ before, after: anonKb(), released, kept: keep.length }));
`;

describe('trimMalloc (native addon)', () => {
  it('hands the free pages between live allocations back to the kernel: RssAnon falls', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { before: number; after: number; released: boolean; kept: number };
    expect(out.released).toBe(true);
    expect(out.kept).toBe(5000);
    // 35 000 freed 1 KiB buffers, ~34 MiB: most of it goes back.
    expect(out.before - out.after).toBeGreaterThan(10 * 1024);
  });
});

/** A MallocTrimWhenIdle over a scripted CPU clock: `second(ms)` spends ms of CPU, then ticks. */
function scripted(): { second: (ms: number) => void; trims: () => number } {
  let micros = 0;
  let trims = 0;
  const t = new MallocTrimWhenIdle(
    () => {
      trims++;
      return true;
    },
    () => ({ user: micros, system: 0 }),
  );
  return {
    second: (ms) => {
      micros += ms * 1000;
      t.tick();
    },
    trims: () => trims,
  };
}

describe('MallocTrimWhenIdle', () => {
  it(`trims after ${TRIM_AFTER_IDLE_S} idle seconds in a row, and after every ${TRIM_AFTER_IDLE_S} more`, () => {
    const s = scripted();
    for (let i = 1; i < TRIM_AFTER_IDLE_S; i++) s.second(1);
    expect(s.trims()).toBe(0);
    s.second(1);
    expect(s.trims()).toBe(1);
    for (let i = 0; i < 2 * TRIM_AFTER_IDLE_S; i++) s.second(BUSY_CPU_MS - 1);
    expect(s.trims()).toBe(3);
  });

  it('a busy second starts the count again: never under load', () => {
    const s = scripted();
    for (let round = 0; round < 5; round++) {
      for (let i = 1; i < TRIM_AFTER_IDLE_S; i++) s.second(0);
      s.second(BUSY_CPU_MS);
    }
    for (let i = 0; i < 100; i++) s.second(1000);
    expect(s.trims()).toBe(0);
  });
});

// V8's compilers during a sidecar's start-up (src/cli/compilers.ts): off until the ready line,
// Sparkplug on from then, TurboFan once the process is busy, and both left alone when node was
// started with its own choice. Read from V8's own
// trace (`node --trace-opt`), which prints `[completed optimizing <fn>` to stdout each time
// TurboFan installs code: counted over a whole run, so the order of V8's (buffered) prints and the
// sidecar's log lines does not matter. stdout goes to a file: a trace printed while a stdout pipe
// is full would be lost (test/helpers/process.ts, spawnCli).
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUSY_CPU_MS, BUSY_SECONDS, OptimizerWhenBusy, SATURATED_CPU_MS, compilersChosenByUser } from '../../src/cli/compilers.js';
import {
  closeAll,
  moreRequests,
  proxyConfig,
  sleep,
  spawnCli,
  startApp,
  startLoad,
  startSidecar,
  stopWithoutFailures,
  writeConfig,
  type CliProcess,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { logEntry } from '../helpers/process.js';

const OPTIMIZED = '[completed optimizing';
const COMPILER_ON = 'optimizing compiler on: the sidecar is busy';

afterAll(closeAll);

/** What TurboFan optimized in a sidecar's whole run: its stdout once it has exited (0). */
async function optimizedIn(sc: CliProcess): Promise<string[]> {
  expect(await sc.stop()).toBe(0);
  return sc
    .stdout()
    .split('\n')
    .filter((l) => l.includes(OPTIMIZED));
}

async function sidecarTo(app: Upstream, nodeArgs: readonly string[]): Promise<Sidecar> {
  return startSidecar(proxyConfig([`127.0.0.1:${app.port}`]), { nodeArgs, stdoutToFile: true });
}

/** 3000 requests on 10 keep-alive connections, every one answered by the app. */
async function load(sc: Sidecar): Promise<void> {
  const l = startLoad(sc.port(), { total: 3000 });
  await l.done;
  await stopWithoutFailures(l);
}

describe('log lines among V8 trace text (test/helpers/process.ts logEntry)', () => {
  it('reads the log line that a trace print without a line end runs into (as CI once saw), and only whole objects', () => {
    const on = `{"level":30,"time":"2026-12-07T18:59:05.827Z","pid":7797,"cpu_ms":691,"msg":"${COMPILER_ON}"}`;
    expect(logEntry(`[marking 0x118cac975199 ${on}`)).toEqual(JSON.parse(on));
    expect(logEntry(on)).toEqual(JSON.parse(on));
    expect(logEntry('[completed optimizing 0x3e1d <JSFunction parseHead (sfi = 0x2f)>]')).toEqual({
      msg: '[completed optimizing 0x3e1d <JSFunction parseHead (sfi = 0x2f)>]',
    });
    // An object cut short by a trace is no entry: the line stays text.
    expect(logEntry('{"level":30,"msg":"rea[marking 0x1 <JSFunction f>]')).toEqual({ msg: '{"level":30,"msg":"rea[marking 0x1 <JSFunction f>]' });
  });
});

describe('compilers during start-up', () => {
  it('a sidecar that starts and stops optimizes nothing: start-up code (the module loader) is not compiled', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt']);
    expect(await optimizedIn(sc)).toEqual([]);
  });

  it('the same with the flags before the command (outrigger -c FILE run)', async () => {
    const app = await startApp();
    const { file } = writeConfig(proxyConfig([`127.0.0.1:${app.port}`]), {});
    const p = spawnCli(['-c', file, 'run'], {}, [], ['--trace-opt'], join(dirname(file), 'stdout'));
    await p.waitForLog((e) => e.msg === 'ready');
    expect(await optimizedIn(p)).toEqual([]);
  });

  it('a burst of requests, then idle: TurboFan stays off (it optimized the request path at once when it came on with the ready line)', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt']);
    const l = startLoad(sc.port(), { total: 400 });
    await l.done;
    await stopWithoutFailures(l);
    // More than BUSY_SECONDS of the main thread's once-a-second checks after the burst.
    await sleep((BUSY_SECONDS + 2) * 1000);
    expect(sc.entries().filter((e) => e.msg === COMPILER_ON)).toEqual([]);
    expect(await optimizedIn(sc)).toEqual([]);
  });

  it('under load, TurboFan comes on (one info line) and the request path is optimized', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt']);
    const l = startLoad(sc.port());
    const on = await sc.waitForLog((e) => e.msg === COMPILER_ON, 30_000);
    expect(on['cpu_ms']).toBeGreaterThanOrEqual(BUSY_CPU_MS);
    await moreRequests(l, 3000);
    await stopWithoutFailures(l);
    expect((await optimizedIn(sc)).length).toBeGreaterThan(0);
    expect(sc.entries().filter((e) => e.msg === COMPILER_ON)).toHaveLength(1);
  });

  it('node started with its own compiler flags keeps them: --no-turbofan stays off under load', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt', '--no-turbofan']);
    await load(sc);
    expect(await optimizedIn(sc)).toEqual([]);
    expect(sc.entries().filter((e) => e.msg === COMPILER_ON)).toEqual([]);
  });

  it.each([
    [['--jitless'], undefined, true],
    [['--no-opt'], undefined, true],
    [['--max-opt=2'], undefined, true],
    [['--no-sparkplug'], undefined, true],
    [[], '--max-old-space-size=100 --jitless', true],
    [['--trace-opt', '--max-old-space-size=100'], '--enable-source-maps', false],
    [['--optimize-for-size'], undefined, false],
    [[], undefined, false],
  ] as const)('compilersChosenByUser(%j, %j) is %s', (execArgv, nodeOptions, chosen) => {
    expect(compilersChosenByUser(execArgv, nodeOptions)).toBe(chosen);
  });
});

/** An OptimizerWhenBusy over a scripted CPU clock: `spend(ms)` then `tick()` is one second. */
function scripted(held = true): { o: OptimizerWhenBusy; spend: (ms: number) => void; on: number[] } {
  let micros = 0;
  const on: number[] = [];
  const o = new OptimizerWhenBusy(
    (ms) => on.push(ms),
    () => ({ user: micros, system: 0 }),
    () => held,
  );
  return { o, spend: (ms) => void (micros += ms * 1000), on };
}

describe('OptimizerWhenBusy', () => {
  it(`comes on at the ${BUSY_SECONDS}rd second in a row with ${BUSY_CPU_MS} ms of CPU or more, once`, () => {
    const { o, spend, on } = scripted();
    o.arm();
    for (let s = 0; s < BUSY_SECONDS + 3; s++) {
      spend(BUSY_CPU_MS);
      o.tick();
    }
    expect(on).toEqual([BUSY_CPU_MS]);
  });

  it("an idle second between busy ones starts the count again: a memory reducer's GC or a reload's burst is not load", () => {
    const { o, spend, on } = scripted();
    o.arm();
    for (let round = 0; round < 5; round++) {
      for (let s = 0; s < BUSY_SECONDS - 1; s++) {
        spend(SATURATED_CPU_MS - 1);
        o.tick();
      }
      spend(BUSY_CPU_MS - 1);
      o.tick();
    }
    expect(on).toEqual([]);
  });

  it(`one second with ${SATURATED_CPU_MS} ms of CPU turns it on at once (a load test)`, () => {
    const { o, spend, on } = scripted();
    o.arm();
    spend(3);
    o.tick();
    spend(SATURATED_CPU_MS);
    o.tick();
    expect(on).toEqual([SATURATED_CPU_MS]);
  });

  it("start-up's CPU before arm() is not counted, and ticks before it do nothing", () => {
    const { o, spend, on } = scripted();
    spend(5000);
    o.tick();
    o.arm();
    spend(1);
    o.tick();
    expect(on).toEqual([]);
  });

  it('does nothing when TurboFan is not held off (node chose its compilers)', () => {
    const { o, spend, on } = scripted(false);
    o.arm();
    spend(SATURATED_CPU_MS * 2);
    o.tick();
    expect(on).toEqual([]);
  });
});

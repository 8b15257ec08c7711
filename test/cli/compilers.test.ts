// V8's compilers during a sidecar's start-up (src/cli/compilers.ts): off until the ready line,
// on from then, and left alone when node was started with its own choice. Read from V8's own
// trace (`node --trace-opt`), which prints `[completed optimizing <fn>` to stdout each time
// TurboFan installs code: counted over a whole run, so the order of V8's (buffered) prints and the
// sidecar's log lines does not matter. stdout goes to a file: a trace printed while a stdout pipe
// is full would be lost (test/helpers/process.ts, spawnCli).
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compilersChosenByUser } from '../../src/cli/compilers.js';
import {
  closeAll,
  proxyConfig,
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

const OPTIMIZED = '[completed optimizing';

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

  it('once ready, the request path is optimized as before', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt']);
    await load(sc);
    expect((await optimizedIn(sc)).length).toBeGreaterThan(0);
  });

  it('node started with its own compiler flags keeps them: --no-turbofan stays off under load', async () => {
    const app = await startApp();
    const sc = await sidecarTo(app, ['--trace-opt', '--no-turbofan']);
    await load(sc);
    expect(await optimizedIn(sc)).toEqual([]);
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

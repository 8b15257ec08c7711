// `outrigger top` in a real terminal: tmux (its own server socket, a 120×30 pane) runs the built
// CLI against a sidecar with a busy path and a quiet one. The screen shows both with their route;
// by rate the busy one is first, `p` sorts by path (the quiet one, /aa…, first), `r` back; `q`
// leaves top with exit 0 and the terminal's normal screen.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, closeAll, eventually, proxyConfig, startApp, startLoad, startSidecar, tempDir, track, type Sidecar } from '../helpers/sidecar.js';

const SOCKET = `outrigger-top-${process.pid}`;
const SESSION = 'top';

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
}

function screen(): string {
  return tmux('capture-pane', '-p', '-t', SESSION);
}

function sessionAlive(): boolean {
  try {
    // Quiet: "no server running" is the answer expected once top has quit.
    execFileSync('tmux', ['-L', SOCKET, 'has-session', '-t', SESSION], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The pane's path rows in screen order, as `METHOD PATH ROUTE`. */
function rowsOf(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^GET +\//.test(l))
    .map((l) => l.split(/ +/).slice(0, 3).join(' '));
}

/** Presses `key` in top and waits until its title says it sorts by `order`, with `first` as the top row. */
async function pressToSort(key: string, order: 'path' | 'rps', first: string): Promise<void> {
  tmux('send-keys', '-t', SESSION, key);
  await expect
    .poll(() => ({ sortedBy: /sorted by (\w+)/.exec(screen())?.[1], first: rowsOf(screen())[0] }), { timeout: 10_000, interval: 100 })
    .toEqual({ sortedBy: order, first });
}

let sc: Sidecar;

beforeAll(async () => {
  const app = await startApp();
  sc = await startSidecar(proxyConfig([app.address]), { workers: 2 });
  startLoad(sc.port(), { connections: 3, path: () => '/zz/busy' });
  // A few requests a second on the quiet path.
  startLoad(sc.port(), { connections: 1, path: () => '/aa/quiet', pauseMs: 250 });
  track({ close: () => Promise.resolve(void (sessionAlive() && tmux('kill-server'))) });
}, 60_000);
afterAll(closeAll);

describe('outrigger top in tmux', () => {
  it('renders the busiest paths, sorts by the key pressed, and q exits 0', async () => {
    const exitFile = path.join(tempDir(), 'exit');
    const command = `'${process.execPath}' '${CLI}' top --admin ${sc.admin.replace('http://', '')} --token-file '${sc.tokenFile}'; echo $? > '${exitFile}'`;
    tmux('new-session', '-d', '-s', SESSION, '-x', '120', '-y', '30', command);

    const byRate = await eventually(
      () => {
        const rows = rowsOf(screen());
        return rows.length === 2 && rows[0] === 'GET /zz/busy all' ? rows : undefined;
      },
      'both paths on screen, the busy one first',
      20_000,
      200,
    );
    expect(byRate).toEqual(['GET /zz/busy all', 'GET /aa/quiet all']);
    expect(screen()).toMatch(/^outrigger top http:\/\/127\.0\.0\.1:\d+ {2}sorted by rps/m);
    expect(screen()).toMatch(/^METHOD +PATH +ROUTE +RPS +SUCCESS +MEAN +COUNT$/m);

    await pressToSort('p', 'path', 'GET /aa/quiet all');
    await pressToSort('r', 'rps', 'GET /zz/busy all');

    tmux('send-keys', '-t', SESSION, 'q');
    await eventually(() => (!sessionAlive() ? true : undefined), 'top to exit and its session to close', 10_000, 100);
    expect(readFileSync(exitFile, 'utf8').trim()).toBe('0');
  });
});

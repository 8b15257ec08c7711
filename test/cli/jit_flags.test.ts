// The fields that only rare events store to are changing in V8's eyes from the first object on
// (src/jit.ts), so that the first client abort or half-close after warm-up, or the ticker's
// first sweep, does not throw away the optimized request path. Read from V8's own trace
// (`node --trace-generalization`), which names the function that made a field changing: it must
// be changingFields, never the event's handler. Mutations: without the changingFields call in
// H1Connection's constructor, the client's half-close below makes `peerEnded` changing in
// H1Connection.onEnd; without the one in Exchange's, the abort makes `clientGone` changing in
// Exchange.onClientAborted; either fails this.
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, proxyConfig, startApp, startLoad, startSidecar, stopWithoutFailures } from '../helpers/sidecar.js';

afterAll(closeAll);

/** Where each `[generalizing]<field>:…const}->…mutable}` line of the trace says it happened. */
function madeChanging(stdout: string, field: string): string[] {
  const re = new RegExp(`\\[generalizing\\]${field}:[^\\n]*const\\}->[^\\n]*mutable\\}[^\\n]*\\[([^\\]]*)\\]`, 'g');
  return [...stdout.matchAll(re)].map((m) => m[1]!);
}

/** `text` on a fresh connection (then a half-close, or not); what came back once the connection closed. */
function exchange(port: number, text: string, halfClose: boolean): { socket: net.Socket; done: Promise<string> } {
  const socket = net.connect(port, '127.0.0.1', () => (halfClose ? socket.end(text) : socket.write(text)));
  const done = new Promise<string>((resolve) => {
    let got = '';
    socket.setEncoding('latin1').on('data', (d: string) => (got += d));
    socket.on('close', () => resolve(got));
    socket.on('error', () => undefined); // 'close' follows
  });
  return { socket, done };
}

describe('fields stored to by rare events', () => {
  it.each([
    ['strict', ['peerEnded', 'ticking', 'clientGone']],
    ['uws', ['ticking', 'clientGone']],
  ] as const)('%s engine: after warm-up, a client abort and a half-close; %j were made changing by changingFields', async (engine, fields) => {
    const app = await startApp();
    const config = proxyConfig([`127.0.0.1:${app.port}`], engine === 'uws' ? { engine } : {}); // strict: the default
    // --no-sparkplug: node 20's V8 aborts printing a generalization made in baseline code.
    const sc = await startSidecar(config, { nodeArgs: ['--trace-generalization', '--no-sparkplug'], stdoutToFile: true });
    const load = startLoad(sc.port(), { total: 3000 });
    await load.done;
    await stopWithoutFailures(load);

    // A request in flight whose client goes away (a reset: the strict engine reads a FIN as a
    // half-close and still answers).
    app.script = ['hang'];
    const aborted = exchange(sc.port(), 'GET /held HTTP/1.1\r\nHost: a\r\n\r\n', false);
    await expect.poll(() => app.hanging).toBe(1);
    aborted.socket.resetAndDestroy();
    await aborted.done;
    // One request, then the client half-closes (uWS closes a half-closed connection at once,
    // unanswered: there the client closes once answered).
    const last = exchange(sc.port(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', engine === 'strict');
    if (engine === 'uws') last.socket.once('data', () => last.socket.end());
    expect(await last.done).toMatch(/^HTTP\/1\.1 200 /);

    app.release();
    expect(await sc.stop()).toBe(0);
    const out = sc.stdout();
    for (const field of fields) {
      const where = madeChanging(out, field);
      expect(where.length, `${field}: no generalization traced`).toBeGreaterThan(0);
      for (const w of where) expect(w, field).toMatch(/changingFields/);
    }
  });
});

// The fields that only rare events change are changing in V8's eyes from the first object on
// (src/jit.ts), so that a client's first half-close, or the ticker's first sweep, does not throw
// away the optimized request path. Read from V8's own trace (`node --trace-generalization`),
// which names the function that made a field changing: it must be changingFlags, never the
// event's handler. Mutation: without the changingFlags call in H1Connection's constructor, the
// client's half-close below makes `peerEnded` changing in H1Connection.onEnd, and this fails.
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, proxyConfig, startApp, startLoad, startSidecar, stopWithoutFailures } from '../helpers/sidecar.js';

afterAll(closeAll);

/** Where each `[generalizing]<field>:…const}->…mutable}` line of the trace says it happened. */
function madeChanging(stdout: string, field: string): string[] {
  const re = new RegExp(`\\[generalizing\\]${field}:[^\\n]*const\\}->[^\\n]*mutable\\}[^\\n]*\\[([^\\]]*)\\]`, 'g');
  return [...stdout.matchAll(re)].map((m) => m[1]!);
}

/** One request on a fresh connection, then the client half-closes it (the sidecar then closes too). */
function requestThenHalfClose(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    let got = '';
    s.setEncoding('latin1').on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

describe('flags changed by rare events', () => {
  it("a client's half-close after warm-up: peerEnded and the ticker's flag were made changing by changingFlags", async () => {
    const app = await startApp();
    // The default listener engine (strict): H1Connection.
    const sc = await startSidecar(proxyConfig([`127.0.0.1:${app.port}`]), { nodeArgs: ['--trace-generalization'] });
    const load = startLoad(sc.port(), { total: 3000 });
    await load.done;
    await stopWithoutFailures(load);
    expect(await requestThenHalfClose(sc.port())).toMatch(/^HTTP\/1\.1 200 /);
    expect(await sc.stop()).toBe(0);
    const out = sc.stdout();
    for (const field of ['peerEnded', 'ticking']) {
      const where = madeChanging(out, field);
      expect(where.length, `${field}: no generalization traced`).toBeGreaterThan(0);
      for (const w of where) expect(w, field).toMatch(/changingFlags/);
    }
  });
});

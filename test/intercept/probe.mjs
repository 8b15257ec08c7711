// A tiny TCP probe the interception tests start inside their network namespaces (plain JS: it
// runs under `ip netns exec`, and as another uid through setpriv, without a TypeScript loader).
//   node probe.mjs serve NAME=HOST:PORT[:orig] ...
//     listens on each address; every connection gets one JSON line and is closed:
//     {"listener":NAME,"original":"IP:PORT"|null,"ns":N,"repeatNs":M} (only on the ":orig"
//     listeners: ns is the time the connection's first originalDestination(fd) call took, repeatNs
//     the mean of REPEAT more calls on the same fd). Prints "listening" once
//     every listener is bound.
//   node probe.mjs connect HOST PORT [COUNT]
//     connects COUNT times (default 1), one after another, and prints each answer line, or
//     {"error":CODE} for a connection that failed.

import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** How many more originalDestination calls each ":orig" connection times (repeatNs: the mean). */
const REPEAT = 100;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function serve(specs) {
  const { originalDestination, reusePortListen } = await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'net', 'reuseport.js')).href);
  await Promise.all(
    specs.map((spec) => {
      const m = /^([\w-]+)=(.+):(\d+)(:orig)?$/.exec(spec);
      if (m === null) throw new Error(`bad listener spec ${spec}`);
      const [, name, host, port, orig] = m;
      const server = net.createServer((socket) => {
        const answer = { listener: name };
        if (orig !== undefined) {
          const fd = socket._handle.fd;
          const t0 = process.hrtime.bigint();
          const o = originalDestination(fd);
          answer.ns = Number(process.hrtime.bigint() - t0);
          answer.original = o === null ? null : `${o.address}:${o.port}`;
          // The same call repeated on this connection: its steady cost, past the first call's.
          const t1 = process.hrtime.bigint();
          for (let i = 0; i < REPEAT; i++) originalDestination(fd);
          answer.repeatNs = Number(process.hrtime.bigint() - t1) / REPEAT;
        }
        socket.end(`${JSON.stringify(answer)}\n`);
        socket.on('error', () => undefined);
      });
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        // The ":orig" listeners bind as outrigger's do (the reuseport addon), the others plainly.
        if (orig !== undefined) server.listen({ fd: reusePortListen(host, Number(port)) }, resolve);
        else server.listen(Number(port), host, resolve);
      });
    }),
  );
  console.log('listening');
}

function connectOnce(host, port) {
  return new Promise((resolve) => {
    let data = '';
    const socket = net.connect({ host, port });
    socket.setEncoding('utf8');
    socket.setTimeout(5000, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.on('data', (d) => (data += d));
    socket.on('end', () => resolve(data.trim()));
    socket.on('error', (e) => resolve(JSON.stringify({ error: e.code ?? e.message })));
  });
}

async function connect(host, port, count) {
  for (let i = 0; i < count; i++) console.log(await connectOnce(host, port));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') await serve(args);
else if (mode === 'connect') await connect(args[0], Number(args[1]), Number(args[2] ?? 1));
else throw new Error('usage: probe.mjs serve NAME=HOST:PORT[:orig] ... | connect HOST PORT [COUNT]');

// The floor of a proxy written in Node, as a bench config beside nginx and haproxy: a TCP relay
// that opens one upstream connection per client connection and copies bytes both ways, on the
// main thread, without parsing anything. No Node HTTP proxy can do less per request (the same
// 2 reads and 2 writes as nginx, plus Node's event loop, stream layer and V8), so outrigger's
// figures minus this one are what outrigger's own work costs, and this one minus nginx's is what
// Node costs on the machine. Not a usable proxy: no HTTP, no pooling, no limits.
//
// usage: node dist/bench/node_relay.js <listen port> <upstream port>   (prints {"msg":"listening","port":N})

import net from 'node:net';

const listenPort = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
if (!Number.isInteger(listenPort) || !Number.isInteger(upstreamPort)) {
  process.stderr.write('usage: node_relay.js <listen port> <upstream port>\n');
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  client.on('data', (b: Buffer) => upstream.write(b));
  upstream.on('data', (b: Buffer) => client.write(b));
  const end = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('close', end);
  upstream.on('close', end);
  client.on('error', end);
  upstream.on('error', end);
});
server.listen(listenPort, '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: address.port })}\n`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));

// A gRPC service without .proto files for the gRPC tests: grpc-js with a handwritten
// ServiceDefinition whose messages are raw Buffers (the "serializers" are the identity), a server
// that answers by method, clients for it (plain, mTLS, one per listener of a sidecar), the
// sidecar config that routes to it, and the three started together; and the pieces the tests' own
// fake gRPC servers share (RAW serializers, listenLocal, grpcFrame for gRPC spoken by hand).

import * as grpc from '@grpc/grpc-js';
import { config, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';

/** Serializers for messages that are raw Buffers: every service here and in the tests' own fake services uses them. */
export const RAW = {
  requestSerialize: (b: Buffer): Buffer => b,
  requestDeserialize: (b: Buffer): Buffer => b,
  responseSerialize: (b: Buffer): Buffer => b,
  responseDeserialize: (b: Buffer): Buffer => b,
};

export const SERVICE: grpc.ServiceDefinition = {
  unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, ...RAW },
  serverStream: { path: '/test.Echo/ServerStream', requestStream: false, responseStream: true, ...RAW },
  clientStream: { path: '/test.Echo/ClientStream', requestStream: true, responseStream: false, ...RAW },
  bidi: { path: '/test.Echo/Bidi', requestStream: true, responseStream: true, ...RAW },
};

export type EchoClient = grpc.Client & {
  unary(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  serverStream(req: Buffer, md: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
  clientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientWritableStream<Buffer>;
  bidi(md: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
};

const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

export function echoClient(address: string): EchoClient {
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as EchoClient;
}

/** A client that presents leaf `l` over mTLS and verifies the server against `caPem` (by chain only: SPIFFE IDs, not DNS names, identify sidecars). */
export function mtlsEchoClient(address: string, caPem: string, l: { certPem: string; keyPem: string }): EchoClient {
  const creds = grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(l.keyPem), Buffer.from(l.certPem), { checkServerIdentity: () => undefined });
  return new Ctor(address, creds) as unknown as EchoClient;
}

/** One EchoClient per listener, made on first use against `port(listener)`; close() closes them all. */
export function clientsPerListener(port: (listener: string) => number): { of(listener: string): EchoClient; close(): Promise<void> } {
  const clients = new Map<string, EchoClient>();
  return {
    of(listener) {
      let c = clients.get(listener);
      if (c === undefined) {
        c = echoClient(`127.0.0.1:${port(listener)}`);
        clients.set(listener, c);
      }
      return c;
    },
    close: () => Promise.resolve(clients.forEach((c) => c.close())),
  };
}

/** Metadata the server echoes back: every `x-*` key of the request, in the initial metadata. */
function echoMetadata(md: grpc.Metadata): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const [k, v] of Object.entries(md.getMap())) if (k.startsWith('x-')) out.set(k, v);
  return out;
}

/** Trailing metadata of an answer: status code, details and trailers a request asks for. */
function askedStatus(md: grpc.Metadata): Partial<grpc.StatusObject> | null {
  const code = md.get('x-status')[0];
  if (code === undefined) return null;
  const trailer = new grpc.Metadata();
  trailer.set('x-trailer', 'tv');
  trailer.set('x-trailer-bin', Buffer.from([0, 1, 2, 255]));
  return { code: Number(code), details: md.get('x-details-bin')[0]?.toString() ?? String(md.get('x-details')[0] ?? ''), metadata: trailer };
}

export interface EchoServer {
  address: string;
  server: grpc.Server;
  close(): Promise<void>;
}

/** `x-delay-ms` delays the unary answer; `x-status` and `x-details` (or `x-details-bin`, UTF-8) make the call fail with them. */
export async function startEchoServer(): Promise<EchoServer> {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const delay = Number(call.metadata.get('x-delay-ms')[0] ?? 0);
      const answer = (): void => {
        call.sendMetadata(echoMetadata(call.metadata));
        const st = askedStatus(call.metadata);
        if (st !== null) {
          cb(st);
          return;
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'ok');
        // What the call's deadline (from grpc-timeout) leaves, in ms at the answer; '' = no deadline.
        const dl = call.getDeadline();
        const at = dl instanceof Date ? dl.getTime() : dl;
        trailer.set('x-deadline-left-ms', Number.isFinite(at) ? String(at - Date.now()) : '');
        cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      call.sendMetadata(echoMetadata(call.metadata));
      const n = call.request.readUInt32BE(0);
      for (let i = 0; i < n; i++) call.write(Buffer.from(`msg ${i}`));
      const st = askedStatus(call.metadata);
      if (st !== null) call.emit('error', st);
      else call.end();
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (b: Buffer) => parts.push(b));
      call.on('end', () => cb(null, Buffer.from(`${parts.length}:${Buffer.concat(parts).length}`)));
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.sendMetadata(echoMetadata(call.metadata));
      call.on('data', (b: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), b])));
      call.on('end', () => call.end());
    },
  });
  return { ...(await listenLocal(server)), server };
}

/** Binds `server` (plaintext) on 127.0.0.1, port 0; close() shuts it down gracefully. */
export async function listenLocal(server: grpc.Server): Promise<{ address: string; close(): Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err !== null ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** What a listener carrying gRPC sets: the strict engine, HTTP/1 or HTTP/2 by what the client speaks. */
export const GRPC_LISTENER = { engine: 'strict', protocol: 'auto' } as const;

/** One gRPC message on the wire: uncompressed flag, 4-byte length, the bytes (for servers and clients that speak gRPC by hand). */
export function grpcFrame(message: Buffer | string): Buffer {
  const body = Buffer.from(message);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** A sidecar config: one `auto` listener on the strict engine routing /test.Echo/ to an `http2` cluster at `upstream`; `more` is merged into the route, cluster and listener. */
export function grpcSidecarConfig(
  upstream: string,
  more: { route?: Record<string, unknown>; cluster?: Record<string, unknown>; listener?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const route = { match: { path_prefix: '/test.Echo/' }, cluster: 'grpc', ...more.route };
  const cluster = { name: 'grpc', protocol: 'http2', endpoints: [{ address: upstream }], ...more.cluster };
  return config([route], [cluster], { listener: { ...GRPC_LISTENER, ...more.listener } });
}

/** Everything a server stream delivered: its initial metadata (null when none came), the messages as text, and the status it ended with. */
export async function readServerStream(
  call: grpc.ClientReadableStream<Buffer>,
): Promise<{ headers: grpc.Metadata | null; messages: string[]; status: grpc.StatusObject }> {
  let headers: grpc.Metadata | null = null;
  const messages: string[] = [];
  call.on('metadata', (m: grpc.Metadata) => (headers = m));
  call.on('data', (b: Buffer) => messages.push(b.toString()));
  call.on('error', () => {}); // a failing stream ends with its status as well
  const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return { headers, messages, status };
}

/** The echo server behind a sidecar (grpcSidecarConfig, `more` merged in) and a client on its listener, all closed by closeAll(). */
export async function startEchoThroughSidecar(
  more: Parameters<typeof grpcSidecarConfig>[1] = {},
): Promise<{ up: EchoServer; sc: Sidecar; client: EchoClient }> {
  const up = await startEchoServer();
  track(up);
  const sc = await startSidecar(grpcSidecarConfig(up.address, more));
  const client = echoClient(`127.0.0.1:${sc.port()}`);
  track({ close: () => Promise.resolve(client.close()) });
  return { up, sc, client };
}

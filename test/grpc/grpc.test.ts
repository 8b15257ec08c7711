// gRPC through one sidecar (issue 14): a grpc-js client on an HTTP/2 listener, a grpc-js server
// behind an `http2` cluster. Unary and streaming calls, metadata (text and -bin) both ways, status
// codes, details and trailing metadata passed exactly.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';
import { echoClient, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

interface UnaryResult {
  err: grpc.ServiceError | null;
  res: Buffer | undefined;
  headers: grpc.Metadata | null;
  status: grpc.StatusObject | null;
}

function unary(c: EchoClient, req: Buffer, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | null = null;
    let status: grpc.StatusObject | null = null;
    let err: grpc.ServiceError | null = null;
    let res: Buffer | undefined;
    let left = 2;
    const done = (): void => {
      if (--left === 0) resolve({ err, res, headers, status });
    };
    const call = c.unary(req, md, opts, (e, r) => {
      err = e;
      res = r;
      done();
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      done();
    });
  });
}

export function grpcSidecarConfig(
  upstream: string,
  more: { route?: Record<string, unknown>; cluster?: Record<string, unknown>; listener?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    node: { workers: 1, drain_timeout_ms: 2000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        engine: 'strict',
        protocol: 'auto',
        routes: [{ match: { path_prefix: '/test.Echo/' }, cluster: 'grpc', ...more.route }],
        ...more.listener,
      },
    ],
    clusters: [{ name: 'grpc', protocol: 'http2', endpoints: [{ address: upstream }], ...more.cluster }],
  };
}

describe('gRPC through the sidecar', () => {
  let up: EchoServer;
  let sc: Sidecar;
  let client: EchoClient;
  beforeAll(async () => {
    up = await startEchoServer();
    track(up);
    sc = await startSidecar(grpcSidecarConfig(up.address));
    client = echoClient(`127.0.0.1:${sc.port()}`);
    track({ close: () => Promise.resolve(client.close()) });
  }, 60_000);
  afterAll(closeAll);

  it('unary: message, metadata (text and -bin) both ways, trailing metadata', async () => {
    const md = new grpc.Metadata();
    md.set('x-text', 'hello world');
    md.set('x-blob-bin', Buffer.from([0, 255, 10, 13, 128]));
    const r = await unary(client, Buffer.from('ping'), md);
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('echo:ping');
    expect(r.headers?.get('x-text')).toEqual(['hello world']);
    expect(r.headers?.get('x-blob-bin')).toEqual([Buffer.from([0, 255, 10, 13, 128])]);
    expect(r.status?.code).toBe(grpc.status.OK);
    expect(r.status?.metadata.get('x-trailer')).toEqual(['ok']);
  });

  it('status code, details and trailing metadata pass exactly', async () => {
    const md = new grpc.Metadata();
    md.set('x-status', String(grpc.status.NOT_FOUND));
    md.set('x-details-bin', Buffer.from('no such thing: 100% «missing»\n'));
    const r = await unary(client, Buffer.from('x'), md);
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe('no such thing: 100% «missing»\n');
    expect(r.status?.metadata.get('x-trailer')).toEqual(['tv']);
    expect(r.status?.metadata.get('x-trailer-bin')).toEqual([Buffer.from([0, 1, 2, 255])]);
    expect(r.status?.metadata.get('x-outrigger-error')).toEqual([]);
  });

  it('server streaming: every message, then the status', async () => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(50);
    const md = new grpc.Metadata();
    md.set('x-s', 'v');
    const call = client.serverStream(n, md);
    const got: string[] = [];
    let headers: grpc.Metadata | null = null;
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('data', (b: Buffer) => got.push(b.toString()));
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `msg ${i}`));
    expect(headers!.get('x-s')).toEqual(['v']);
  });

  it('server streaming that ends with an error status after messages', async () => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(3);
    const md = new grpc.Metadata();
    md.set('x-status', String(grpc.status.ABORTED));
    md.set('x-details', 'stopped');
    const call = client.serverStream(n, md);
    const got: string[] = [];
    call.on('data', (b: Buffer) => got.push(b.toString()));
    call.on('error', () => {});
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(got).toEqual(['msg 0', 'msg 1', 'msg 2']);
    expect(status.code).toBe(grpc.status.ABORTED);
    expect(status.details).toBe('stopped');
    expect(status.metadata.get('x-trailer')).toEqual(['tv']);
  });

  it('client streaming: many messages, one answer', async () => {
    const res = await new Promise<Buffer>((resolve, reject) => {
      const call = client.clientStream(new grpc.Metadata(), {}, (e, r) => (e !== null ? reject(e) : resolve(r!)));
      for (let i = 0; i < 100; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(res.toString()).toBe('100:100000');
  });

  it('bidi: answers interleave with requests', async () => {
    const md = new grpc.Metadata();
    md.set('x-b-bin', Buffer.from([9, 9]));
    const call = client.bidi(md);
    const headers = await new Promise<grpc.Metadata>((resolve) => {
      call.on('metadata', resolve);
      call.write(Buffer.from('first'));
    });
    expect(headers.get('x-b-bin')).toEqual([Buffer.from([9, 9])]);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const next = new Promise<Buffer>((resolve) => call.once('data', resolve));
      if (i > 0) call.write(Buffer.from(`m${i}`));
      got.push((await next).toString());
    }
    call.end();
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(got).toEqual(['re:first', 're:m1', 're:m2', 're:m3', 're:m4']);
    expect(status.code).toBe(grpc.status.OK);
  });
});

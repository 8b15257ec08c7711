// gRPC through one sidecar (issue 14): a grpc-js client on an HTTP/2 listener, a grpc-js server
// behind an `http2` cluster. Unary and streaming calls, metadata (text and -bin) both ways, status
// codes, details and trailing metadata passed exactly.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/sidecar.js';
import { grpcSidecarConfig, readServerStream, startEchoThroughSidecar, type EchoClient } from './grpc_fixture.js';

// Kept for files that import the config from here; it lives in grpc_fixture.ts.
export { grpcSidecarConfig };

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

describe('gRPC through the sidecar', () => {
  let client: EchoClient;
  beforeAll(async () => {
    ({ client } = await startEchoThroughSidecar());
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
    const { headers, messages, status } = await readServerStream(client.serverStream(n, md));
    expect(status.code).toBe(grpc.status.OK);
    expect(messages).toEqual(Array.from({ length: 50 }, (_, i) => `msg ${i}`));
    expect(headers?.get('x-s')).toEqual(['v']);
  });

  it('server streaming that ends with an error status after messages', async () => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(3);
    const md = new grpc.Metadata();
    md.set('x-status', String(grpc.status.ABORTED));
    md.set('x-details', 'stopped');
    const { messages, status } = await readServerStream(client.serverStream(n, md));
    expect(messages).toEqual(['msg 0', 'msg 1', 'msg 2']);
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

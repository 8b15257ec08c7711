// x_forwarded_for: `append` (default) adds the client's address; `off` leaves the header as sent.
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, proxyConfig, startSidecar, startUpstream } from '../helpers/sidecar.js';

afterAll(closeAll);

async function xffSeenUpstream(mode: 'append' | 'off' | null, sent: string | null): Promise<string | undefined> {
  const up = await startUpstream();
  const cfg = proxyConfig([up.address]);
  const listener = (cfg['listeners'] as Array<Record<string, unknown>>)[0]!;
  if (mode !== null) listener['x_forwarded_for'] = mode;
  const sc = await startSidecar(cfg, { workers: 1 });
  const headers: Record<string, string> = sent === null ? {} : { 'x-forwarded-for': sent };
  const res = await fetch(sc.url('/xff'), { headers });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  const got = up.requests.at(-1)!.headers['x-forwarded-for'];
  return Array.isArray(got) ? got.join(', ') : got;
}

describe('x_forwarded_for', () => {
  it('appends the client address by default', async () => {
    expect(await xffSeenUpstream(null, null)).toBe('127.0.0.1');
    expect(await xffSeenUpstream('append', '10.1.2.3')).toBe('10.1.2.3, 127.0.0.1');
  });

  it('off: forwards the header exactly as sent, and adds none when absent', async () => {
    expect(await xffSeenUpstream('off', '10.1.2.3')).toBe('10.1.2.3');
    expect(await xffSeenUpstream('off', null)).toBeUndefined();
  });
});

// What the protocol sections' tests (gRPC, WebSocket, TCP) share: a section's sidecar files
// compiled by outrigger's own loader, checked for what every section's files must say and for the
// section's own protocol lines; the parser of its load tool's output against a captured real run;
// configs and runs for a rendering test, and the test of a table without the peer proxy; a real
// run's latencies in order; and the section's node upstream started from dist/ around a file's tests.

import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidecarYaml, startNodeUpstream, type SidecarProtocol } from '../../bench/lib/section.js';
import type { Started } from '../../bench/lib/proc.js';
import type { FailedRun, SectionResults, SectionRun } from '../../bench/lib/section.js';
import { MTLS_CLIENT_ID, MTLS_SERVER_ID } from '../../bench/lib/targets.js';
import { parseConfigText, type LoadResult } from '../../src/config/load.js';

type Snapshot = Extract<LoadResult, { ok: true }>['snapshot'];

/** A section's sidecars: the one sidecar, and the mTLS pair's server and client. */
interface CompiledSidecars {
  readonly one: Snapshot;
  readonly server: Snapshot;
  readonly client: Snapshot;
}

const OPTS = { version: 1, availableParallelism: 2, enableTestHooks: false };

function compiled(yaml: string): Snapshot {
  const r = parseConfigText(yaml, OPTS);
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.snapshot;
}

/**
 * The section's three sidecar files as its run writes them, compiled: the one sidecar (4001 →
 * upstream 4000), the server sidecar (4001 → 4000) and the client sidecar (4002 → 4001). The CA
 * dir has a space and quotes, as a temp dir's name may.
 */
function compiledSidecars(protocol: SidecarProtocol): CompiledSidecars {
  const caDir = '/tmp/outrigger "bench"/ca';
  return {
    one: compiled(sidecarYaml(protocol, { role: 'one sidecar', listenPort: 4001, clusterPort: 4000 })),
    server: compiled(
      sidecarYaml(protocol, { role: 'server', mtls: { identity: MTLS_SERVER_ID, caDir }, listenPort: 4001, listenerMtls: true, clusterPort: 4000 }),
    ),
    client: compiled(
      sidecarYaml(protocol, {
        role: 'client',
        mtls: { identity: MTLS_CLIENT_ID, caDir },
        listenPort: 4002,
        clusterPort: 4001,
        clusterIdentity: MTLS_SERVER_ID,
      }),
    ),
  };
}

/**
 * The tests of a section's sidecar files: what every section's say (1 worker each, chained by
 * port; the server requires a client certificate, the client's cluster must meet the server's
 * identity), and `protocol` (`carries`) on each of the three.
 */
export function describeSidecars(section: string, protocol: SidecarProtocol, carries: string, expectProtocol: (c: Snapshot) => void): void {
  describe(`sidecar configs of the ${section} section`, () => {
    it('one sidecar and the mTLS pair: 1 worker each, chained by port; the server requires a client certificate, the client meets its identity', () => {
      expectSidecarChain(compiledSidecars(protocol));
    });

    it(`every sidecar ${carries}`, () => {
      const s = compiledSidecars(protocol);
      for (const c of [s.one, s.server, s.client]) expectProtocol(c);
    });
  });
}

/** What every section's sidecars compile to: 1 worker each; the server requires a client certificate; the client's cluster must meet the server's identity. */
function expectSidecarChain(s: CompiledSidecars): void {
  for (const c of [s.one, s.server, s.client]) expect(c.node.workers).toBe(1);
  expect(s.one.listeners[0]).toMatchObject({ tls: null, port: 4001 });
  expect(s.one.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4000']);
  expect(s.server.node.identity).toBe(MTLS_SERVER_ID);
  expect(s.server.listeners[0]).toMatchObject({ tls: 'mtls', port: 4001 });
  expect(s.server.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4000']);
  expect(s.client.node.identity).toBe(MTLS_CLIENT_ID);
  expect(s.client.listeners[0]).toMatchObject({ tls: null, port: 4002 });
  expect(s.client.clusters[0]?.tls).toEqual({ identities: [MTLS_SERVER_ID] });
  expect(s.client.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:4001']);
}

/**
 * The tests of a section's parser of its load tool's output: a real run captured in
 * fixtures/`file` parses to `expected`; `broken` output (the tool's error, no summary) throws
 * `error`, naming the tool.
 */
export function describeParser<T>(tool: string, parse: (text: string) => T, file: string, expected: T, broken: string, error: RegExp): void {
  describe(`${tool}'s output`, () => {
    it('parses a real captured run', () => {
      expect(parse(readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8'))).toEqual(expected);
    });

    it('fails clearly on output without its summary', () => {
      expect(() => parse(broken)).toThrow(error);
    });
  });
}

/** A load client's latencies from a real run: some, and p50 ≤ p99 ≤ max. */
export function expectLatencies(r: { readonly p50: number; readonly p99: number; readonly max: number }): void {
  expect(r.p50).toBeGreaterThan(0);
  expect(r.p99).toBeGreaterThanOrEqual(r.p50);
  expect(r.max).toBeGreaterThanOrEqual(r.p99);
}

/** A rendering test's configs: each by name, described by its name (the table only reads the names). */
export const configsNamed = (...names: string[]): { name: string; description: string }[] => names.map((name) => ({ name, description: `what ${name} is` }));

/**
 * A rendering test's runs of one config, one per round (1, 2, …): `make(config, round, ...args)`
 * with each round's args, so that a table reads as a config and its rounds' figures.
 */
export function overRounds<A extends unknown[], R>(make: (config: string, round: number, ...args: A) => R, config: string, ...rounds: A[]): R[] {
  return rounds.map((args, i) => make(config, i + 1, ...args));
}

/** What a section's render gets besides its own fields and runs: the configs, those skipped, the failed runs. */
type RenderBase = Omit<SectionResults<SectionRun>, 'runs'> & { readonly failed: readonly FailedRun[] };

/** A section's peer proxy (`peer`, run by `tool`) and the outrigger config measured against it (`ours`). */
interface PeerOf {
  readonly peer: string;
  readonly tool: string;
  readonly ours: string;
}

/**
 * The test that a section renders when its peer proxy is not installed: `render` gets the configs
 * direct and `ours`, the peer skipped and no failed run; the table has `row` (ours, its ratio
 * columns empty) and the skip is listed under it.
 */
export function itRendersWithoutPeer({ peer, tool, ours }: PeerOf, render: (base: RenderBase) => string, row: string | RegExp): void {
  it(`renders without ${peer} (not installed): the ratios to it stay empty`, () => {
    const md = render({ configs: configsNamed('direct', ours), skipped: [{ name: peer, reason: `${tool} not installed` }], failed: [] });
    expect(md).toMatch(row);
    expect(md).toContain(`- skipped ${peer}: ${tool} not installed`);
  });
}

/** The section's node upstream (dist/bench/upstream/`script`), up for the enclosing describe's tests; `port` once it is. */
export function nodeUpstreamAround(name: string, script: string): { readonly port: number } {
  let upstream: { proc: Started; port: number } | undefined;
  beforeAll(async () => {
    upstream = await startNodeUpstream('.', name, script);
  });
  afterAll(async () => {
    await upstream?.proc.stop();
  });
  return {
    get port(): number {
      if (upstream === undefined) throw new Error(`${name} has not started`);
      return upstream.port;
    },
  };
}

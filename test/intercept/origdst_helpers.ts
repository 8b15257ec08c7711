// Helpers of the original-destination tests: apps that run as an ordinary user inside a host
// namespace (so its iptables rules intercept them), small servers on a host, the sidecar's
// /stats read from inside its namespace, and the minimal REDIRECT rules the tests install.

import { expect } from 'vitest';
import { createLan, type Host, type Netns } from '../helpers/netns.js';

/** The uid the apps run as: anything but the sidecar's (root), so their connections are intercepted. */
export const APP_UID = 1000;

/** `setpriv` prefix: the command runs as the app user. */
const AS_APP = ['--reuid', String(APP_UID), '--regid', String(APP_UID), '--clear-groups'];

export interface HttpAnswer {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

/** An HTTP GET by the app user with curl (`host`: the Host header, when not the URL's; `curlArgs`: e.g. --http2-prior-knowledge). */
export async function appGet(ns: Netns, url: string, host?: string, curlArgs: readonly string[] = []): Promise<HttpAnswer> {
  const args = ['-sS', '-m', '10', '-i', ...curlArgs, ...(host === undefined ? [] : ['-H', `host: ${host}`]), url];
  const r = await ns.try('setpriv', [...AS_APP, 'curl', ...args]);
  if (r.code !== 0) throw new Error(`curl ${url} failed (${r.code}): ${r.stderr}`);
  const [head = '', ...rest] = r.stdout.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

/** The app user's GET of `url` (as appGet), answered 200: its JSON body (startServers' apps answer `{app, port, path, host}`). */
export async function appJson<T = Record<string, unknown>>(ns: Netns, url: string, host?: string, curlArgs: readonly string[] = []): Promise<T> {
  const r = await appGet(ns, url, host, curlArgs);
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as T;
}

/** The app user opens a TCP connection, sends `text`, half-closes, and resolves with every byte it got back before the close. */
export async function appTcp(ns: Netns, address: string, port: number, text: string): Promise<string> {
  const script = `
const s = require('node:net').connect(${port}, ${JSON.stringify(address)});
let got = '';
s.on('connect', () => s.end(${JSON.stringify(text)}));
s.on('data', (d) => (got += d));
s.on('error', () => {});
s.on('close', () => process.stdout.write(JSON.stringify(got), () => process.exit(0)));
setTimeout(() => { process.stdout.write(JSON.stringify('timeout:' + got)); process.exit(0); }, 8000);`;
  const r = await ns.exec('setpriv', [...AS_APP, process.execPath, '-e', script]);
  return JSON.parse(r.stdout) as string;
}

/**
 * Starts, inside `host`, HTTP servers that answer `{app, port, path, host}` and TCP servers that
 * answer each chunk with `<name>:<chunk>` (and `<name> says hello` on connect when `greet`).
 * `bind`: the address they listen on. Resolves once all listen.
 */
export async function startServers(
  host: Host | Netns,
  bind: string,
  http: Readonly<Record<number, string>>,
  tcp: Readonly<Record<number, { name: string; greet?: boolean }>> = {},
): Promise<void> {
  const script = `
const net = require('node:net'), http = require('node:http');
const [bind, httpSpec, tcpSpec] = process.argv.slice(1);
let pending = 0;
const up = () => { if (--pending === 0) console.log('all listening'); };
for (const [port, app] of Object.entries(JSON.parse(httpSpec))) {
  pending++;
  http.createServer((req, res) => res.end(JSON.stringify({ app, port: Number(port), path: req.url, host: req.headers.host }))).listen(Number(port), bind, up);
}
for (const [port, t] of Object.entries(JSON.parse(tcpSpec))) {
  pending++;
  net.createServer((s) => {
    if (t.greet) s.write(t.name + ' says hello');
    s.on('data', (d) => s.write(t.name + ':' + d));
    s.on('end', () => s.end());
    s.on('error', () => {});
  }).listen(Number(port), bind, up);
}`;
  const child = host.spawn(process.execPath, ['-e', script, bind, JSON.stringify(http), JSON.stringify(tcp)]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('all listening')) resolve();
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`servers in ${host.name} exited (${code}): ${out}`)));
  });
}

/** Appends nat rules (each an iptables argument list after `-t nat -A`). */
export async function natRules(host: Netns, rules: readonly (readonly string[])[]): Promise<void> {
  for (const r of rules) await host.exec('iptables', ['-t', 'nat', '-A', ...r]);
}

/** Loopback traffic is never redirected (the sidecar's own admin API, the local apps): the first rule. */
export const KEEP_LOOPBACK = ['OUTPUT', '-o', 'lo', '-j', 'RETURN'];

/** The app user's outbound TCP (not the sidecar's: root) to `port`, the sidecar's outbound listener. */
export function redirectApp(port: number, match: readonly string[] = []): string[] {
  return ['OUTPUT', '-p', 'tcp', ...match, '-m', 'owner', '!', '--uid-owner', '0', '-j', 'REDIRECT', '--to-ports', String(port)];
}

/** The admin API of a sidecar in a namespace: its URL and bearer token. */
export interface AdminAccess {
  readonly admin: string;
  readonly token: string;
}

/** GET `path` of the sidecar's admin API from inside its namespace (it listens on the namespace's loopback). */
export async function adminGet(ns: Netns, sc: AdminAccess, path: string): Promise<unknown> {
  const r = await ns.exec('curl', ['-sS', '-m', '5', '-H', `authorization: Bearer ${sc.token}`, `${sc.admin}${path}`]);
  return path === '/metrics' ? r.stdout : (JSON.parse(r.stdout) as unknown);
}

/** `/stats` → original_destination's by_kind of one listener ({} before any connection). */
export async function destinationKinds(ns: Netns, sc: AdminAccess, listener: string): Promise<Record<string, number>> {
  const stats = (await adminGet(ns, sc, '/stats')) as { original_destination?: Array<{ listener: string; by_kind: Record<string, number> }> };
  return stats.original_destination?.find((r) => r.listener === listener)?.by_kind ?? {};
}

/** Hosts on a new LAN 10.<octet>.0.0/24 (and its IPv6 twin), the i-th of `tags` at index i + 1. */
export async function lanHosts<Tags extends string[]>(octet: number, ...tags: Tags): Promise<{ [K in keyof Tags]: Host }> {
  const lan = await createLan(octet);
  const hosts: Host[] = [];
  for (const [i, tag] of tags.entries()) hosts.push(await lan.addHost(tag, i + 1));
  return hosts as { [K in keyof Tags]: Host };
}

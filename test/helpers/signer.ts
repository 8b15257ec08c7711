// Signer mode for tests: `outrigger ca serve` as a real child process, token files, the
// `tls: {signer: ...}` source for sidecar configs, CSRs and the outcome of a signing request, a
// fake signer that poses as the real one, and a scan of a process's memory (/proc/PID/mem) for a
// byte string — to show a sidecar never holds the root key.

import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { signLeaf, type Ca } from '../../src/tls/ca.js';
import { buildCsr, parseCsr } from '../../src/tls/csr.js';
import { SignerError } from '../../src/tls/signer_client.js';
import { generateKeySync } from '../../src/tls/x509.js';
import { tempDir, track } from './live.js';
import type { TlsSource } from './mtls.js';
import { spawnCli, type LogEntry } from './process.js';

export interface SignerProcess {
  readonly address: string;
  readonly port: number;
  readonly identity: string;
  /** Its JSON log lines so far. */
  logs(): LogEntry[];
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

/** `outrigger ca serve --dir CA --address ADDRESS --tokens FILE`; resolves on its ready line (stopped by closeAll). */
export async function startSignerProcess(caDir: string, tokensFile: string, address = '127.0.0.1:0', extra: string[] = []): Promise<SignerProcess> {
  const p = spawnCli(['ca', 'serve', '--dir', caDir, '--address', address, '--tokens', tokensFile, ...extra]);
  const ready = await p.waitForLog((e) => e.msg === 'signer ready', 15_000);
  const addr = String(ready['address']);
  return {
    address: addr,
    port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
    identity: String(ready['identity']),
    logs: () => p.entries(),
    stop: async () => void (await p.stop()),
  };
}

export type TokenEntries = ReadonlyArray<{ token: string; identities: readonly string[] }>;

/** `outrigger ca serve` for `ca` on a tokens file of `entries` in a temp dir (kept, to start it again on the same address). */
export async function startSignerWithTokens(ca: Ca, entries: TokenEntries): Promise<{ signer: SignerProcess; tokensFile: string }> {
  const tokensFile = writeTokensFile(path.join(tempDir(), 'tokens.yaml'), entries);
  return { signer: await startSignerProcess(ca.dir, tokensFile), tokensFile };
}

/** A tokens file for the signer (mode 0600): each token bound to identity patterns. */
export function writeTokensFile(file: string, entries: TokenEntries): string {
  writeFileSync(file, `tokens:\n${entries.map((e) => `  - token: ${e.token}\n    identities: [${e.identities.join(', ')}]\n`).join('')}`, { mode: 0o600 });
  return file;
}

/** A sidecar's token file (mode 0600). */
export function writeTokenFile(file: string, token: string): string {
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

/** `tls: {signer: {...}}` for a sidecar config. */
export function signerSource(signer: SignerProcess, ca: Ca, tokenFile: string, ttlHours?: number): TlsSource {
  return {
    signer: {
      address: signer.address,
      ca_bundle: path.join(ca.dir, 'ca.pem'),
      token_file: tokenFile,
      ...(ttlHours !== undefined ? { ttl_hours: ttlHours } : {}),
    },
  };
}

/** A fresh EC P-256 key (PKCS#8 PEM) and a CSR for `identity` signed with it. */
export function csrFor(identity: string): { csrPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeySync('ec-p256');
  return { csrPem: buildCsr(privateKey, publicKey, identity), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** How a signing request ended: `signed`, `<kind> <status>` of a SignerError (`refused 403`), or `error <message>`. */
export async function signOutcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'signed';
  } catch (e) {
    return e instanceof SignerError ? `${e.kind} ${e.status ?? ''}`.trim() : `error ${(e as Error).message}`;
  }
}

/** What a fake signer answers to a CSR; `identity` defaults to the CSR's, `serial` to 01. */
export interface FakeAnswer {
  readonly certificate: string;
  readonly trust_bundle: string;
  readonly identity?: string;
  readonly serial?: string;
}

/**
 * A fake signer on 127.0.0.1:`port` (default: any) presenting a genuine certificate from `ca` for
 * the signer's `identity` (as a thief would hold one). It records each request's Authorization
 * header in `captured` and answers each CSR with `answer`. Stopped by closeAll().
 */
export async function startFakeSigner(o: {
  readonly ca: Ca;
  readonly identity: string;
  readonly answer: (csrPem: string) => FakeAnswer;
  readonly port?: number | undefined;
}): Promise<{ address: string; captured: string[] }> {
  const k = csrFor(o.identity);
  const cert = signLeaf(o.ca, { identity: o.identity, publicKey: parseCsr(k.csrPem).publicKey, ttlHours: 1 });
  const captured: string[] = [];
  const server = https.createServer({ cert: cert.certPem, key: k.keyPem }, (req, res) => {
    captured.push(String(req.headers.authorization ?? '(none)'));
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const csrPem = (JSON.parse(body) as { csr: string }).csr;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ identity: parseCsr(csrPem).identity, serial: '01', ...o.answer(csrPem) }));
    });
  });
  await new Promise<void>((r) => server.listen(o.port ?? 0, '127.0.0.1', r));
  track({
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, captured };
}

/** Every regular file under `dir` (recursively), with its content. */
export function filesUnder(dir: string): Array<{ file: string; text: Buffer }> {
  const out: Array<{ file: string; text: Buffer }> = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push({ file: p, text: readFileSync(p) });
  }
  return out;
}

/**
 * Which of `needles` occur anywhere in the readable memory of process `pid` (all its threads:
 * main, workers, pool). Reads /proc/PID/mem region by region; regions that cannot be read are
 * skipped. Needles are found across chunk boundaries.
 */
export function scanProcessMemory(pid: number, needles: readonly Buffer[]): { found: boolean[]; bytes: number } {
  const found = needles.map(() => false);
  const overlap = Math.max(...needles.map((n) => n.length)) - 1;
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const CHUNK = 8 * 1024 * 1024;
  const buf = Buffer.allocUnsafe(CHUNK + overlap);
  let bytes = 0;
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/.exec(line);
      if (m === null || !m[3]!.startsWith('r')) continue;
      if (/\[(vvar|vsyscall|vdso)\]/.test(line)) continue;
      const start = Number.parseInt(m[1]!, 16);
      const end = Number.parseInt(m[2]!, 16);
      let carry = 0;
      for (let pos = start; pos < end; pos += CHUNK) {
        const len = Math.min(CHUNK, end - pos);
        let n: number;
        try {
          n = readSync(fd, buf, carry, len, pos);
        } catch {
          break;
        }
        bytes += n;
        const view = buf.subarray(0, carry + n);
        needles.forEach((needle, i) => {
          if (!found[i] && view.indexOf(needle) >= 0) found[i] = true;
        });
        carry = Math.min(overlap, view.length);
        view.copy(buf, 0, view.length - carry);
        if (n < len) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { found, bytes };
}

// Signer mode for tests: `outrigger ca serve` as a real child process, token files, the
// `tls: {signer: ...}` source for sidecar configs, and a scan of a process's memory
// (/proc/PID/mem) for a byte string — to show a sidecar never holds the root key.

import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Ca } from '../../src/tls/ca.js';
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

/** A tokens file for the signer (mode 0600): each token bound to identity patterns. */
export function writeTokensFile(file: string, entries: ReadonlyArray<{ token: string; identities: readonly string[] }>): string {
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

// `npm start`: the real mesh shape on this machine. A CA signs SPIFFE identities through the
// signing service (`outrigger ca serve`, the only process that reads the root key); two outrigger
// sidecars make their own keys, get them signed (bootstrap token first, their certificate for
// renewals) and talk mutual TLS over pooled connections:
//
//   demo client ──http──▶ web sidecar :15001 ══mTLS══▶ api sidecar :15006 ──http──▶ hello-1, hello-2
//                         (admin :15000)                (admin :15100, authorization: only web, GET/POST /v1/*)
//                              └──── CSR ────▶ signer :15200 ◀──── CSR ────┘
//
// It prints what to curl. Ctrl-C drains both sidecars, stops the signer and everything else.
//
// The ports above are the defaults; each can be moved with an environment variable (one is
// taken, or the smoke test runs it): OUTRIGGER_DEMO_WEB_PORT (15001),
// OUTRIGGER_DEMO_WEB_ADMIN_PORT (15000), OUTRIGGER_DEMO_API_PORT (15006),
// OUTRIGGER_DEMO_API_ADMIN_PORT (15100), OUTRIGGER_DEMO_SIGNER_PORT (15200),
// OUTRIGGER_DEMO_APP_PORTS (18081,18082); and its directory with OUTRIGGER_DEMO_DIR
// (.outrigger-demo in the repository).

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCa } from '../src/tls/ca.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = path.resolve(process.env['OUTRIGGER_DEMO_DIR'] ?? path.join(root, '.outrigger-demo'));
const cli = path.join(root, 'dist/src/cli/main.js');
const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;

/** The ports in environment variable `name` (one, or several separated by commas), or `fallback`; anything else stops the demo. */
function portsFromEnv(name: string, fallback: readonly number[]): number[] {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return [...fallback];
  return v.split(',').map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      process.stderr.write(`demo: ${name}=${v}: ${p.trim()} is not a port (1-65535)\n`);
      process.exit(2);
    }
    return n;
  });
}
const portFromEnv = (name: string, fallback: number): number => portsFromEnv(name, [fallback])[0] as number;

const APP_PORTS = portsFromEnv('OUTRIGGER_DEMO_APP_PORTS', [18081, 18082]);
const WEB_PORT = portFromEnv('OUTRIGGER_DEMO_WEB_PORT', 15001);
const WEB_ADMIN_PORT = portFromEnv('OUTRIGGER_DEMO_WEB_ADMIN_PORT', 15000);
const API_PORT = portFromEnv('OUTRIGGER_DEMO_API_PORT', 15006);
const API_ADMIN_PORT = portFromEnv('OUTRIGGER_DEMO_API_ADMIN_PORT', 15100);
const SIGNER = `127.0.0.1:${portFromEnv('OUTRIGGER_DEMO_SIGNER_PORT', 15200)}`;

/** Writes a secret file readable by this user only (the signer and sidecars refuse anything looser). */
function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** Child processes still running: stopped if the demo itself fails. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGTERM');
});

/** `outrigger ca serve`: the signing service; resolves once it listens. */
function startSigner(caDir: string, tokensFile: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'ca', 'serve', '--dir', caDir, '--address', SIGNER, '--tokens', tokensFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim() !== '') process.stdout.write(`[signer] ${line}\n`);
      if (d.toString().includes('"msg":"signer ready"')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`the signer exited with code ${code} before it was ready`)));
  });
}

function demoApp(name: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify(
        {
          service: name,
          method: req.method,
          url: req.url,
          caller: req.headers['x-forwarded-client-cert'] ?? null,
          request_id: req.headers['x-request-id'],
          body_bytes: bytes,
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${body}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`demo app ${name} cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** Starts a sidecar; resolves once it is ready, with the admin token file its ready line names. */
function startSidecar(name: string, config: string): Promise<{ child: ChildProcess; tokenFile: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'run', '-c', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim() !== '') process.stdout.write(`[${name}] ${line}\n`);
      buf += d.toString();
      const ready = buf.split('\n').find((l) => l.includes('"msg":"ready"'));
      if (ready !== undefined) {
        try {
          resolve({ child, tokenFile: String((JSON.parse(ready) as { admin_token_file?: unknown }).admin_token_file) });
        } catch {
          // a partial line: wait for the rest
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} sidecar exited with code ${code} before it was ready`)));
  });
}

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  const caDir = path.join(work, 'ca');
  if (!existsSync(path.join(caDir, 'ca.pem'))) await initCa(caDir, TD);
  // Bootstrap tokens, new each run: each one lets its sidecar get exactly its own identity.
  const signerDir = path.join(work, 'signer');
  mkdirSync(signerDir, { recursive: true, mode: 0o700 });
  const token = (): string => randomBytes(24).toString('base64url');
  const webTokenValue = token();
  const apiTokenValue = token();
  const tokensFile = path.join(signerDir, 'tokens.yaml');
  writePrivate(
    tokensFile,
    `# who may get which identity (written by npm start)\ntokens:\n  - token: ${webTokenValue}\n    identities: [${WEB}]\n  - token: ${apiTokenValue}\n    identities: [${API}]\n`,
  );
  writePrivate(path.join(work, 'web.token'), `${webTokenValue}\n`);
  writePrivate(path.join(work, 'api.token'), `${apiTokenValue}\n`);
  const signer = await startSigner(caDir, tokensFile);
  const apps = await Promise.all(APP_PORTS.map((p, i) => demoApp(`hello-${i + 1}`, p)));
  /** Writes `<who>-sidecar.yaml`: identity, admin address and a key from the signer, then `rest` (listeners, clusters). */
  const sidecarConfig = (who: string, side: string, identity: string, adminPort: number, rest: string): string => {
    const file = path.join(work, `${who}-sidecar.yaml`);
    writeFileSync(
      file,
      `# ${side} sidecar (written by npm start). Edit and save: it hot-reloads.
node: {workers: 2, identity: ${identity}}
admin: {address: 127.0.0.1:${adminPort}}
tls: {signer: {address: ${SIGNER}, ca_bundle: ${path.join(caDir, 'ca.pem')}, token_file: ${path.join(work, `${who}.token`)}, ttl_hours: 1}}   # our key, signed by the signer, renewed at 50%
${rest}`,
    );
    return file;
  };

  const apiConfig = sidecarConfig(
    'api',
    'Server-side',
    API,
    API_ADMIN_PORT,
    `listeners:
  - name: inbound
    address: 127.0.0.1:${API_PORT}
    tls: {mode: mtls}                         # client certificate required, verified at the handshake
    authorization:                            # deny unless a rule allows
      - from: [${WEB}]
        paths: [/v1/*]
        methods: [GET, POST]
    routes:
      - match: {path_prefix: /}
        cluster: local-app
clusters:
  - name: local-app
    lb: least_request
    endpoints:
${APP_PORTS.map((p) => `      - {address: 127.0.0.1:${p}}`).join('\n')}
    health_check: {path: /healthz, interval_ms: 2000}
`,
  );
  const webConfig = sidecarConfig(
    'web',
    'Client-side',
    WEB,
    WEB_ADMIN_PORT,
    `listeners:
  - name: outbound
    address: 127.0.0.1:${WEB_PORT}
    routes:
      - match: {path_prefix: /}
        cluster: api
        timeout_ms: 5000
        retries: {attempts: 2, on: [connect-failure, reset, "503"]}
clusters:
  - name: api
    tls: {mode: mtls, identity: ${API}}       # the server must prove this SPIFFE ID
    pool: {connections_per_worker: 8}
    endpoints: [{address: 127.0.0.1:${API_PORT}}]
`,
  );
  const { child: api, tokenFile: apiToken } = await startSidecar('api', apiConfig);
  const { child: web, tokenFile: webToken } = await startSidecar('web', webConfig);
  // Every admin call but /live, /ready and /metrics needs the bearer token each sidecar generated
  // (both configs are in one directory, so they share one token file).
  const auth = (file: string): string => `-H "Authorization: Bearer $(cat ${file})"`;
  process.stdout.write(`
outrigger demo is running: web sidecar ══mTLS══▶ api sidecar ──▶ two demo services.
  try:        curl -s http://127.0.0.1:${WEB_PORT}/v1/hello          (allowed: the app sees the caller's SPIFFE ID)
              curl -si http://127.0.0.1:${WEB_PORT}/admin            (denied by policy: 403 unauthorized)
              curl -sk https://127.0.0.1:${API_PORT}/v1/hello        (no client certificate: refused at the handshake)
  load test:  npx autocannon -c 50 -d 5 http://127.0.0.1:${WEB_PORT}/v1/hello
  signer:     https://${SIGNER} (outrigger ca serve; the only process with ${path.join(caDir, 'ca.key')}); tokens in ${tokensFile}
  admin:      ${webToken === apiToken ? `token file: ${webToken} (both sidecars)` : `token files: ${webToken} (web), ${apiToken} (api)`}
              curl -s ${auth(webToken)} http://127.0.0.1:${WEB_ADMIN_PORT}/certs      (web identity, serial, next rotation)
              curl -s ${auth(webToken)} http://127.0.0.1:${WEB_ADMIN_PORT}/clusters   (pool connections, TLS handshakes)
              curl -s ${auth(apiToken)} http://127.0.0.1:${API_ADMIN_PORT}/stats      (api side: p50/p90/p99 per route)
              curl -s http://127.0.0.1:${WEB_ADMIN_PORT}/metrics                       (no token needed)
  configs:    ${webConfig}
              ${apiConfig}
Ctrl-C stops the demo.
`);
  let left = 2;
  const stop = (): void => {
    web.kill('SIGTERM');
    api.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  for (const child of [web, api]) {
    child.once('exit', (code) => {
      if (code !== 0) process.exitCode = code ?? 1;
      if (--left === 0) {
        for (const a of apps) a.close();
        signer.kill('SIGTERM');
      }
    });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

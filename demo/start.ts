// `npm start`: a real demo on this machine. Starts two instances of a small demo service, an
// outrigger sidecar (2 worker threads) in front of them with least-request load balancing, and
// its admin API; prints what to curl. Ctrl-C drains the sidecar and stops everything.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = path.join(root, '.outrigger-demo');
const cli = path.join(root, 'dist/src/cli/main.js');

const OUTBOUND = 15001;
const ADMIN = 15000;
const APP_PORTS = [18081, 18082];

function demoApp(name: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify(
        {
          service: name,
          method: req.method,
          url: req.url,
          request_id: req.headers['x-request-id'],
          forwarded_for: req.headers['x-forwarded-for'],
          body_bytes: Buffer.concat(chunks).length,
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${body}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`demo app ${name} cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`)),
    );
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function startSidecar(config: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'run', '-c', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      process.stdout.write(d);
      buf += d.toString();
      if (buf.includes('"msg":"ready"')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`sidecar exited with code ${code} before it was ready`)));
  });
}

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  const apps = await Promise.all(APP_PORTS.map((p, i) => demoApp(`hello-${i + 1}`, p)));
  const config = path.join(work, 'sidecar.yaml');
  writeFileSync(
    config,
    `# Written by npm start (demo/start.ts). Edit and save: the sidecar reloads it.
node: {workers: 2}
admin: {address: 127.0.0.1:${ADMIN}}
listeners:
  - name: outbound
    address: 127.0.0.1:${OUTBOUND}
    routes:
      - match: {path_prefix: /}
        cluster: hello
        timeout_ms: 5000
clusters:
  - name: hello
    lb: least_request
    endpoints:
${APP_PORTS.map((p) => `      - {address: 127.0.0.1:${p}}`).join('\n')}
`,
  );
  const sidecar = await startSidecar(config);
  process.stdout.write(`
outrigger demo is running.
  try:       curl -s http://127.0.0.1:${OUTBOUND}/hello
  load test: npx autocannon -c 50 -d 5 http://127.0.0.1:${OUTBOUND}/
  admin:     curl -s http://127.0.0.1:${ADMIN}/clusters
             curl -s http://127.0.0.1:${ADMIN}/stats
             curl -s http://127.0.0.1:${ADMIN}/metrics
  config:    ${config} (edit and save to hot-reload)
Ctrl-C stops the demo.
`);
  const stop = (): void => {
    sidecar.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  sidecar.once('exit', (code) => {
    for (const a of apps) a.close();
    process.exitCode = code ?? 0;
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

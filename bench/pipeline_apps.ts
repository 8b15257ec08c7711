// Which app servers take the GETs `pool.pipeline_plaintext` pipelines to them, and what it saves
// in front of each: the evidence behind its default (`loopback`, since 2026-12-07; issue 13).
// Every app server found on this machine answers `<METHOD> <path>` with a Content-Length: Node's
// http, Python's http.server (HTTP/1.1, threaded), gunicorn (sync and gthread workers), uvicorn,
// aiohttp, Go's net/http, nginx (`return 200`), Werkzeug's dev server (Flask's). For each, two
// 1-worker strict sidecars, one with `pipeline_plaintext: true` (what the default does for an app on
// 127.0.0.1), one with `pipeline_plaintext: false` ("off" below):
//   1. three bursts of 40 requests (every 5th a HEAD) on one HTTP/2 connection to the pipelining
//      sidecar: it reads each burst in one loop turn, so the requests pipeline on one connection
//      to the app. Every answer must be its own (status 200, body `<METHOD> <path>`, HEAD none).
//      Then GET /clusters: connections the sidecar opened to the app, and whether pipelining to
//      it was stopped (an app that closes pipelined connections three times).
//   2. wrk -t1 -c50 on each sidecar, alternated per round: req/s, errors and non-2xx, and the
//      sidecar's CPU per request (its process tree, all threads), medians.
// Usage: node dist/bench/pipeline_apps.js [--rounds N] [--seconds S] [--apps node,go,...]
// Needs wrk; the apps come from Debian: python3, gunicorn, python3-uvicorn, python3-aiohttp,
// python3-flask, golang-go, nginx. An app whose server is not installed is listed as skipped.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { clockTicksPerSecond, processTree, readProcStat } from './lib/procfs.js';
import { freePort, startProcess, type Started } from './lib/proc.js';
import { median } from './lib/stats.js';
import { outriggerCli } from './lib/targets.js';
import { runWrk, totalWrkErrors } from './lib/wrk.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values } = parseArgs({ options: { rounds: { type: 'string' }, seconds: { type: 'string' }, apps: { type: 'string' } } });
const rounds = Number(values.rounds ?? 3);
const seconds = Number(values.seconds ?? 3);
if (!(rounds >= 1) || !(seconds >= 1)) {
  process.stderr.write('pipeline_apps: --rounds and --seconds must be ≥ 1\n');
  process.exit(2);
}
const dir = mkdtempSync(path.join(tmpdir(), 'outrigger-pipeline-apps-'));

const WSGI = `def app(environ, start_response):
    b = (environ['REQUEST_METHOD'] + ' ' + environ['PATH_INFO']).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]
`;
const FILES: Record<string, string> = {
  'wsgi_app.py': WSGI,
  'asgi_app.py': `async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    b = (scope['method'] + ' ' + scope['path']).encode()
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain'), (b'content-length', str(len(b)).encode())]})
    await send({'type': 'http.response.body', 'body': b})
`,
  'stdlib_app.py': `import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def answer(self, body):
        b = (self.command + ' ' + self.path).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        if body:
            self.wfile.write(b)
    def do_GET(self):
        self.answer(True)
    def do_HEAD(self):
        self.answer(False)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
`,
  'aiohttp_app.py': `import sys
from aiohttp import web
async def h(r):
    return web.Response(text=r.method + ' ' + r.path)
app = web.Application()
app.router.add_route('*', '/{tail:.*}', h)
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), access_log=None, print=None)
`,
  'werkzeug_app.py': `import sys, logging
from werkzeug.serving import run_simple
from wsgi_app import app
logging.getLogger('werkzeug').setLevel(logging.ERROR)
run_simple('127.0.0.1', int(sys.argv[1]), app, threaded=True)
`,
  'node_app.js': `require('node:http').createServer((q, s) => {
  const b = q.method + ' ' + q.url;
  s.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(b) });
  s.end(q.method === 'HEAD' ? undefined : b);
}).listen(Number(process.argv[2]), '127.0.0.1');
`,
  'go_app.go': `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path) })
	http.ListenAndServe("127.0.0.1:"+os.Args[1], nil)
}
`,
};

interface App {
  readonly name: string;
  /** Why it cannot run here, or null. */
  missing(): string | null;
  start(port: number): Promise<Started>;
}

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/** Debian's python3 (its packages: gunicorn, uvicorn, …), not a pyenv shim that may come first on PATH. */
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const py =
  (module: string): (() => string | null) =>
  () =>
    has(PY, ['-c', `import ${module}`]) ? null : `${PY} module ${module} is not installed`;
const run = (name: string, cmd: string, args: (port: number) => string[]) => (port: number) =>
  startProcess({ name, cmd, args: args(port), cwd: dir, readyPort: port, env: { ...process.env, GOCACHE: path.join(dir, 'gocache') } });

const APPS: App[] = [
  { name: 'node-http', missing: () => null, start: run('node-http', process.execPath, (p) => ['node_app.js', String(p)]) },
  { name: 'python-http.server', missing: () => null, start: run('python-http.server', PY, (p) => ['stdlib_app.py', String(p)]) },
  {
    name: 'gunicorn-sync',
    missing: py('gunicorn'),
    start: run('gunicorn-sync', PY, (p) => ['-m', 'gunicorn', '-w', '1', '-b', `127.0.0.1:${p}`, '--log-level', 'warning', 'wsgi_app:app']),
  },
  {
    name: 'gunicorn-gthread',
    missing: py('gunicorn'),
    start: run('gunicorn-gthread', PY, (p) => [
      '-m',
      'gunicorn',
      '-w',
      '1',
      '-k',
      'gthread',
      '--threads',
      '8',
      '-b',
      `127.0.0.1:${p}`,
      '--log-level',
      'warning',
      'wsgi_app:app',
    ]),
  },
  {
    name: 'uvicorn',
    missing: py('uvicorn'),
    start: run('uvicorn', PY, (p) => [
      '-m',
      'uvicorn',
      'asgi_app:app',
      '--host',
      '127.0.0.1',
      '--port',
      String(p),
      '--log-level',
      'warning',
      '--no-access-log',
    ]),
  },
  { name: 'aiohttp', missing: py('aiohttp'), start: run('aiohttp', PY, (p) => ['aiohttp_app.py', String(p)]) },
  { name: 'werkzeug-dev', missing: py('werkzeug'), start: run('werkzeug-dev', PY, (p) => ['werkzeug_app.py', String(p)]) },
  {
    name: 'go-net-http',
    missing: () => (has('go', ['version']) ? null : 'go is not installed (golang-go)'),
    start: (port) => {
      const bin = path.join(dir, 'go_app');
      if (!existsSync(bin))
        execFileSync('go', ['build', '-o', bin, 'go_app.go'], { cwd: dir, env: { ...process.env, GOCACHE: path.join(dir, 'gocache'), GO111MODULE: 'off' } });
      return startProcess({ name: 'go', cmd: bin, args: [String(port)], readyPort: port });
    },
  },
  {
    name: 'nginx',
    missing: () => (existsSync('/usr/sbin/nginx') ? null : 'nginx is not installed'),
    start: (port) => {
      const d = mkdtempSync(path.join(dir, 'nginx-'));
      writeFileSync(
        path.join(d, 'nginx.conf'),
        `daemon off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log;
events {}
http { access_log off; default_type text/plain; client_body_temp_path ${d};
  server { listen 127.0.0.1:${port}; location / { return 200 "$request_method $uri"; } } }
`,
      );
      return startProcess({ name: 'nginx-app', cmd: '/usr/sbin/nginx', args: ['-p', d, '-c', path.join(d, 'nginx.conf')], readyPort: port });
    },
  },
];

interface Sidecar {
  readonly proc: Started;
  readonly port: number;
  readonly admin: string;
  readonly token: string;
}

async function sidecar(name: string, appPort: number, pipelined: boolean): Promise<Sidecar> {
  const port = await freePort();
  const cfg = path.join(dir, `${name}-${port}.yaml`);
  writeFileSync(
    cfg,
    `node: {workers: 1}
admin: {address: 127.0.0.1:0}
listeners: [{name: in, address: 127.0.0.1:${port}, engine: strict, routes: [{match: {path_prefix: /}, cluster: app}]}]
clusters: [{name: app, endpoints: [{address: 127.0.0.1:${appPort}}], pool: {pipeline_plaintext: ${pipelined}}}]
`,
  );
  const proc = await startProcess({ name, cmd: process.execPath, args: [outriggerCli(root), 'run', '-c', cfg], readyLine: /"msg":"ready"/ });
  const ready = JSON.parse(proc.readyLineText!.slice(proc.readyLineText!.indexOf('{'))) as { admin: string; admin_token_file: string };
  return { proc, port, admin: ready.admin, token: readFileSync(ready.admin_token_file, 'utf8').trim() };
}

/** One burst on one HTTP/2 connection; the number of answers that were not their request's own. */
async function burst(port: number, tag: string, n: number): Promise<{ wrong: string[] }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const wrong: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const method = i % 5 === 4 ? 'HEAD' : 'GET';
        const p = `/b/${tag}/${i}`;
        return new Promise<void>((resolve) => {
          const s = session.request({ ':method': method, ':path': p });
          let status = 0;
          let body = '';
          s.on('response', (h) => (status = Number(h[':status'])));
          s.setEncoding('utf8').on('data', (d: string) => (body += d));
          s.on('end', () => {
            const want = method === 'HEAD' ? '' : `${method} ${p}`;
            if (status !== 200 || body !== want) wrong.push(`${method} ${p} → ${status} ${JSON.stringify(body.slice(0, 60))}`);
            resolve();
          });
          s.on('error', (e: Error) => {
            wrong.push(`${method} ${p} → ${e.message}`);
            resolve();
          });
          s.end();
        });
      }),
    );
  } finally {
    session.close();
  }
  return { wrong };
}

async function endpointView(sc: Sidecar): Promise<{ opened: number; off: number }> {
  const res = await fetch(`http://${sc.admin}/clusters`, { headers: { authorization: `Bearer ${sc.token}` } });
  const j = (await res.json()) as { clusters: Array<{ name: string; endpoints: Array<Record<string, number>> }> };
  const e = j.clusters.find((c) => c.name === 'app')!.endpoints[0]!;
  return { opened: e['connections_opened_total'] ?? -1, off: e['pipelining_off_workers'] ?? -1 };
}

function cpuTicks(pid: number): number {
  let t = 0;
  for (const p of processTree(pid)) {
    const st = readProcStat(p);
    if (st !== null) t += st.utime + st.stime;
  }
  return t;
}

async function main(): Promise<void> {
  for (const [f, text] of Object.entries(FILES)) writeFileSync(path.join(dir, f), text);
  const want = values.apps?.split(',');
  const hz = clockTicksPerSecond();
  const out = [
    `| app server | bursts: wrong answers of 3 × 40 | connections opened | pipelining stopped | req/s off | req/s pipelined | errors + non-2xx (off / pipelined) | sidecar CPU µs/req off | pipelined | pipelined ÷ off |`,
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const app of APPS) {
    if (want !== undefined && !want.includes(app.name)) continue;
    const why = app.missing();
    if (why !== null) {
      out.push(`| ${app.name} | skipped: ${why} | | | | | | | | |`);
      continue;
    }
    const appPort = await freePort();
    const a = await app.start(appPort);
    const plain = await sidecar(`${app.name}-off`, appPort, false);
    const piped = await sidecar(`${app.name}-pipelined`, appPort, true);
    try {
      const wrong: string[] = [];
      for (let b = 0; b < 3; b++) wrong.push(...(await burst(piped.port, String(b), 40)).wrong);
      const view = await endpointView(piped);
      const rows: Record<'off' | 'pipelined', Array<{ rps: number; us: number; bad: number }>> = { off: [], pipelined: [] };
      for (let r = 0; r < rounds; r++) {
        const order: Array<['off' | 'pipelined', Sidecar]> = [
          ['off', plain],
          ['pipelined', piped],
        ];
        if (r % 2 === 1) order.reverse();
        for (const [kind, sc] of order) {
          const url = `http://127.0.0.1:${sc.port}/load`;
          await runWrk({ url, connections: 50, durationS: 1, threads: 1, scriptDir: dir });
          const before = cpuTicks(sc.proc.pid);
          const res = await runWrk({ url, connections: 50, durationS: seconds, threads: 1, scriptDir: dir });
          const ticks = cpuTicks(sc.proc.pid) - before;
          rows[kind].push({ rps: res.requestsPerSec, us: res.requests > 0 ? (ticks * 1e6) / hz / res.requests : NaN, bad: totalWrkErrors(res) });
        }
      }
      const m = (kind: 'off' | 'pipelined', f: (x: { rps: number; us: number; bad: number }) => number): number => median(rows[kind].map(f));
      const sum = (kind: 'off' | 'pipelined'): number => rows[kind].reduce((s, x) => s + x.bad, 0);
      const line = `| ${app.name} | ${wrong.length} | ${view.opened} | ${view.off > 0 ? 'yes' : 'no'} | ${m('off', (x) => x.rps).toFixed(0)} | ${m('pipelined', (x) => x.rps).toFixed(0)} | ${sum('off')} / ${sum('pipelined')} | ${m('off', (x) => x.us).toFixed(1)} | ${m('pipelined', (x) => x.us).toFixed(1)} | ${(m('pipelined', (x) => x.us) / m('off', (x) => x.us)).toFixed(2)} |`;
      out.push(line);
      process.stderr.write(`${line}\n`);
      for (const w of wrong.slice(0, 5)) process.stderr.write(`  ${app.name}: ${w}\n`);
    } finally {
      await piped.proc.stop();
      await plain.proc.stop();
      await a.stop();
    }
  }
  process.stdout.write(`\n${out.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`pipeline_apps: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

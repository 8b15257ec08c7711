// npm run bench:ab -- --base <rev> [--head <rev>] [--engine uws|node|strict] [--workers N]
//                     [--path single|mtls|mtls-depth1|plain-pair]
//                     [--rounds 5] [--duration 5] [--rate 1000] [--peer nginx,haproxy | --no-peer] [--out DIR]
// Before/after of a change on the request path, side by side in one run: builds the base revision
// (and --head's, when given; otherwise the working tree's dist/, built by the npm script) in a
// temporary git worktree, starts one upstream and one sidecar (or, with --path, a pair of them in
// series) per build with the same generated
// config, and measures them in interleaved rounds, alternating which goes first (ABBA…): warm-up,
// wrk -t1 -c50 throughput with CPU µs/request of each sidecar's process tree, a paced fixed-rate
// run for p50/p99/p99.9. Prints per-round numbers, medians with ranges, and head ÷ base paired
// per round; with a reference peer (nginx by default when installed; --peer nginx,haproxy), the
// peer is started against the same upstream and measured in every round too, its place in the
// order moving, and base ÷ peer and head ÷ peer CPU/request are paired per round beside its
// p99/p99.9. Writes results.json and report.md into --out. Worktrees and processes are removed at
// the end, also on errors and Ctrl-C. Exit 0 measured, 2 could not measure, 130 interrupted.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  abMetrics,
  abRounds,
  loadWarning,
  parsePath,
  parsePeers,
  problems,
  reportSections,
  roundOrder,
  summarizeAb,
  summarizePeers,
  type PeerName,
  type Side,
} from './lib/ab.js';
import { measureConfig, PLAN_OPTIONS, quickPlan, type RunRecord } from './lib/measure.js';
import { ensureTools, type ToolStatus } from './lib/peers.js';
import { clockTicksPerSecond } from './lib/procfs.js';
import { sleep } from './lib/proc.js';
import { outriggerCli, outriggerConfigYaml, startTarget, startUpstream, type ListenerEngine, type RunningTarget } from './lib/targets.js';

// dist/bench/ab.js → repo root is two levels up.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ADDON = join('native', 'reuseport', 'build', 'Release', 'reuseport.node');

const HELP = `usage: npm run bench:ab -- --base REV [options]
  --base REV          git revision to compare against (built in /tmp/outrigger-ab-<sha>)
  --head REV          git revision to compare (default: the working tree's dist/, which
                      npm run bench:ab builds first)
  --engine NAME       listener engine written into the config (default uws, like npm run bench)
  --workers N         node.workers of both sidecars (default 1; with a --path of two, of the
                      server sidecar)
  --path NAME         what is measured: single (default: one sidecar), mtls (two sidecars over
                      mTLS, pipelined), mtls-depth1 (the same, one request per connection at a
                      time), plain-pair (two sidecars over plaintext); a pair's CPU is both
                      sidecars' process trees, and it has no reference peer here
  --rounds N          interleaved rounds, order alternating ABBA… (default 5)
  --duration S        seconds per throughput run (default 5)
  --rate-duration S   seconds per fixed-rate run (default: --duration)
  --rate R            fixed rate for the latency run, req/s (default 1000)
  --peer NAME         reference proxy measured in every round beside both builds, against the
                      same upstream: nginx, haproxy (repeatable, or a comma list; default nginx
                      when it is installed; a named peer is apt-get installed when missing)
  --no-peer           no reference peer
  --out DIR           results.json and report.md (default bench/results/ab-<timestamp>/)
  --keep-worktree     leave the worktree(s) in place (for inspection)
  --no-install        do not apt-get install wrk (or a --peer) when it is missing
`;

class Fatal extends Error {}

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

// ---- cleanup (also on Ctrl-C and errors) -------------------------------------------------------

const worktrees = new Set<string>();
const tmpDirs = new Set<string>();
let buildChild: ChildProcess | null = null;
/** Upstream and sidecars while they run: killed before the worktrees are removed on Ctrl-C / errors. */
const livePids = new Set<number>();
let keepWorktrees = false;

function git(args: readonly string[], cwd = repoRoot): { ok: boolean; out: string; err: string } {
  const r = spawnSync('git', [...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { ok: r.status === 0, out: (r.stdout ?? '').trim(), err: `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

function removeWorktree(dir: string): void {
  if (!worktrees.has(dir)) return;
  worktrees.delete(dir);
  if (keepWorktrees) {
    log(`kept worktree ${dir} (remove it with: git worktree remove --force ${dir})`);
    return;
  }
  // The node_modules symlink goes first, so nothing can ever follow it into the main checkout.
  try {
    unlinkSync(join(dir, 'node_modules'));
  } catch {
    // not created yet
  }
  const r = git(['worktree', 'remove', '--force', dir]);
  if (!r.ok) log(`git worktree remove --force ${dir} failed: ${r.err}`);
  else log(`removed worktree ${dir}`);
}

/** Synchronous, so it also runs from process.on('exit'). Started processes are killed by lib/proc.ts's exit hook. */
function cleanupSync(): void {
  if (buildChild !== null && buildChild.exitCode === null) buildChild.kill('SIGKILL');
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  livePids.clear();
  for (const dir of [...worktrees]) removeWorktree(dir);
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
  tmpDirs.clear();
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping, cleaning up`);
    process.exit(130);
  });
}

// ---- builds -------------------------------------------------------------------------------------

interface Build {
  readonly side: Side;
  /** Where dist/ is: a worktree, or the main checkout. */
  readonly root: string;
  /** What the user asked for (`HEAD~3`, `working tree`). */
  readonly rev: string;
  readonly sha: string;
  readonly subject: string;
  /** Working tree only: tracked files with uncommitted changes (git status --porcelain). */
  readonly uncommitted?: readonly string[];
  readonly notes: readonly string[];
}

function resolveRev(rev: string): { sha: string; short: string; subject: string } {
  const r = git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  if (!r.ok || r.out === '') throw new Fatal(`not a git revision: ${rev}`);
  const sha = r.out;
  const subject = git(['log', '-1', '--format=%s', sha]).out;
  return { sha, short: git(['rev-parse', '--short', sha]).out, subject: subject.length > 90 ? `${subject.slice(0, 89)}…` : subject };
}

/** Runs a command with its output passed to stderr; rejects with the output's tail on failure. */
function run(cmd: string, args: readonly string[], cwd: string, what: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, [...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    buildChild = child;
    let out = '';
    const onData = (d: Buffer): void => {
      out = (out + d.toString('utf8')).slice(-8000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => reject(new Fatal(`${what}: ${e.message}`)));
    child.once('close', (code, signal) => {
      buildChild = null;
      if (code === 0) resolvePromise();
      else reject(new Fatal(`${what} failed (${code ?? signal}):\n${out.trim().split('\n').slice(-30).join('\n')}`));
    });
  });
}

/**
 * The reuseport addon for a revision that has native/reuseport: the main checkout's build when the
 * revision's addon sources equal the working tree's, else built in the worktree with the
 * revision's own scripts/build-native.mjs. Returns what was done.
 */
async function provideAddon(dir: string, sha: string, short: string): Promise<string | null> {
  const files = git(['ls-tree', '-r', '--name-only', sha, '--', 'native/reuseport']);
  if (!files.ok || files.out === '') return null; // this revision does not use the addon
  const same = files.out.split('\n').every((f) => {
    const theirs = spawnSync('git', ['show', `${sha}:${f}`], { cwd: repoRoot, maxBuffer: 64 << 20 });
    const mine = join(repoRoot, f);
    return theirs.status === 0 && existsSync(mine) && Buffer.compare(theirs.stdout, readFileSync(mine)) === 0;
  });
  const built = join(repoRoot, ADDON);
  if (same && existsSync(built)) {
    mkdirSync(dirname(join(dir, ADDON)), { recursive: true });
    copyFileSync(built, join(dir, ADDON));
    return `reuseport addon: copied ${ADDON} from the main checkout (native/reuseport sources identical)`;
  }
  log(`${short}: native/reuseport differs from the working tree's (or is not built there): building it in the worktree`);
  await run(process.execPath, ['scripts/build-native.mjs'], dir, `${short}: node scripts/build-native.mjs`);
  return `reuseport addon: built in the worktree (native/reuseport differs from the working tree's)`;
}

/** `git worktree add --detach`, node_modules symlinked, addon provided, `tsc -p tsconfig.json`. */
async function buildRevision(side: Side, rev: string): Promise<Build> {
  const { sha, short, subject } = resolveRev(rev);
  let dir = `/tmp/outrigger-ab-${short}`;
  if (existsSync(dir)) dir = `${dir}-${process.pid}-${side}`;
  log(`${side}: ${rev} = ${short} "${subject}": git worktree add --detach ${dir}`);
  worktrees.add(dir);
  const add = git(['worktree', 'add', '--force', '--detach', dir, sha]);
  if (!add.ok) {
    worktrees.delete(dir);
    throw new Fatal(`git worktree add ${dir} ${short} failed: ${add.err}`);
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const notes = [`worktree ${dir}, node_modules symlinked to the main checkout's`];
  const addon = await provideAddon(dir, sha, short);
  if (addon !== null) notes.push(addon);
  log(`${side}: tsc -p tsconfig.json in ${dir}`);
  const t0 = Date.now();
  await run(process.execPath, [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir, `${side} (${short}): tsc -p tsconfig.json`);
  log(`${side}: built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (!existsSync(outriggerCli(dir))) throw new Fatal(`${side} (${short}): the build has no ${outriggerCli(dir)}`);
  return { side, root: dir, rev, sha, subject, notes };
}

function workingTreeBuild(): Build {
  const { sha, short, subject } = resolveRev('HEAD');
  if (!existsSync(outriggerCli(repoRoot))) throw new Fatal(`${outriggerCli(repoRoot)} not found: run npm run build (npm run bench:ab does)`);
  const status = git(['status', '--porcelain', '--untracked-files=no']);
  const uncommitted = status.out === '' ? [] : status.out.split('\n').map((l) => l.slice(3));
  log(`head: the working tree's dist/ (HEAD ${short}${uncommitted.length > 0 ? ` + ${uncommitted.length} files with uncommitted changes` : ', clean'})`);
  return { side: 'head', root: repoRoot, rev: 'working tree', sha, subject, uncommitted, notes: [`the main checkout's dist/ (${repoRoot})`] };
}

/** `outrigger validate` of the config with this build; exit 2 (Fatal) when it is rejected. */
function checkConfig(b: Build, engine: string, workers: number, dir: string): void {
  const conf = join(dir, `validate-${b.side}.yaml`);
  writeFileSync(conf, outriggerConfigYaml({ workers, engine: engine as ListenerEngine, listenPort: 18080, upstreamPort: 18081, adminPort: 18082 }));
  const r = spawnSync(process.execPath, [outriggerCli(b.root), 'validate', '-c', conf], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  if (r.status === 0) return;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  const short = b.sha.slice(0, 9);
  if (/engine/i.test(text)) {
    throw new Fatal(
      `${b.side} (${b.rev} = ${short}) does not know listener engine "${engine}" (its outrigger validate: ${text.split('\n').slice(0, 4).join(' / ')}); compare with an engine both builds know`,
    );
  }
  throw new Fatal(`${b.side} (${b.rev} = ${short}) rejects the bench config (outrigger validate exited ${r.status ?? r.signal}): ${text.slice(0, 600)}`);
}

// ---- main ---------------------------------------------------------------------------------------

function positiveNumber(name: string, v: string | undefined, dflt: number, integer = false): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Fatal(`--${name} must be a positive ${integer ? 'integer' : 'number'}: ${v}`);
  return n;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        ...PLAN_OPTIONS,
        base: { type: 'string' },
        head: { type: 'string' },
        engine: { type: 'string', default: 'uws' },
        workers: { type: 'string' },
        path: { type: 'string' },
        rate: { type: 'string' },
        peer: { type: 'string', multiple: true },
        'no-peer': { type: 'boolean', default: false },
        'keep-worktree': { type: 'boolean', default: false },
      },
      strict: true,
    });
  } catch (e) {
    throw new Fatal(`${(e as Error).message}\n${HELP}`);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.base === undefined) throw new Fatal(`--base REV is required\n${HELP}`);
  keepWorktrees = values['keep-worktree'];
  const engine = values.engine;
  if (!/^[a-z][a-z0-9_-]*$/.test(engine)) throw new Fatal(`--engine: not an engine name: ${engine}`);
  const workers = positiveNumber('workers', values.workers, 1, true);
  const rounds = positiveNumber('rounds', values.rounds, 5, true);
  const durationS = positiveNumber('duration', values.duration, 5);
  const rateS = positiveNumber('rate-duration', values['rate-duration'], durationS);
  const rate = positiveNumber('rate', values.rate, 1000);
  let choice;
  let path;
  try {
    path = parsePath(values.path, values.peer);
    choice = path.kind === 'outrigger' ? parsePeers(values.peer, values['no-peer']) : parsePeers(undefined, true);
  } catch (e) {
    throw new Fatal((e as Error).message);
  }
  const out = resolve(values.out ?? join(repoRoot, 'bench', 'results', `ab-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const startedAt = new Date().toISOString();

  // Revisions first (a typo fails before anything is built), then wrk and the peers, then the builds.
  resolveRev(values.base);
  if (values.head !== undefined) resolveRev(values.head);
  const install = values['no-install'] !== true;
  // Named peers are installed like wrk (lib/peers.ts: apt-get); the default nginx only when it is there already.
  const tools: ToolStatus[] = [
    ...ensureTools(['wrk', ...(choice.explicit ? choice.peers : [])], install, log),
    ...(choice.explicit ? [] : ensureTools(choice.peers, false, log)),
  ];
  if (tools[0]?.path == null) throw new Fatal(`wrk is required: ${tools[0]?.reason ?? 'missing'}`);
  const toolMap = new Map(tools.map((t) => [t.tool, t]));
  const peerNotes: string[] = [];
  let peers: PeerName[] = [];
  for (const p of choice.peers) {
    const t = toolMap.get(p);
    if (t?.path != null) peers.push(p);
    else if (choice.explicit) throw new Fatal(`--peer ${p}: ${t?.reason ?? 'missing'}`);
    else peerNotes.push(`no reference peer: ${p} is not installed (--peer ${p} installs it with apt-get)`);
  }
  for (const n of peerNotes) log(n);

  const tmp = mkdtempSync(join(tmpdir(), 'outrigger-ab-run-'));
  tmpDirs.add(tmp);
  // The working tree's config check needs no build: an engine it does not know fails at once.
  const head = values.head !== undefined ? null : workingTreeBuild();
  if (head !== null) checkConfig(head, engine, workers, tmp);
  const base = await buildRevision('base', values.base);
  checkConfig(base, engine, workers, tmp);
  const builds: Record<Side, Build> = { base, head: head ?? (await buildRevision('head', values.head as string)) };
  if (head === null) checkConfig(builds.head, engine, workers, tmp);

  const plan = quickPlan(durationS, rate, rateS);
  const running = new Map<Side | PeerName, RunningTarget>();
  const startNotes: string[] = [];
  const roundLoads: number[] = [];
  let loadavgStart = loadavg();
  const runs: RunRecord[] = [];
  let upstream: Awaited<ReturnType<typeof startUpstream>> | null = null;
  try {
    upstream = await startUpstream(repoRoot);
    livePids.add(upstream.proc.pid);
    log(`upstream (uWS) on 127.0.0.1:${upstream.port}, pid ${upstream.proc.pid}`);
    for (const side of ['base', 'head'] as const) {
      const b = builds[side];
      const start = (): ReturnType<typeof startTarget> =>
        startTarget(
          {
            name: side,
            kind: path.kind,
            workers,
            engine: engine as ListenerEngine,
            ...(path.pipelineDepth !== undefined ? { pipelineDepth: path.pipelineDepth } : {}),
          },
          { repoRoot: b.root, tmpDir: tmp, upstreamPort: upstream?.port ?? 0, tools: new Map() },
        );
      let r = await start();
      if (!r.ok) {
        // A loaded machine can stall a worker past the sidecar's watchdog while it starts; one retry, on the record.
        const note = `${side}: the first start failed, started again: ${r.reason.split('\n')[0]}`;
        log(note);
        startNotes.push(note);
        r = await start();
      }
      if (!r.ok) throw new Fatal(`${side} (${b.rev}): ${r.reason}`);
      running.set(side, r.target);
      for (const pid of r.target.pids) livePids.add(pid);
      log(`started ${side}: ${r.target.baseUrl}, pid ${r.target.pids.join(',')}, ${outriggerCli(b.root)} run, ${r.target.description}`);
    }
    for (const peer of [...peers]) {
      const r = await startTarget({ name: peer, kind: peer }, { repoRoot, tmpDir: tmp, upstreamPort: upstream.port, tools: toolMap });
      if (!r.ok) {
        if (choice.explicit) throw new Fatal(`--peer ${peer} did not start: ${r.reason}`);
        const note = `no reference peer: ${peer} did not start: ${r.reason.split('\n')[0]}`;
        log(note);
        peerNotes.push(note);
        peers = peers.filter((p) => p !== peer);
        continue;
      }
      running.set(peer, r.target);
      for (const pid of r.target.pids) livePids.add(pid);
      log(`started ${peer}: ${r.target.baseUrl}, pid ${r.target.pids.join(',')}, ${r.target.description}`);
    }
    await sleep(1000);
    loadavgStart = loadavg();
    for (let round = 1; round <= rounds; round++) {
      const order = roundOrder(round, peers);
      roundLoads.push(loadavg()[0] ?? 0);
      log(`round ${round}/${rounds}: ${order.join(', ')}`);
      for (const side of order) {
        const t = running.get(side) as RunningTarget;
        runs.push(...(await measureConfig(t, upstream.proc.pid, round, plan, tmp, log)));
      }
    }
  } finally {
    for (const t of running.values()) await t.stop();
    await upstream?.proc.stop();
    livePids.clear();
    cleanupSync();
  }

  const table = abRounds(runs, rounds, rate, roundLoads, peers);
  const summary = summarizeAb(table, abMetrics(rate));
  const besidePeers = summarizePeers(table);
  const peerDescriptions = peers.map((p) => ({ name: p, description: running.get(p)?.description ?? p }));
  const describe = (b: Build): string =>
    b.rev === 'working tree'
      ? `working tree (HEAD ${b.sha.slice(0, 9)} "${b.subject}"${b.uncommitted !== undefined && b.uncommitted.length > 0 ? ` + uncommitted changes in ${b.uncommitted.length} files` : ''})`
      : `${b.rev} = ${b.sha.slice(0, 9)} "${b.subject}"`;
  const loadavgEnd = loadavg();
  const warnLoad = loadWarning(loadavgStart, loadavgEnd, cpus().length);
  const text = [
    `# bench:ab — head ÷ base, ${rounds} interleaved rounds (ABBA…), one run`,
    '',
    `- base: ${describe(base)}`,
    `- head: ${describe(builds.head)}`,
    ...peerDescriptions.map((p) => `- reference peer ${p.name}: ${p.description}, same upstream, measured in every round (its place in the order moving)`),
    ...peerNotes.map((n) => `- ${n}`),
    `- both: ${path.description}${path.kind === 'outrigger' ? '' : ` (${running.get('base')?.description ?? ''}; CPU is both sidecars' process trees)`}, node.workers ${workers}, listener engine ${engine}; throughput wrk -t1 -c50 ${durationS} s; fixed rate ${rate} req/s for ${rateS} s (wrk -t1 -c16, paced); warm-up 5 s before round 1, 1 s before every run`,
    `- load average ${loadavgStart.map((x) => x.toFixed(2)).join(' ')} when the rounds started, ${loadavgEnd.map((x) => x.toFixed(2)).join(' ')} at end (${cpus().length} CPUs)`,
    '',
    ...reportSections(table, summary, besidePeers, rate, [...startNotes, ...problems(table), ...(warnLoad === null ? [] : [warnLoad])]),
    '',
  ].join('\n');

  const results = {
    schema: 'outrigger-ab/1',
    meta: {
      startedAt,
      finishedAt: new Date().toISOString(),
      options: {
        base: values.base,
        head: values.head ?? null,
        engine,
        workers,
        path: path.name,
        rounds,
        durationS,
        rateS,
        rate,
        peers: choice.peers,
        peersExplicit: choice.explicit,
      },
      plan,
      host: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        node: process.version,
        kernel: release(),
        loadavgStart,
        loadavgEnd,
        clkTck: clockTicksPerSecond(),
      },
      tools,
      upstream: 'uWebSockets.js hello world (bench/upstream/server.ts of the main checkout), 1 thread',
    },
    builds: (['base', 'head'] as const).map((s) => ({ ...builds[s], description: describe(builds[s]) })),
    peers: peerDescriptions,
    rounds: table,
    summary,
    besidePeers,
    notes: [...startNotes, ...peerNotes, ...(warnLoad === null ? [] : [warnLoad])],
    runs,
  };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(out, 'report.md'), text);
  process.stdout.write(`${text}\n(results in ${out})\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof Fatal) log(`bench:ab: ${e.message}`);
    else log(`bench:ab: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(2);
  },
);

// The `outrigger` command: `run` (foreground sidecar), `validate`, `--help`, `--version`; `ca`,
// `bench`, `iptables` and `wait-ready` live in files of their own.
// The only place that reads argv and the environment. User mistakes (unknown flag, missing file,
// bad config) get one clear line and exit code 2, never a stack trace.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { compilersOn } from './compilers.js';
import { checkRuntime } from './preflight.js';
import { runSidecar } from './run.js';

const HELP = `outrigger — a service-mesh sidecar proxy

Usage:
  outrigger run -c FILE        start the sidecar in the foreground (SIGTERM/SIGINT drain, then exit 0)
  outrigger validate -c FILE   check a config file: prints "ok" or every problem (exit 2)
  outrigger ca init --dir DIR --trust-domain TD
  outrigger ca issue --dir DIR --identity spiffe://TD/ns/NS/sa/SA --out PREFIX [--ttl-hours N] [--key-type ec-p256|rsa-2048]
  outrigger ca inspect FILE    print a certificate's SPIFFE ID, serial and validity
  outrigger ca serve --dir DIR --address HOST:PORT --tokens FILE [--max-ttl-hours N]
                               sign sidecars' CSRs over HTTPS (sidecars then never hold the root key)
  outrigger bench URL [-c N] [-d S] [-r RATE] [-m M] [-b BODY] [-H K:V] [--json]
                               load test a URL (autocannon) and print latency percentiles
  outrigger iptables install --proxy-uid UID [--outbound-port 15001] [--inbound-port 15006]
                             [--exclude-inbound-ports P,P] [--exclude-outbound-ports P,P]
                             [--exclude-outbound-cidrs C,C] [--proxy-gid GID] [--dry-run]
  outrigger iptables uninstall [--dry-run] | show
                               transparent interception of this network namespace's TCP (as root)
  outrigger wait-ready --admin HOST:PORT [--timeout-ms N]
                               wait until a sidecar answers /ready (start the app after it)
  outrigger stat [--admin HOST:PORT] [--token-file F] [--json] [--watch]
                               requests, rates, success and latency per route and cluster of a sidecar
  outrigger top [--admin HOST:PORT] [--token-file F]
                               a sidecar's busiest paths, live (keys r, s, l, p sort; q quits)
  outrigger mesh apply -f FILE --etcd H:P,... | status --etcd H:P,... [--json] | rollback --to N --etcd H:P,...
                               the mesh-wide config in etcd (outrigger mesh --help)
  outrigger --help | --version

Options:
  -c, --config FILE   config file (YAML or JSON)
  --log-level LEVEL   trace | debug | info | warn | error (default: info)

Environment:
  OUTRIGGER_ENABLE_TEST_HOOKS=1   allow test-only route options (test_crash); never in production
`;

class UsageError extends Error {}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  // Only a sidecar's start-up runs with V8's compilers off (compilers.ts): `run` turns them on when
  // ready, every other command here or once its arguments are parsed (flags may come first).
  if (argv[0] !== 'run' && argv[0]?.startsWith('-') !== true) compilersOn();
  // Subcommands load their dependencies only when used (autocannon, node-forge stay out of `run`).
  if (argv[0] === 'ca') return (await import('./ca.js')).runCa(argv.slice(1));
  if (argv[0] === 'bench') return (await import('./bench.js')).runBench(argv.slice(1));
  if (argv[0] === 'stat') return (await import('./stat.js')).runStat(argv.slice(1));
  if (argv[0] === 'top') return (await import('./top.js')).runTop(argv.slice(1));
  if (argv[0] === 'iptables') return (await import('./iptables.js')).runIptablesCommand(argv.slice(1));
  if (argv[0] === 'mesh') return (await import('./mesh.js')).runMesh(argv.slice(1));
  if (argv[0] === 'wait-ready') return (await import('./wait_ready.js')).runWaitReady(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version === true) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (command !== 'run') compilersOn();
  if (command === undefined) throw new UsageError('missing command (run, validate); see outrigger --help');
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  if (command !== 'run' && command !== 'validate')
    throw new UsageError(`unknown command "${command}" (run, validate, ca, bench, iptables, wait-ready, mesh); see outrigger --help`);
  const file = values.config;
  if (file === undefined) throw new UsageError(`${command} needs -c FILE`);
  const logLevel = values['log-level'] ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new UsageError(`unknown log level "${logLevel}"`);
  }
  const enableTestHooks = process.env['OUTRIGGER_ENABLE_TEST_HOOKS'] === '1';
  const opts = { version: 1, availableParallelism: os.availableParallelism(), enableTestHooks };

  if (command === 'validate') {
    // Imported here: `run` checks its configs in a worker thread and never loads the config layer.
    const { formatProblems, loadConfigFile } = await import('../config/load.js');
    const result = await loadConfigFile(file, opts);
    if (!result.ok) {
      process.stderr.write(`${formatProblems(result.problems)}\n`);
      return 2;
    }
    for (const w of result.warnings) process.stderr.write(`warning: ${formatProblems([w])}\n`);
    process.stdout.write('ok\n');
    return 0;
  }

  const problem = checkRuntime();
  if (problem !== null) {
    process.stderr.write(`outrigger: ${problem}\n`);
    return 1;
  }
  const code = await runSidecar({ file, logLevel, compile: opts });
  exitAfterGrace(code);
  return code;
}

/** How long a drained sidecar may wait for the event loop to empty before it exits anyway. */
const EXIT_GRACE_MS = 2000;

/**
 * After the drain the process normally ends on its own. A library's leftover timer must not hold
 * it: etcd3 keeps a lost watch's reconnect backoff (up to 30 s) scheduled after the watch is
 * cancelled and the client closed. The timer is unref'd: it fires only if something else still
 * keeps the process alive.
 */
function exitAfterGrace(code: number): void {
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`outrigger: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`outrigger: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);

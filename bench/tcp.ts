// npm run bench:tcp [-- --rounds N] [--requests N] [--large-requests N] [--large-bytes B] [--no-install]
// Raw TCP through outrigger (one sidecar's tcp listener; two sidecars over mTLS) beside haproxy in
// mode tcp and redis alone, driven by redis-benchmark, in one run (bench/lib/tcp.ts).
// `npm run bench` runs the same section after its HTTP/1 configs.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderTcpMarkdown, runTcpBench } from './lib/tcp.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string', default: '100000' },
    'large-requests': { type: 'string', default: '10000' },
    'large-bytes': { type: 'string', default: '65536' },
    'no-install': { type: 'boolean', default: false },
  },
  strict: true,
});
const results = await runTcpBench({
  repoRoot,
  rounds: Number(values.rounds),
  requests: Number(values.requests),
  largeRequests: Number(values['large-requests']),
  largeValueBytes: Number(values['large-bytes']),
  install: !values['no-install'],
  log: (s) => process.stderr.write(`${s}\n`),
});
process.stdout.write(renderTcpMarkdown(results));

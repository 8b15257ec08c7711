// npm run bench:grpc [-- --rounds N] [--seconds S] [--rate R] [--no-install]
// gRPC unary through outrigger (one sidecar; two sidecars over HTTP/2 mTLS) beside nginx's
// grpc_pass and the upstream alone, in one run (bench/lib/grpc.ts). `npm run bench` runs the
// same section after its HTTP/1 configs.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderGrpcMarkdown, runGrpcBench } from './lib/grpc.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    'no-install': { type: 'boolean', default: false },
  },
  strict: true,
});
const results = await runGrpcBench({
  repoRoot,
  rounds: Number(values.rounds),
  seconds: Number(values.seconds),
  rate: Number(values.rate),
  install: !values['no-install'],
  log: (s) => process.stderr.write(`${s}\n`),
});
process.stdout.write(renderGrpcMarkdown(results));

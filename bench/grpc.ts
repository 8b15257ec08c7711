// npm run bench:grpc [-- --rounds N] [--seconds S] [--rate R] [--no-install]
// gRPC unary through outrigger (one sidecar; two sidecars over HTTP/2 mTLS) beside nginx's
// grpc_pass and the upstream alone, in one run (bench/lib/grpc.ts). `npm run bench` runs the
// same section after its HTTP/1 configs.

import { renderGrpcMarkdown, runGrpcBench } from './lib/grpc.js';
import { parseSectionArgs } from './lib/section.js';

const { common, own } = parseSectionArgs({ seconds: '10', rate: '1000' });
const results = await runGrpcBench({ ...common, seconds: Number(own.seconds), rate: Number(own.rate) });
process.stdout.write(renderGrpcMarkdown(results));

/* global require */
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: the HTTP instrumentation patches what require() loads */
// A test app instrumented with the OpenTelemetry Node SDK, CommonJS (this directory's
// package.json) and run as a child process so that the HTTP instrumentation hooks
// `require('http')` before anything loads it. Every span is exported
// at once (SimpleSpanProcessor) with OTLP/HTTP to OTLP_URL, under service.name SERVICE.
// GET /call?to=URL calls URL (the request carries the SDK's traceparent) and answers its status;
// any other path answers 200 "hello from SERVICE". Prints `port <N>` when listening.
'use strict';
const { NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const service = process.env.SERVICE;
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': service }),
  spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: process.env.OTLP_URL }))],
});
provider.register();
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });

const http = require('http');
const agent = new http.Agent({ keepAlive: false });
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  if (url.pathname !== '/call') {
    res.end(`hello from ${service}`);
    return;
  }
  const out = http.get(url.searchParams.get('to'), { agent }, (up) => {
    up.resume();
    up.on('end', () => res.end(String(up.statusCode)));
  });
  out.on('error', (e) => {
    res.statusCode = 502;
    res.end(e.message);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${server.address().port}\n`));
process.on('SIGTERM', () => provider.shutdown().finally(() => process.exit(0)));

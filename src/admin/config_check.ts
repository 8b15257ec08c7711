// A config's check: parse (per origin), validate and compile, the step every config change
// starts with (config_store.ts). It loads the config layer (zod, yaml, js-yaml, the schema: ~20
// MiB of a sidecar's main thread when kept), so the sidecar runs it in a short-lived worker
// thread (config_check_worker.ts) and keeps only the plain result; tests may run it in process.
import { compileEtcd, compileServiceRegistration, type EtcdSpec, type ServiceRegistrationSpec } from '../config/etcd.js';
import { resolveWorkers } from '../config/compile.js';
import { compileConfig, loadConfigFile, parseConfigText, type CompileOptions, type LoadResult } from '../config/load.js';
import { parseConfigBody } from './body_limits.js';

/** Where a config comes from: the admin API (checked by the policy) or the config file (trusted). */
export type ConfigOrigin = 'api' | 'file';

export type ConfigInput = { readonly text: string } | { readonly object: unknown };

export type CheckRequest =
  /** The config file at start: read, then checked as trusted text. */
  | { readonly file: string; readonly opts: CompileOptions }
  /** A config given as text or object: an API body is parsed with the API's limits (body_limits.ts). */
  | { readonly input: ConfigInput; readonly origin: ConfigOrigin; readonly opts: CompileOptions };

/** A check's answer: a LoadResult, plus what the main thread would otherwise compile from the source. */
export type CheckedConfig =
  | (Extract<LoadResult, { ok: true }> & {
      /** `node.workers` as the config asks it (the snapshot keeps `opts.fixedWorkers` when given). */
      readonly wantedWorkers: number;
      readonly etcd: EtcdSpec | null;
      readonly registration: ServiceRegistrationSpec | null;
    })
  | Extract<LoadResult, { ok: false }>;

/** Asks for a check: in a worker thread on the sidecar (config_check_thread.ts), checkConfig in tests. */
export type CheckConfig = (request: CheckRequest) => Promise<CheckedConfig>;

export async function checkConfig(request: CheckRequest): Promise<CheckedConfig> {
  const loaded = 'file' in request ? await loadConfigFile(request.file, request.opts) : loadInput(request.input, request.origin, request.opts);
  if (!loaded.ok) return loaded;
  const { node, discovery } = loaded.source;
  return {
    ...loaded,
    wantedWorkers: resolveWorkers(node.workers, request.opts.availableParallelism),
    etcd: compileEtcd(discovery),
    registration: compileServiceRegistration(node.service),
  };
}

function loadInput(input: ConfigInput, origin: ConfigOrigin, opts: CompileOptions): LoadResult {
  if ('object' in input) return compileConfig(input.object, opts);
  return origin === 'api' ? parseConfigBody(input.text, opts) : parseConfigText(input.text, opts);
}

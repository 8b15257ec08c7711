// The mesh-wide config file (`outrigger mesh apply -f FILE`): per service, the parts that replace
// that service's sidecars' local-file parts — `services: {<name>: {listeners?, clusters?}}`.
// Validation runs each service's resulting config through the same checks as `outrigger
// validate`, every problem by its path in the mesh file. Pure: no I/O, no etcd.

import type { CompileOptions, LineLookup, RawConfig } from '../config/load.js';
import { compileConfig, fastParse, lazyLineLookup } from '../config/load.js';
import { formatPath, type ConfigPath } from '../config/paths.js';
import type { ConfigProblem } from '../config/types.js';

/** The parts of one service's config the mesh sets; an absent part keeps the sidecar's local one. */
export interface MeshPart {
  readonly listeners?: readonly unknown[];
  readonly clusters?: readonly unknown[];
}

export interface MeshConfig {
  readonly services: Readonly<Record<string, MeshPart>>;
}

export type MeshParse = { readonly ok: true; readonly mesh: MeshConfig } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** Service names become etcd key segments (`<prefix>/services/<name>/...`): no `/`, nothing odd. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const PART_KEYS: ReadonlySet<string> = new Set(['listeners', 'clusters']);
/** The one endpoint of a cluster assumed to come from a sidecar's local file (never dialled: validation only). */
const PLACEHOLDER_ENDPOINT = '127.0.0.1:9';

/** Parses a mesh file (YAML or JSON) and validates every service's part; every problem by path. */
export function parseMeshText(text: string, opts: CompileOptions): MeshParse {
  const obj = fastParse(text);
  if (obj === undefined || obj === null) return { ok: false, problems: [{ path: '', message: 'not a YAML or JSON document', line: null }] };
  return validateMesh(obj, opts, lazyLineLookup(text));
}

/** Validates a parsed mesh document (e.g. a version read back from etcd). */
export function validateMesh(obj: unknown, opts: CompileOptions, lines: LineLookup = () => null): MeshParse {
  const problems: ConfigProblem[] = [];
  const problem = (path: ConfigPath, message: string): void => void problems.push({ path: formatPath(path), message, line: lines(path) });
  if (!isObject(obj)) {
    problem([], 'must be an object with `services`');
    return { ok: false, problems };
  }
  for (const key of Object.keys(obj)) if (key !== 'services') problem([key], 'unknown key (a mesh file has only `services`)');
  const services = obj['services'];
  if (!isObject(services) || Object.keys(services).length === 0) {
    problem(['services'], 'must map at least one service name to its {listeners?, clusters?}');
    return { ok: false, problems };
  }
  for (const [name, part] of Object.entries(services)) {
    const at = ['services', name];
    if (!SERVICE_NAME.test(name)) problem(at, 'a service name is letters, digits, ".", "_" and "-" (it is a segment of etcd keys)');
    if (!isObject(part)) {
      problem(at, 'must be an object with `listeners` and/or `clusters`');
      continue;
    }
    const shapeProblems = partShapeProblems(part);
    for (const [key, message] of shapeProblems) problem([...at, key], message);
    if (shapeProblems.length > 0) continue;
    const checked = compileConfig(validationBase(part), opts, (path) => lines([...at, ...path]));
    if (!checked.ok) for (const p of checked.problems) problems.push({ ...p, path: underService(name, p.path) });
  }
  return problems.length === 0 ? { ok: true, mesh: obj as unknown as MeshConfig } : { ok: false, problems };
}

/** `[key, message]` for each part key that is unknown or not a list, or for a part that sets nothing. */
function partShapeProblems(part: Record<string, unknown>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(part)) {
    if (!PART_KEYS.has(key)) out.push([key, 'unknown key (a service part has `listeners` and/or `clusters`)']);
    else if (!Array.isArray(value)) out.push([key, 'must be a list']);
  }
  if (out.length === 0 && Object.keys(part).length === 0) out.push(['listeners', 'a service part sets `listeners` and/or `clusters`']);
  return out;
}

/**
 * The config a part is checked as, on a minimal base. A part without `clusters` keeps each
 * sidecar's local clusters, which apply cannot see: every cluster its listeners name is assumed
 * to exist (with a placeholder endpoint). Each sidecar checks its real result again before applying, and
 * reports a version it cannot apply in `mesh status`.
 */
function validationBase(part: MeshPart): Record<string, unknown> {
  const clusters = part.clusters ?? [...clusterNames(part.listeners ?? [])].map((name) => ({ name, endpoints: [{ address: PLACEHOLDER_ENDPOINT }] }));
  return { listeners: part.listeners ?? [], clusters };
}

/** Every string under a `cluster` key (routes, weighted splits, tcp listeners, tcp_fallback). */
function clusterNames(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) clusterNames(v, out);
  else if (isObject(value))
    for (const [k, v] of Object.entries(value)) {
      if (k === 'cluster' && typeof v === 'string') out.add(v);
      else clusterNames(v, out);
    }
  return out;
}

/** One service's config: the local file's config with the mesh part's listeners and/or clusters in place of its own. */
export function serviceConfig(local: RawConfig, part: MeshPart): Record<string, unknown> {
  return {
    ...local,
    ...(part.listeners === undefined ? {} : { listeners: part.listeners }),
    ...(part.clusters === undefined ? {} : { clusters: part.clusters }),
  };
}

/** `listeners[0].name` of service web → `services.web.listeners[0].name`. */
function underService(name: string, path: string): string {
  const at = formatPath(['services', name]);
  return path === '' ? at : path.startsWith('[') ? `${at}${path}` : `${at}.${path}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

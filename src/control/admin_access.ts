// Who may use the admin API and what configs sent through it may name: the admin token (there
// always is one: the configured token file, or one generated 0600 in the state directory for a
// loopback admin address) and the API policy (allowed directories, remote listeners).

import path from 'node:path';
import { ApiPolicy } from '../admin/api_policy.js';
import { isLoopbackHost } from '../config/address.js';
import { ensureGeneratedToken, readConfiguredToken, TokenError, type AdminToken } from '../admin/token.js';
import type { AdminSpec, RawConfig } from '../config/load.js';

/** Default admin.state_dir, relative to the config file's directory. */
const DEFAULT_STATE_DIR = '.outrigger';

export type AdminAccess =
  | {
      readonly ok: true;
      readonly token: AdminToken;
      /** The token GET /metrics needs besides the admin token (admin.metrics_token_file); null: /metrics is open. */
      readonly metricsToken: AdminToken | null;
      readonly policy: ApiPolicy;
    }
  | { readonly ok: false; readonly message: string };

/** Reads or generates the token and builds the policy; `message` says why the sidecar cannot start. */
export function openAdminAccess(admin: AdminSpec, source: RawConfig, configFile: string, cwd: string): AdminAccess {
  const rawAdmin = source.admin;
  const configDir = path.dirname(configFile);
  const stateDir = path.resolve(configDir, rawAdmin.state_dir ?? DEFAULT_STATE_DIR);
  let token: AdminToken;
  try {
    if (admin.tokenFile !== null) {
      token = readConfiguredToken(path.resolve(configDir, admin.tokenFile));
    } else if (!isLoopbackHost(admin.host)) {
      return {
        ok: false,
        message: `admin.address ${admin.address} is not loopback: set admin.token_file (the token remote callers send); a generated token is for local use only`,
      };
    } else {
      token = ensureGeneratedToken(stateDir);
    }
  } catch (e) {
    if (!(e instanceof TokenError)) throw e;
    const hint = admin.tokenFile === null ? ' (set admin.state_dir to a directory this user owns, or admin.token_file)' : '';
    return { ok: false, message: `admin token: ${e.message}${hint}` };
  }
  let metricsToken: AdminToken | null = null;
  if (admin.metricsTokenFile !== null) {
    try {
      metricsToken = readConfiguredToken(path.resolve(configDir, admin.metricsTokenFile), 'admin.metrics_token_file');
    } catch (e) {
      if (!(e instanceof TokenError)) throw e;
      return { ok: false, message: `metrics token: ${e.message}` };
    }
  }
  const policy = new ApiPolicy({
    configFile,
    stateDir,
    tokenFile: token.file,
    allowedDirs: (rawAdmin.allowed_dirs ?? [configDir, stateDir]).map((d) => path.resolve(configDir, d)),
    allowRemoteListeners: rawAdmin.allow_remote_listeners,
    cwd,
  });
  return { ok: true, token, metricsToken, policy };
}

// Reusable zod field schemas for the config format: names, addresses, durations, paths, regexes,
// hosts and HTTP tokens. Each carries its own precise message; cross-field rules live in checks.ts.
// Imports only zod, address.ts and regex.ts.
import { compileLinearRegex, LinearRegexUnavailable } from './regex.js';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { identityPatternProblem } from './identity_pattern.js';

/** Largest duration a Node timer can hold (2^31 - 1 ms). */
export const MAX_MS = 2_147_483_647;

/** Integer milliseconds in [min, MAX_MS]. */
export function ms(min = 0): z.ZodInt {
  return z.int().min(min).max(MAX_MS);
}

/** Names of listeners, clusters and routes (used in stats labels and messages). */
export const nameField = z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'must be a non-empty name of letters, digits, "_", "." or "-"' });

/** RFC 9110 token: HTTP methods and header names. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export const methodField = z.string().regex(TOKEN, { error: 'must be an HTTP method token (e.g. GET)' });
export const headerNameField = z.string().regex(TOKEN, { error: 'must be a header name (an HTTP token)' });

/** `host:port` to bind: port 0 allowed (pick a free port). */
export const bindAddressField = z.string().superRefine((v, ctx) => {
  const r = parseHostPort(v, true);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
});

/** `host:port` to connect to: port 1-65535. */
export const endpointAddressField = z.string().superRefine((v, ctx) => {
  const r = parseHostPort(v, false);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
});

/** The anchored form the compiled snapshot carries: the whole subject must match. */
export function anchorRegex(source: string): string {
  return `^(?:${source})$`;
}

/**
 * A JS regular expression source that must compile on its own and anchored, in the syntax V8's
 * linear engine can run (no backreferences, lookaround): matching stays linear in the input.
 */
export const regexField = z.string().superRefine((v, ctx) => {
  try {
    compileLinearRegex(v);
    compileLinearRegex(anchorRegex(v));
  } catch (err) {
    const msg = (err as Error).message;
    if (err instanceof LinearRegexUnavailable) {
      ctx.addIssue({
        code: 'custom',
        message: `regexes are refused on this runtime: ${msg}, so a catastrophic pattern could stall a worker; run on the Node version package.json names (20.19+), or match with path_prefix, path or exact values instead`,
      });
      return;
    }
    ctx.addIssue({
      code: 'custom',
      message: msg.includes('linear time')
        ? 'uses syntax that cannot be matched in linear time (backreferences, lookahead/lookbehind): rewrite it without them'
        : `does not compile: ${msg}`,
    });
  }
});

/** A request path or path prefix: starts with `/`, no query, no fragment. */
export const pathField = z.string().superRefine((v, ctx) => {
  if (!v.startsWith('/')) ctx.addIssue({ code: 'custom', message: `must start with "/" (got "${v}")` });
  else if (/[?#]/.test(v)) ctx.addIssue({ code: 'custom', message: 'must not contain "?" or "#" (paths match without the query)' });
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  else if (/[\s\x00-\x1f\x7f]/.test(v)) ctx.addIssue({ code: 'custom', message: 'must not contain spaces or control characters' });
});

const HOST_LABELS = /^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

/** Route host: a DNS name or IP, `*.suffix`, `*` (any) or `[ipv6]`; never a port. */
export const matchHostField = z.string().superRefine((v, ctx) => {
  const h = v.toLowerCase();
  if (h === '*') return;
  if (h.startsWith('[')) {
    if (!/^\[[0-9a-f:.]+\]$/.test(h)) {
      ctx.addIssue({ code: 'custom', message: `"${v}": write IPv6 hosts as "[::1]" without a port` });
    }
    return;
  }
  if (/:\d*$/.test(h)) {
    ctx.addIssue({ code: 'custom', message: `"${v}" must not contain a port (routes match the host without its port)` });
    return;
  }
  const bare = h.startsWith('*.') ? h.slice(2) : h;
  if (!HOST_LABELS.test(bare)) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a host name (letters, digits, "-", "." and an optional leading "*.")` });
  }
});

/** A host name the admin API accepts in Host (admin.hosts): a DNS name, no port, no wildcard. */
export const adminHostField = z.string().superRefine((v, ctx) => {
  const h = v.toLowerCase();
  if (/:\d*$/.test(h) && !h.includes('[')) {
    ctx.addIssue({ code: 'custom', message: `"${v}" must not contain a port (a Host with or without the admin port is accepted)` });
    return;
  }
  if (h.length > 253 || !HOST_LABELS.test(h) || /^[\d.]+$/.test(h)) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a host name (letters, digits, "-" and "."; IP literals of this server are accepted already)` });
  }
});

/** A SPIFFE ID: `spiffe://<trust-domain>[/<path>]`. */
export const spiffeIdField = z.string().regex(/^spiffe:\/\/[a-z0-9._-]+(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)*$/, {
  error: 'must be a SPIFFE ID like "spiffe://cluster.local/ns/default/sa/web"',
});

/**
 * An identity pattern (authorization `from`, cluster `tls.identities`): an exact SPIFFE ID, or
 * one with whole-segment "*" wildcards (grammar in identity_pattern.ts, docs/config.md).
 */
export const identityPatternField = z.string().superRefine((v, ctx) => {
  const problem = identityPatternProblem(v);
  if (problem !== null) {
    ctx.addIssue({ code: 'custom', message: `must be a SPIFFE ID or identity pattern: ${problem} (got ${JSON.stringify(v)})` });
  }
});

/** A fully-qualified gRPC service name, as in the call path `/<service>/<method>`: `pkg.v1.Service`. */
export const grpcServiceField = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/, {
  error: 'must be a gRPC service name: identifiers (letters, digits, "_") joined by ".", like "pkg.v1.Service"',
});

/** A gRPC method name: one identifier, like `GetUser`. */
export const grpcMethodField = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
  error: 'must be a gRPC method name: letters, digits and "_", not starting with a digit, like "GetUser"',
});

/** A gRPC service and optionally one of its methods (route `match.grpc`, authorization `grpc`). */
export const grpcTargetSchema = z.strictObject({ service: grpcServiceField, method: grpcMethodField.optional() });

/** The call path of a gRPC target: `/<service>/<method>`, or `/<service>/` (the prefix of every method) without a method. */
export function grpcPath(t: { readonly service: string; readonly method?: string | undefined }): string {
  return `/${t.service}/${t.method ?? ''}`;
}

/** A header value to match exactly: no CR, LF or NUL. */
// eslint-disable-next-line no-control-regex -- NUL in a header value is what this rejects
export const headerValueField = z.string().regex(/^[^\r\n\x00]*$/, { error: 'must not contain CR, LF or NUL' });

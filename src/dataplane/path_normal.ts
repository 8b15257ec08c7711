// The normal form of a request path that routing and authorization match against, so that a rule
// for `/v1/*` cannot be passed by a path an app resolves elsewhere (`/v1/..;/admin`,
// `/v1/%2e%2e/admin`, `/v1/%252e%252e/admin`, `/v1/%C0%AE%C0%AE/admin`, `/v1/..%00/admin`).
// Paths whose meaning depends on who decodes them are refused (400); the path is forwarded as
// received (so `;jsessionid=…` and `%2F` keep their meaning for the app). See README, "Paths".

/** Why a path is refused, or null when it is acceptable. */
export type PathRefusal = string;

const HEX = /^[0-9A-Fa-f]{2}$/;
const ESCAPE = /%[0-9A-Fa-f]{2}/;
/** Characters that force the slow path: escapes, parameters, dots, backslashes, doubled slashes. */
const NEEDS_WORK = /[%;\\]|\/\.|\/\//;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The path to match rules against, or a PathRefusal. The normal form: unreserved characters
 * decoded (`%61` → `a`), other escapes kept with upper-case hex, `;parameters` removed from each
 * segment, repeated slashes merged. Refused: a dot segment (`.` or `..`, however spelled:
 * raw, percent-encoded, followed by `;params`, separated by `\` or `%2F`), `%00` or another
 * control character, double encoding (an escape left after one decode: `%252e`, `%25%32%65`), invalid or overlong
 * UTF-8 in escapes, a raw backslash, a malformed escape.
 */
export function normalizePath(path: string): string | { refused: PathRefusal } {
  if (!NEEDS_WORK.test(path)) return path; // the common case costs one scan
  if (path.includes('\\')) return { refused: 'backslash in path' };
  // 1. Full decode, to see what a decoding app would see.
  const bytes: number[] = [];
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = path.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return { refused: 'malformed percent-encoding in path' };
      const b = parseInt(hex, 16);
      if (b < 0x20 || b === 0x7f) return { refused: 'encoded control character in path' };
      bytes.push(b);
      i += 2;
    } else {
      bytes.push(c);
    }
  }
  let decoded: string;
  try {
    decoded = utf8.decode(Uint8Array.from(bytes));
  } catch {
    return { refused: 'invalid UTF-8 in path escapes' };
  }
  // Double encoding: once decoded, the path still holds an escape (`%252e`, or `%25` followed by
  // escapes of hex digits such as `%25%32%65`), which an app that decodes twice turns into `.`.
  if (ESCAPE.test(decoded)) return { refused: 'double percent-encoding in path' };
  // 2. No dot segment under any reading: separators `/` and `\` (decoded %2F, %5C), params cut.
  for (const seg of decoded.split(/[/\\]/)) {
    const semi = seg.indexOf(';');
    const name = semi < 0 ? seg : seg.slice(0, semi);
    if (name === '.' || name === '..') return { refused: 'dot segment in path' };
  }
  // 3. The matching form, from the raw path.
  let out = '';
  let inParams = false;
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '/') {
      inParams = false;
      if (!out.endsWith('/')) out += '/';
      continue;
    }
    if (inParams) continue;
    if (ch === ';') {
      inParams = true;
      continue;
    }
    if (ch === '%') {
      const hex = path.slice(i + 1, i + 3);
      const decodedChar = String.fromCharCode(parseInt(hex, 16));
      out += UNRESERVED.test(decodedChar) ? decodedChar : `%${hex.toUpperCase()}`;
      i += 2;
      continue;
    }
    out += ch;
  }
  return out;
}

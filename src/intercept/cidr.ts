// Address ranges for --exclude-outbound-cidrs: parses an IPv4 or IPv6 CIDR (or a bare address,
// meaning /32 or /128) and prints it the way `iptables -S` prints it back (host bits cleared,
// IPv6 compressed), so the installed rules can be compared with the planned ones. Pure.

import { isIPv4, isIPv6 } from 'node:net';

export type Family = 'ipv4' | 'ipv6';

/** A parsed range: its family and its text as iptables prints it (`10.0.0.0/8`, `fd00::/8`). */
export interface Cidr {
  readonly family: Family;
  readonly text: string;
}

/** The CIDR `input` normalised, or null when it is not an IPv4/IPv6 address with an optional /prefix. */
export function parseCidr(input: string): Cidr | null {
  const slash = input.indexOf('/');
  const address = slash < 0 ? input : input.slice(0, slash);
  const prefixText = slash < 0 ? undefined : input.slice(slash + 1);
  if (isIPv4(address)) {
    const prefix = parsePrefix(prefixText, 32);
    if (prefix === null) return null;
    const bytes = masked(address.split('.').map(Number), prefix);
    return { family: 'ipv4', text: `${bytes.join('.')}/${prefix}` };
  }
  if (isIPv6(address)) {
    const prefix = parsePrefix(prefixText, 128);
    if (prefix === null) return null;
    return { family: 'ipv6', text: `${formatIpv6(masked(ipv6Bytes(address), prefix))}/${prefix}` };
  }
  return null;
}

function parsePrefix(text: string | undefined, max: number): number | null {
  if (text === undefined) return max;
  if (!/^\d{1,3}$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/** `bytes` with every bit after the first `prefix` cleared. */
function masked(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/** The 16 bytes of a valid IPv6 literal (`::` expanded, an embedded dotted IPv4 tail included). */
function ipv6Bytes(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    tail.push(
      ...text
        .slice(lastColon + 1)
        .split('.')
        .map(Number),
    );
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = all.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** RFC 5952 text (lower case, the longest run of two or more zero groups as `::`), as inet_ntop prints it. */
function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

// UTC timestamps as text, computed from the epoch milliseconds alone. Date's own formatters
// (toISOString, toUTCString, and every local-time method) first build V8's date cache, which
// loads ICU's time zone data: ~0.6-1 MiB of node's binary paged in for good (measured with
// /proc/self/status RssFile, one fresh process per method). A sidecar only ever writes UTC, so
// its logs, Date headers and admin views format here and never touch that data. Outside years
// 1970-9999 (never for "now") these hand over to Date.

const MAX_MS = 253_402_300_800_000; // 10000-01-01T00:00:00Z
const DAY_MS = 86_400_000;
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

interface Civil {
  readonly year: number;
  /** 1-12 */
  readonly month: number;
  readonly day: number;
  /** 0 = Sunday */
  readonly weekday: number;
  /** Milliseconds into the day. */
  readonly msOfDay: number;
}

/** The UTC calendar date of `ms` (≥ 0): Howard Hinnant's civil_from_days. */
function civil(ms: number): Civil {
  const days = Math.floor(ms / DAY_MS);
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  return {
    year: yoe + era * 400 + (month <= 2 ? 1 : 0),
    month,
    day: doy - Math.floor((153 * mp + 2) / 5) + 1,
    weekday: (days + 4) % 7,
    msOfDay: ms - days * DAY_MS,
  };
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function clock(msOfDay: number): string {
  const s = Math.floor(msOfDay / 1000);
  return `${pad2(Math.floor(s / 3600))}:${pad2(Math.floor(s / 60) % 60)}:${pad2(s % 60)}`;
}

function inRange(ms: number): boolean {
  return ms >= 0 && ms < MAX_MS;
}

/** `new Date(ms).toISOString()`: 2026-12-07T13:49:00.708Z. Throws RangeError for an invalid time, like Date. */
export function isoTime(ms: number): string {
  if (!inRange(ms)) return new Date(ms).toISOString();
  const t = Math.floor(ms);
  const c = civil(t);
  const milli = c.msOfDay % 1000;
  return `${c.year}-${pad2(c.month)}-${pad2(c.day)}T${clock(c.msOfDay)}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** `new Date(ms).toUTCString()`, HTTP's IMF-fixdate: Mon, 07 Dec 2026 13:49:00 GMT. */
export function imfFixdate(ms: number): string {
  if (!inRange(ms)) return new Date(ms).toUTCString();
  const c = civil(Math.floor(ms));
  return `${WEEKDAYS[c.weekday]!}, ${pad2(c.day)} ${MONTHS[c.month - 1]!} ${c.year} ${clock(c.msOfDay)} GMT`;
}

/** pino's `timestamp` option: `"time"` as isoTime(now), like pino.stdTimeFunctions.isoTime. */
export function pinoIsoTime(): string {
  return `,"time":"${isoTime(Date.now())}"`;
}

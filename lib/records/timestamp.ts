/**
 * RFC 3339 date-times with a mandatory offset (§5.6 `date-time`). Parsed by hand because `Date.parse` accepts
 * many other shapes, silently drops digits beyond milliseconds, and rolls 30 February over into March.
 */
export const RFC3339_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds since the epoch, or undefined when the text is not a real RFC 3339 instant with an offset. */
export function parseRfc3339(text: string): number | undefined {
  const parts = splitRfc3339(text);
  return parts === undefined ? undefined : parts.wholeMs + Number(`0.${parts.subMsDigits || '0'}`);
}

const MIN_SUPPORTED_MS = new Date(0).setUTCFullYear(1, 0, 1);
const END_SUPPORTED_MS = Date.UTC(10_000, 0, 1);

/**
 * The same instant as UTC text (`…Z`), keeping every fractional digit the client sent. PostgreSQL refuses
 * offsets beyond ±15:59 and the year 0000 that RFC 3339 allows, so nothing reaches it in the client's offset;
 * undefined when the text is invalid or the instant lies outside years 0001–9999.
 */
export function normalizeRfc3339(text: string): string | undefined {
  return readRfc3339(text)?.utc;
}

/**
 * Both readings of one text at once, for the validator: the instant in ms and its UTC text (`utc` undefined when the
 * instant lies outside years 0001–9999). Undefined when the text is not a real RFC 3339 instant with an offset.
 */
export function readRfc3339(text: string): { ms: number; utc: string | undefined } | undefined {
  const parts = splitRfc3339(text);
  if (parts === undefined) return undefined;
  const inRange = parts.wholeMs >= MIN_SUPPORTED_MS && parts.wholeMs < END_SUPPORTED_MS;
  return {
    ms: parts.wholeMs + Number(`0.${parts.subMsDigits || '0'}`),
    utc: inRange ? `${new Date(parts.wholeMs).toISOString().slice(0, -1)}${parts.subMsDigits}Z` : undefined,
  };
}

/**
 * Whole milliseconds as an exact integer, and the fractional digits beyond the millisecond as text: a double
 * cannot hold nanoseconds of a 2026 instant, and rounding would move `.999999999` into the next second.
 */
function splitRfc3339(text: string): { wholeMs: number; subMsDigits: string } | undefined {
  const m = RFC3339_PATTERN.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', zulu, sign, oh = '0', om = '0'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  // Leap seconds (":60") are rejected: PostgreSQL would silently roll them into the next minute.
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const offsetHours = Number(oh);
  const offsetMinutes = Number(om);
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  const offsetMs = zulu ? 0 : (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute, second, Number(frac.slice(0, 3).padEnd(3, '0')));
  return { wholeMs: utc.getTime() - offsetMs, subMsDigits: frac.slice(3) };
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function daysInMonth(year: number, month: number): number {
  if (month === 2 && isLeapYear(year)) return 29;
  return DAYS_IN_MONTH[month - 1] ?? 0;
}

const isLeapYear = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/**
 * Normalises PostgreSQL's UTC text (`2026-11-26 13:40:47.123456`) to RFC 3339: millisecond precision unless the
 * stored value has microseconds, so that what a client sent at millisecond precision comes back unchanged.
 */
export function formatUtcTimestamp(pgUtcText: string): string {
  const [date = '', time = ''] = pgUtcText.split(' ');
  const [clock = '', fraction = ''] = time.split('.');
  const micros = fraction.padEnd(6, '0');
  const shown = micros.endsWith('000') ? micros.slice(0, 3) : micros;
  return `${date}T${clock}.${shown}Z`;
}

/** The UTC day (`YYYY-MM-DD`) of an instant, as the daily partitions cut them. */
export const utcDayOf = (timestamp: string): string => new Date(timestamp).toISOString().slice(0, 10);

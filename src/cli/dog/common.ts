// Shared pieces of the `dog` CLI: exit codes (include/exits.h), C-compatible number and time
// formatting (printf %f rounding, strftime, ctime), Sheepdog's size printing (strnumber) and
// size parsing (option_parse_size), copy-policy parsing (parse_copy), and the output sinks.
// Everything here is pure or only touches process.stdout/stderr, so it can be unit tested.

import { copiesErrorMessage, tryParseCopies } from '../../ec/policy.js';

// ---------------------------------------------------------------------------------------------
// Exit codes (include/exits.h)
// ---------------------------------------------------------------------------------------------

export const EXIT_SUCCESS = 0; /* command executed successfully */
export const EXIT_FAILURE = 1; /* command failed to execute */
export const EXIT_SYSFAIL = 2; /* something is wrong with the cluster or local host */
export const EXIT_EXISTS = 3; /* the object already exists so cannot be created */
export const EXIT_FULL = 4; /* no more space is left in the cluster */
export const EXIT_MISSING = 5; /* the specified object does not exist */
export const EXIT_USAGE = 64; /* invalid command, arguments or options */

/** Thrown for C's exit(status): unwinds to main(), which returns the status. */
export class DogExit extends Error {
  constructor(readonly code: number) {
    super(`exit(${code})`);
    this.name = 'DogExit';
  }
}

export function exit(code: number): never {
  throw new DogExit(code);
}

// ---------------------------------------------------------------------------------------------
// Output sinks. stdout gets tables and data, stderr gets sd_err()/sd_info() lines (dog's logger
// prints every level to stderr, one message per line).
// ---------------------------------------------------------------------------------------------

export interface Sink {
  out(s: string | Uint8Array): void;
  err(s: string): void;
  /** binary stdout with backpressure (vdi read) */
  outAsync(b: Uint8Array): Promise<void>;
  stdoutIsTTY(): boolean;
  stderrIsTTY(): boolean;
}

export const processSink: Sink = {
  out: (s) => {
    process.stdout.write(s);
  },
  err: (s) => {
    process.stderr.write(s);
  },
  outAsync: (b) =>
    new Promise<void>((resolve, reject) => {
      const ok = process.stdout.write(b, (e) => (e ? reject(e) : undefined));
      if (ok) resolve();
      else process.stdout.once('drain', () => resolve());
    }),
  stdoutIsTTY: () => process.stdout.isTTY === true,
  stderrIsTTY: () => process.stderr.isTTY === true,
};

let sink: Sink = processSink;

export function setSink(s: Sink): Sink {
  const old = sink;
  sink = s;
  return old;
}

export function getSink(): Sink {
  return sink;
}

/** printf to stdout */
export function out(s: string | Uint8Array): void {
  sink.out(s);
}

/** sd_err(): one line on stderr */
export function sdErr(msg: string): void {
  sink.err(msg + '\n');
}

/** sd_info(): dog prints info messages on stderr as well */
export const sdInfo = sdErr;

// ---------------------------------------------------------------------------------------------
// C number formatting
// ---------------------------------------------------------------------------------------------

/**
 * printf("%.*f", digits, x) as glibc does it: the exact binary value rounded to nearest,
 * ties to even (JavaScript's toFixed rounds ties away from zero).
 */
export function cFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return x < 0 ? '-nan' : 'nan';
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  if (a >= 1e21) return (neg ? '-' : '') + a.toFixed(digits);
  const exact = a.toFixed(100); // exact decimal expansion for every double below 1e21
  const dot = exact.indexOf('.');
  const intPart = exact.slice(0, dot);
  const frac = exact.slice(dot + 1);
  const kept = intPart + frac.slice(0, digits);
  const rest = frac.slice(digits);
  let roundUp = false;
  if (rest.length > 0) {
    const first = rest.charCodeAt(0) - 48;
    if (first > 5) roundUp = true;
    else if (first === 5) {
      const tail = rest.slice(1);
      if (/[1-9]/.test(tail)) roundUp = true;
      else roundUp = (kept.charCodeAt(kept.length - 1) - 48) % 2 === 1; // tie: to even
    }
  }
  let digitsStr = kept;
  if (roundUp) {
    const arr = digitsStr.split('');
    let i = arr.length - 1;
    for (; i >= 0; i--) {
      if (arr[i] === '9') arr[i] = '0';
      else {
        arr[i] = String.fromCharCode(arr[i]!.charCodeAt(0) + 1);
        break;
      }
    }
    digitsStr = (i < 0 ? '1' : '') + arr.join('');
  }
  const ip = digitsStr.slice(0, digitsStr.length - digits) || '0';
  const fp = digits > 0 ? '.' + digitsStr.slice(digitsStr.length - digits) : '';
  return (neg ? '-' : '') + ip.replace(/^0+(?=\d)/, '') + fp;
}

/** (int)x for a double, as x86-64 does it (NaN and out-of-range give INT_MIN). */
export function cInt(x: number): number {
  if (!Number.isFinite(x)) return -2147483648;
  const t = Math.trunc(x);
  if (t > 2147483647 || t < -2147483648) return -2147483648;
  return t;
}

/** Byte length of a string as C sees it (UTF-8). */
export function cLen(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** %-Ns (left-justified, width in bytes) */
export function padR(s: string, w: number): string {
  const n = cLen(s);
  return n >= w ? s : s + ' '.repeat(w - n);
}

/** %Ns (right-justified, width in bytes) */
export function padL(s: string | number | bigint, w: number): string {
  const t = String(s);
  const n = cLen(t);
  return n >= w ? t : ' '.repeat(w - n) + t;
}

/** %0Nd-style zero padding of a non-negative integer string */
export function pad0(s: string | number | bigint, w: number): string {
  const t = String(s);
  return t.length >= w ? t : '0'.repeat(w - t.length) + t;
}

export function hex(v: number | bigint): string {
  return (typeof v === 'bigint' ? BigInt.asUintN(64, v) : BigInt(v >>> 0)).toString(16);
}

/** %016" PRIx64 */
export function hex16(v: bigint): string {
  return pad0(BigInt.asUintN(64, v).toString(16), 16);
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

const SIZE_UNITS = ['MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/**
 * Sheepdog's strnumber_raw() / size_to_str(): decimal bytes in raw mode, otherwise the size in
 * MB/GB/... (1024-based) with one decimal below 10 and none from 10 up ("0.0 MB", "4.0 MB",
 * "10 MB", "1.5 GB"). Output is truncated to 20 characters like the C buffer.
 */
export function strnumberRaw(size: bigint | number, raw: boolean): string {
  const v = typeof size === 'bigint' ? BigInt.asUintN(64, size) : BigInt(Math.trunc(size));
  let s: string;
  if (raw) s = v.toString();
  else {
    let x = Number(v);
    x /= 1024 * 1024;
    let i = 0;
    while (i < SIZE_UNITS.length - 1 && x >= 1024) {
      i++;
      x /= 1024;
    }
    s = x >= 10 ? `${cFixed(x, 0)} ${SIZE_UNITS[i]}` : `${cFixed(x, 1)} ${SIZE_UNITS[i]}`;
  }
  return s.length > 20 ? s.slice(0, 20) : s;
}

/** The size_to_str() name used by older dog versions; same format. */
export const sizeToStr = strnumberRaw;

/** C strtod() prefix parse: returns the value and how many characters were consumed. */
export function strtod(s: string): { value: number; end: number } {
  let i = 0;
  while (i < s.length && /[ \t\n\v\f\r]/.test(s[i]!)) i++;
  const start = i;
  let sign = 1;
  if (s[i] === '+' || s[i] === '-') {
    if (s[i] === '-') sign = -1;
    i++;
  }
  const rest = s.slice(i);
  // inf / infinity / nan
  let m = /^(infinity|inf)/i.exec(rest);
  if (m) return { value: sign * Infinity, end: i + m[0].length };
  m = /^nan(\([0-9A-Za-z_]*\))?/i.exec(rest);
  if (m) return { value: NaN, end: i + m[0].length };
  // hexadecimal
  m = /^0[xX](([0-9a-fA-F]+)(\.([0-9a-fA-F]*))?|\.([0-9a-fA-F]+))([pP]([+-]?\d+))?/.exec(rest);
  if (m) {
    const intDigits = m[2] ?? '';
    const fracDigits = m[4] ?? m[5] ?? '';
    let v = 0;
    for (const c of intDigits) v = v * 16 + parseInt(c, 16);
    let f = 1 / 16;
    for (const c of fracDigits) {
      v += parseInt(c, 16) * f;
      f /= 16;
    }
    if (m[7] !== undefined) v *= 2 ** Number(m[7]);
    return { value: sign * v, end: i + m[0].length };
  }
  m = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/.exec(rest);
  if (m) return { value: sign * Number(m[0]), end: i + m[0].length };
  // no conversion: endptr = s
  void start;
  return { value: 0, end: 0 };
}

/** (uint64_t) of a double on x86-64 (gcc): truncation, negative values wrap. */
export function doubleToU64(x: number): bigint {
  if (Number.isNaN(x)) return 0x8000000000000000n;
  if (x >= 18446744073709551616) return 0x8000000000000000n; // cvttsd2si overflow
  if (x <= -9223372036854775808) return 0x8000000000000000n;
  if (!Number.isFinite(x)) return 0x8000000000000000n;
  return BigInt.asUintN(64, BigInt(Math.trunc(x)));
}

const SIZE_SHIFT: Record<string, number> = { p: 5, t: 4, g: 3, m: 2, k: 1, b: 0, '': 0 };

/**
 * option_parse_size(): strtod() then at most one suffix character B/K/M/G/T/P (either case,
 * 1024-based). Returns null (after printing dog's two error lines) when the value is invalid.
 */
export function parseSize(value: string, report = true): bigint | null {
  const { value: v, end } = strtod(value);
  const postfix = value.slice(end);
  if (postfix.length <= 1) {
    const k = postfix.toLowerCase();
    const shift = SIZE_SHIFT[k];
    if (shift !== undefined) {
      let x = v;
      for (let i = 0; i < shift; i++) x *= 1024;
      return doubleToU64(x);
    }
  }
  if (report) {
    sdErr(`Invalid size '${value}'`);
    sdErr('You may use B, K, M, G, T or P suffixes for bytes, kilobytes, megabytes, gigabytes, terabytes and petabytes.');
  }
  return null;
}

/** lib/util.c is_numeric(): non-empty and only decimal digits. */
export function isNumeric(s: string): boolean {
  return s.length > 0 && /^[0-9]+$/.test(s);
}

/** strtol(s, &end, base) prefix parse (no overflow clamping beyond JS safe integers). */
export function strtol(s: string, base = 10): { value: number; end: number } {
  let i = 0;
  while (i < s.length && /[ \t\n\v\f\r]/.test(s[i]!)) i++;
  let sign = 1;
  if (s[i] === '+' || s[i] === '-') {
    if (s[i] === '-') sign = -1;
    i++;
  }
  if ((base === 16 || base === 0) && /^0[xX][0-9a-fA-F]/.test(s.slice(i))) {
    i += 2;
    base = 16;
  } else if (base === 0) base = s[i] === '0' ? 8 : 10;
  const digitRe = base === 16 ? /[0-9a-fA-F]/ : base === 8 ? /[0-7]/ : /[0-9]/;
  const startDigits = i;
  let v = 0;
  while (i < s.length && digitRe.test(s[i]!)) {
    v = v * base + parseInt(s[i]!, base);
    i++;
  }
  if (i === startDigits) return { value: 0, end: 0 };
  return { value: sign * v, end: i };
}

/** C atoi() */
export function atoi(s: string): number {
  const r = strtol(s, 10);
  return r.value | 0;
}

/**
 * parse_copy(): "x" (1..31 replicated copies) or "x:y" (x in 2,4,8,16 data strips, y in 1..15
 * parity strips). Returns {copies: 0} for an invalid string, as upstream does.
 */
export function parseCopy(str: string): { copies: number; copyPolicy: number } {
  const r = tryParseCopies(str.slice(0, 9)); // dog copies the value into char p[10]
  return r ? { copies: r.copies, copyPolicy: r.copyPolicy } : { copies: 0, copyPolicy: 0 };
}

/** ec_policy_to_dp(): data and parity strips of an EC copy_policy byte. */
export function ecPolicyToDp(policy: number): { d: number; p: number } {
  return { d: ((policy >> 4) & 0x0f) * 2, p: policy & 0x0f };
}

/** redundancy_scheme(): "3" or "4:2" */
export function redundancyScheme(copies: number, policy: number): string {
  if (policy > 0) {
    const { d, p } = ecPolicyToDp(policy);
    return `${d}:${p}`;
  }
  return String(copies);
}

export const COPY_ERROR = copiesErrorMessage;

// ---------------------------------------------------------------------------------------------
// Time (local time zone, like localtime_r)
// ---------------------------------------------------------------------------------------------

const WDAY = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime() subset: %Y %m %d %H %M %S %e %a %b %% on local time of `seconds` since the epoch. */
export function strftime(fmt: string, seconds: number | bigint): string {
  const d = new Date(Number(seconds) * 1000);
  return fmt.replace(/%([YmdHMSeab%])/g, (_, c: string) => {
    switch (c) {
      case 'Y':
        return String(d.getFullYear());
      case 'm':
        return pad0(d.getMonth() + 1, 2);
      case 'd':
        return pad0(d.getDate(), 2);
      case 'e':
        return padL(d.getDate(), 2);
      case 'H':
        return pad0(d.getHours(), 2);
      case 'M':
        return pad0(d.getMinutes(), 2);
      case 'S':
        return pad0(d.getSeconds(), 2);
      case 'a':
        return WDAY[d.getDay()]!;
      case 'b':
        return MON[d.getMonth()]!;
      default:
        return '%';
    }
  });
}

/** ctime(3): "Thu Jun 18 17:24:56 2015\n" */
export function ctime(seconds: number | bigint): string {
  return strftime('%a %b %e %H:%M:%S %Y', seconds) + '\n';
}

// ---------------------------------------------------------------------------------------------
// Progress bar (show_progress). Drawn only when stderr is a terminal, so pipes never see it.
// ---------------------------------------------------------------------------------------------

export function renderProgress(done: bigint, total: bigint, raw: boolean, screenWidth: number): string {
  const barLength = screenWidth - 30;
  const pct = total === 0n ? NaN : (Number(done) / Number(total)) * 100;
  let buf = `${padL(cFixed(pct, 1), 5)} % [`.slice(0, Math.max(0, screenWidth - 1));
  for (let i = 0; i < barLength; i++) {
    const bl = BigInt(barLength);
    if ((total * BigInt(i + 1)) / bl <= done) buf += '=';
    else if ((total * BigInt(i)) / bl <= done && done < (total * BigInt(i + 1)) / bl) buf += '>';
    else buf += ' ';
  }
  buf += `] ${strnumberRaw(done, raw)} / ${strnumberRaw(total, raw)}`;
  if (buf.length > screenWidth) buf = buf.slice(0, screenWidth);
  return '\r' + buf + ' '.repeat(Math.max(0, screenWidth - buf.length)) + (done === total ? '\n' : '');
}

export function showProgress(done: bigint | number, total: bigint | number, raw: boolean): void {
  if (!sink.stderrIsTTY()) return;
  const width = process.stderr.columns || 80;
  if (width <= 30) return;
  sink.err(renderProgress(BigInt(done), BigInt(total), raw, width));
}

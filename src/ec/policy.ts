// Erasure-code parameters and the copy_policy byte (include/fec.h, dog/common.c).
//
//   copy_policy = (d/2) << 4 | p     (4 bits each; d is halved so that 16 fits)
//   nr_copies   = d + p              (≤ 31 = SD_MAX_COPIES)
//   copy_policy 0 ⇒ plain replication.

/** SD_MAX_COPIES = SD_EC_MAX_STRIP·2 − 1. */
export const EC_MAX_COPIES = 31;
/** The data-strip counts sheepdog accepts (`-c x:y`, x in 2,4,8,16). */
export const EC_DATA_STRIPS: readonly number[] = Object.freeze([2, 4, 8, 16]);
/** Parity strips: 1..15 (parity < SD_EC_MAX_STRIP). */
export const EC_MAX_PARITY = 15;

/** Bad erasure-code parameters (d, p, policy byte, strip sets). */
export class EcParamError extends RangeError {
  override readonly name = 'EcParamError';
}

/** Throws EcParamError unless d ∈ {2,4,8,16} and p ∈ 1..15 (integers). */
export function validateEc(d: number, p: number): void {
  if (!Number.isInteger(d) || !EC_DATA_STRIPS.includes(d)) {
    throw new EcParamError(`erasure code: d (data strips) must be 2, 4, 8 or 16, got ${d}`);
  }
  if (!Number.isInteger(p) || p < 1 || p > EC_MAX_PARITY) {
    throw new EcParamError(`erasure code: p (parity strips) must be 1 to ${EC_MAX_PARITY}, got ${p}`);
  }
}

/** copy_policy byte for d:p, `(d/2) << 4 | p`. Validates d and p. */
export function ecPolicy(d: number, p: number): number {
  validateEc(d, p);
  return ((d / 2) << 4) | p;
}

/**
 * {d, p} of a non-zero copy_policy byte, as ec_policy_to_dp() computes it (d = 2·high nibble,
 * p = low nibble). Sheep panics on a zero parity nibble; this throws EcParamError instead, and also
 * for values that are not a byte. With `strict` (default) the result must also be a d:p that dog
 * would have produced (d in 2,4,8,16); sheep itself does not check that.
 */
export function ecFromPolicy(policy: number, strict = true): { d: number; p: number } {
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xff) throw new EcParamError(`copy_policy must be a byte, got ${policy}`);
  const p = policy & 0x0f;
  const d = (policy >> 4) * 2;
  if (p === 0) throw new EcParamError(`invalid copy_policy 0x${policy.toString(16).padStart(2, '0')}: no parity strips (0 means replication)`);
  if (strict) validateEc(d, p);
  return { d, p };
}

/** True when copy_policy selects erasure coding (any non-zero value). */
export function isEcPolicy(policy: number): boolean {
  return policy !== 0;
}

/** dog's redundancy display: "4:2" for EC, else the copy count. */
export function redundancyString(copies: number, policy: number): string {
  if (policy === 0) return String(copies);
  const { d, p } = ecFromPolicy(policy, false);
  return `${d}:${p}`;
}

export interface CopiesSpec {
  /** nr_copies: x for replication, d+p for erasure coding. */
  readonly copies: number;
  /** copy_policy: 0 for replication, (d/2)<<4 | p otherwise. */
  readonly copyPolicy: number;
  /** Set for erasure coding. */
  readonly ec?: { readonly d: number; readonly p: number };
}

/** The exact text dog prints (sd_err) for a rejected `-c` value. */
export function copiesErrorMessage(opt: string): string {
  return (
    `Invalid parameter ${opt}\n` +
    'To create replicated vdi, set -c x\n' +
    `  x(1 to ${EC_MAX_COPIES})   - number of replicated copies\n` +
    'To create erasure coded vdi, set -c x:y\n' +
    '  x(2,4,8,16)  - number of data strips\n' +
    '  y(1 to 15)   - number of parity strips'
  );
}

/** `-c` value rejected by dog's rules; the message is dog's. */
export class CopiesParseError extends EcParamError {
  constructor(readonly option: string) {
    super(copiesErrorMessage(option));
  }
}

// dog's is_numeric(): non-empty and every character a decimal digit.
const isNumeric = (s: string): boolean => /^[0-9]+$/.test(s);

/**
 * dog's parse_copy() (dog/common.c), returning null where dog prints the "Invalid parameter" text
 * and exits. Faithful to its quirks:
 * - the value is tokenised with strtok(":"): empty tokens vanish, so ":3" is 3 copies, "4:" is 4
 *   replicated copies, "4::2" is 4:2; tokens after the second are ignored ("4:2:9" is 4:2);
 * - both numbers are kept in a uint8_t, so "257" is 1 copy and "4:258" is 4:2;
 * - dog copies the value into a char[10] with strcpy(); ten or more characters overflow it (undefined
 *   behaviour upstream), and are rejected here.
 */
export function tryParseCopies(str: string): CopiesSpec | null {
  if (str.length > 9) return null;
  const toks = str.split(':').filter((t) => t.length > 0);
  const n1 = toks[0];
  const n2 = toks[1];
  if (n1 === undefined || !isNumeric(n1) || (n2 !== undefined && !isNumeric(n2))) return null;
  const copy = Number.parseInt(n1, 10) & 0xff;
  if (copy > EC_MAX_COPIES) return null;
  if (n2 === undefined) return copy === 0 ? null : { copies: copy, copyPolicy: 0 };
  if (copy !== 2 && copy !== 4 && copy !== 8 && copy !== 16) return null;
  const parity = Number.parseInt(n2, 10) & 0xff;
  if (parity >= 16 || parity === 0) return null;
  return { copies: copy + parity, copyPolicy: ((copy / 2) << 4) + parity, ec: { d: copy, p: parity } };
}

/** parse_copy() that throws CopiesParseError (message = dog's) instead of returning null. */
export function parseCopies(str: string): CopiesSpec {
  const r = tryParseCopies(str);
  if (!r) throw new CopiesParseError(str);
  return r;
}

// Store keys: what a node's Store files an object under. A whole (replicated) object is keyed by its oid;
// an erasure-coded strip file (`obj/<oid>_<ec_index>`) by its oid plus (ec_index + 1)·2^64. The oid bits
// stay untouched, so oid helpers that mask bits (oidToVid, isDataObj...) work on either kind of key, and
// recovery's bookkeeping (pending, in flight, suspects) tells strips of one object apart.
import { EC_MAX_COPIES } from '../ec/policy.js';

const OID_BITS = 64n;
const OID_MASK = (1n << OID_BITS) - 1n;

/** The key of strip `ecIndex` (0..30) of `oid`. */
export function stripKey(oid: bigint, ecIndex: number): bigint {
  if (!Number.isInteger(ecIndex) || ecIndex < 0 || ecIndex >= EC_MAX_COPIES) throw new RangeError(`ec_index must be 0..${EC_MAX_COPIES - 1}, got ${ecIndex}`);
  if (oid < 0n || oid > OID_MASK) throw new RangeError(`oid ${oid.toString(16)} is not a u64`);
  return oid | (BigInt(ecIndex + 1) << OID_BITS);
}

/** The object id of a key (itself for a whole object). */
export function keyOid(key: bigint): bigint {
  return key & OID_MASK;
}

/** The strip index of a key, or -1 for a whole object. */
export function keyStripIndex(key: bigint): number {
  return Number(key >> OID_BITS) - 1;
}

export function isStripKey(key: bigint): boolean {
  return key > OID_MASK;
}

/** For logs: `<oid>` or `<oid>_<idx>`, as the file is named. */
export function keyName(key: bigint): string {
  const hex = keyOid(key).toString(16).padStart(16, '0');
  return isStripKey(key) ? `${hex}_${keyStripIndex(key)}` : hex;
}

/** Parses an object file name (`<16 hex>` or `<16 hex>_<idx>`) into a key; null for anything else. */
export function parseKeyName(name: string): bigint | null {
  const m = /^([0-9a-f]{16})(?:_(\d{1,2}))?$/.exec(name);
  if (!m) return null;
  const oid = BigInt(`0x${m[1]}`);
  if (m[2] === undefined) return oid;
  const idx = Number(m[2]);
  return idx < EC_MAX_COPIES ? stripKey(oid, idx) : null;
}

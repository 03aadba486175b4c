// 64-bit FNV-1a as Sheepdog uses it (include/sheepdog_proto.h; sheet section 8):
//   fnv_64a_buf: for each byte h ^= b; h *= 0x100000001b3 (mod 2^64)
//   fnv_64a_64(v, h): the same over the 8 bytes of v, little-endian
//   sd_hash(buf) = g(fnv_64a_buf(buf, INIT)),  g(h) = sd_hash_next(h) = fnv_64a_64(h, h)
//   sd_hash_oid(oid) = g(fnv_64a_64(oid, INIT))
//
// The bigint functions are the reference API. The *HL variants keep the 64-bit state as two
// unsigned 32-bit halves (hi, lo) in plain numbers and write results into a caller-supplied
// Uint32Array(2) [hi, lo], so the placement hot path allocates nothing and uses no BigInt.
// The prime is 2^40 + 0x1b3, so h*prime = (h << 40) + h*0x1b3: in halves,
//   lo' = (lo*0x1b3) mod 2^32,  hi' = hi*0x1b3 + carry(lo*0x1b3) + (lo << 8)   (mod 2^32).
const MASK64 = (1n << 64n) - 1n;

export const FNV1A_64_INIT = 0xcbf29ce484222325n;
export const FNV_64_PRIME = 0x100000001b3n;
export const FNV1A_INIT_HI = 0xcbf29ce4;
export const FNV1A_INIT_LO = 0x84222325;

// One FNV-1a step on the halves, all in int32 arithmetic:
//   lo*0x1b3 = (lo>>>16)*0x1b3*2^16 + (lo&0xffff)*0x1b3, so its carry out of 32 bits is
//   ((lo>>>16)*0x1b3 + (((lo&0xffff)*0x1b3)>>>16)) >>> 16  (every product < 2^25).
// Intermediate values may be negative int32s; they are stored through a Uint32Array or >>>0.

/** fnv_64a_buf over buf[off, off+len) starting from (hi, lo); result in out = [hi, lo]. */
export function fnv64aBytesHL(buf: Uint8Array, off: number, len: number, hi: number, lo: number, out: Uint32Array): Uint32Array {
  for (let i = off, end = off + len; i < end; i++) {
    lo ^= buf[i]!;
    const carry = ((lo >>> 16) * 0x1b3 + (((lo & 0xffff) * 0x1b3) >>> 16)) >>> 16;
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) | 0;
    lo = Math.imul(lo, 0x1b3);
  }
  out[0] = hi;
  out[1] = lo;
  return out;
}

/** fnv_64a_64(v, h) with v = (vHi, vLo) and h = (hi, lo); result in out = [hi, lo]. */
export function fnv64aU64HL(vHi: number, vLo: number, hi: number, lo: number, out: Uint32Array): Uint32Array {
  // the 8 little-endian bytes of v: vLo's bytes 0..3, then vHi's bytes 0..3
  for (let k = 0; k < 8; k++) {
    lo ^= ((k < 4 ? vLo : vHi) >>> ((k & 3) << 3)) & 0xff;
    const carry = ((lo >>> 16) * 0x1b3 + (((lo & 0xffff) * 0x1b3) >>> 16)) >>> 16;
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) | 0;
    lo = Math.imul(lo, 0x1b3);
  }
  out[0] = hi;
  out[1] = lo;
  return out;
}

/** g(h) = sd_hash_next(h) = fnv_64a_64(h, h); result in out = [hi, lo]. */
export function sdHashNextHL(hi: number, lo: number, out: Uint32Array): Uint32Array {
  return fnv64aU64HL(hi, lo, hi, lo, out);
}

/** sd_hash_oid(oid) for oid = (oidHi, oidLo); result in out = [hi, lo]. */
export function sdHashOidHL(oidHi: number, oidLo: number, out: Uint32Array): Uint32Array {
  fnv64aU64HL(oidHi, oidLo, FNV1A_INIT_HI, FNV1A_INIT_LO, out);
  return fnv64aU64HL(out[0]!, out[1]!, out[0]!, out[1]!, out);
}

/** sd_hash(buf[off, off+len)); result in out = [hi, lo]. */
export function sdHashHL(buf: Uint8Array, off: number, len: number, out: Uint32Array): Uint32Array {
  fnv64aBytesHL(buf, off, len, FNV1A_INIT_HI, FNV1A_INIT_LO, out);
  return fnv64aU64HL(out[0]!, out[1]!, out[0]!, out[1]!, out);
}

// ---------------------------------------------------------------------------------------------
// bigint API
// ---------------------------------------------------------------------------------------------

export const hl = (hi: number, lo: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
export const hiOf = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);
export const loOf = (v: bigint): number => Number(v & 0xffffffffn);

const scratch = new Uint32Array(2);
const asU64 = (v: bigint): bigint => v & MASK64;

export function fnv64aBytes(buf: Uint8Array, h: bigint = FNV1A_64_INIT): bigint {
  const v = asU64(h);
  fnv64aBytesHL(buf, 0, buf.length, hiOf(v), loOf(v), scratch);
  return hl(scratch[0]!, scratch[1]!);
}

export function fnv64aU64(value: bigint, h: bigint = FNV1A_64_INIT): bigint {
  const v = asU64(value), hv = asU64(h);
  fnv64aU64HL(hiOf(v), loOf(v), hiOf(hv), loOf(hv), scratch);
  return hl(scratch[0]!, scratch[1]!);
}

/** g(h) = fnv_64a_64(h, h): the next value of a vnode hash chain. */
export function sdHashNext(h: bigint): bigint {
  return fnv64aU64(h, h);
}

export function sdHash(buf: Uint8Array): bigint {
  return sdHashNext(fnv64aBytes(buf));
}

/** Ring position of an object id. */
export function sdHashOid(oid: bigint): bigint {
  return sdHashNext(fnv64aU64(oid));
}

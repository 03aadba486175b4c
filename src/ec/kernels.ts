// Bulk GF(2^8) kernels: out = Σ c_j · src_j over whole strips.
//
// The hot loops read four bytes at a time through Uint32Array views and look each byte up in the
// 256-byte multiplication row of its coefficient (a view into GF_MUL, so no per-codec tables are
// built). Sources are consumed four (or two, or one) per pass, the first pass assigns and the later
// ones accumulate, so `out` never needs clearing. Byte order does not matter: every byte of a word is
// multiplied on its own and put back in the same lane.
import { GF_MUL, gfMulRow } from './gf256.js';
import { simdKernel } from './simd.js';

function dot4(o: Uint32Array, t0: Uint8Array, t1: Uint8Array, t2: Uint8Array, t3: Uint8Array, s0: Uint32Array, s1: Uint32Array, s2: Uint32Array, s3: Uint32Array, acc: boolean): void {
  const n = o.length;
  if (acc) {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!, b = s1[k]!, c = s2[k]!, e = s3[k]!;
      o[k] ^=
        (t0[a & 255]! ^ t1[b & 255]! ^ t2[c & 255]! ^ t3[e & 255]!) |
        ((t0[(a >>> 8) & 255]! ^ t1[(b >>> 8) & 255]! ^ t2[(c >>> 8) & 255]! ^ t3[(e >>> 8) & 255]!) << 8) |
        ((t0[(a >>> 16) & 255]! ^ t1[(b >>> 16) & 255]! ^ t2[(c >>> 16) & 255]! ^ t3[(e >>> 16) & 255]!) << 16) |
        ((t0[a >>> 24]! ^ t1[b >>> 24]! ^ t2[c >>> 24]! ^ t3[e >>> 24]!) << 24);
    }
  } else {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!, b = s1[k]!, c = s2[k]!, e = s3[k]!;
      o[k] =
        (t0[a & 255]! ^ t1[b & 255]! ^ t2[c & 255]! ^ t3[e & 255]!) |
        ((t0[(a >>> 8) & 255]! ^ t1[(b >>> 8) & 255]! ^ t2[(c >>> 8) & 255]! ^ t3[(e >>> 8) & 255]!) << 8) |
        ((t0[(a >>> 16) & 255]! ^ t1[(b >>> 16) & 255]! ^ t2[(c >>> 16) & 255]! ^ t3[(e >>> 16) & 255]!) << 16) |
        ((t0[a >>> 24]! ^ t1[b >>> 24]! ^ t2[c >>> 24]! ^ t3[e >>> 24]!) << 24);
    }
  }
}

function dot2(o: Uint32Array, t0: Uint8Array, t1: Uint8Array, s0: Uint32Array, s1: Uint32Array, acc: boolean): void {
  const n = o.length;
  if (acc) {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!, b = s1[k]!;
      o[k] ^=
        (t0[a & 255]! ^ t1[b & 255]!) |
        ((t0[(a >>> 8) & 255]! ^ t1[(b >>> 8) & 255]!) << 8) |
        ((t0[(a >>> 16) & 255]! ^ t1[(b >>> 16) & 255]!) << 16) |
        ((t0[a >>> 24]! ^ t1[b >>> 24]!) << 24);
    }
  } else {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!, b = s1[k]!;
      o[k] =
        (t0[a & 255]! ^ t1[b & 255]!) |
        ((t0[(a >>> 8) & 255]! ^ t1[(b >>> 8) & 255]!) << 8) |
        ((t0[(a >>> 16) & 255]! ^ t1[(b >>> 16) & 255]!) << 16) |
        ((t0[a >>> 24]! ^ t1[b >>> 24]!) << 24);
    }
  }
}

function dot1(o: Uint32Array, t0: Uint8Array, s0: Uint32Array, acc: boolean): void {
  const n = o.length;
  if (acc) {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!;
      o[k] ^= t0[a & 255]! | (t0[(a >>> 8) & 255]! << 8) | (t0[(a >>> 16) & 255]! << 16) | (t0[a >>> 24]! << 24);
    }
  } else {
    for (let k = 0; k < n; k++) {
      const a = s0[k]!;
      o[k] = t0[a & 255]! | (t0[(a >>> 8) & 255]! << 8) | (t0[(a >>> 16) & 255]! << 16) | (t0[a >>> 24]! << 24);
    }
  }
}

/** Byte-at-a-time fallback for views that are not 4-byte aligned (or odd lengths). */
function dotBytes(out: Uint8Array, coefs: readonly number[], srcs: readonly Uint8Array[]): void {
  const n = out.length;
  let first = true;
  for (let j = 0; j < coefs.length; j++) {
    const base = coefs[j]! << 8;
    const s = srcs[j]!;
    if (first) {
      for (let k = 0; k < n; k++) out[k] = GF_MUL[base | s[k]!]!;
      first = false;
    } else {
      for (let k = 0; k < n; k++) out[k] ^= GF_MUL[base | s[k]!]!;
    }
  }
  if (first) out.fill(0);
}

const aligned = (v: Uint8Array): boolean => (v.byteOffset & 3) === 0;
const words = (v: Uint8Array): Uint32Array => new Uint32Array(v.buffer, v.byteOffset, v.length >>> 2);

/**
 * out = Σ coefs[j] · srcs[j] (GF(2^8), bytewise). Every source must be at least out.length bytes;
 * only the first out.length bytes are read. `out` must not overlap a source.
 */
export function gfDot(out: Uint8Array, coefs: ArrayLike<number>, srcs: readonly Uint8Array[]): void {
  if (coefs.length !== srcs.length) throw new RangeError(`gfDot: ${coefs.length} coefficients for ${srcs.length} sources`);
  const n = out.length;
  const cs: number[] = [];
  const ss: Uint8Array[] = [];
  let allAligned = (n & 3) === 0 && aligned(out);
  for (let j = 0; j < coefs.length; j++) {
    const c = coefs[j]! & 0xff;
    const s = srcs[j]!;
    if (s.length < n) throw new RangeError(`gfDot: source ${j} has ${s.length} bytes, need ${n}`);
    if (c === 0) continue; // contributes nothing
    cs.push(c);
    ss.push(n === s.length ? s : s.subarray(0, n));
    if (!aligned(s)) allAligned = false;
  }
  if (cs.length === 0) {
    out.fill(0);
    return;
  }
  if (!allAligned) {
    dotBytes(out, cs, ss);
    return;
  }
  const o = words(out);
  let j = 0;
  let acc = false;
  for (; j + 4 <= cs.length; j += 4, acc = true) {
    dot4(o, gfMulRow(cs[j]!), gfMulRow(cs[j + 1]!), gfMulRow(cs[j + 2]!), gfMulRow(cs[j + 3]!), words(ss[j]!), words(ss[j + 1]!), words(ss[j + 2]!), words(ss[j + 3]!), acc);
  }
  if (j + 2 <= cs.length) {
    dot2(o, gfMulRow(cs[j]!), gfMulRow(cs[j + 1]!), words(ss[j]!), words(ss[j + 1]!), acc);
    j += 2;
    acc = true;
  }
  if (j < cs.length) dot1(o, gfMulRow(cs[j]!), words(ss[j]!), acc);
}

// ---------------------------------------------------------------------------------------------
// Several outputs from one set of sources, on the fastest kernel available
// ---------------------------------------------------------------------------------------------

/** Which bulk kernel gfDotMany uses: WebAssembly SIMD when the runtime has it, else JS. */
export type EcKernel = 'simd' | 'js';

/** Below this many bytes per strip the JS loop wins over copying through wasm memory. */
const SIMD_MIN_BYTES = 1024;

let preferred: EcKernel = process.env.SHEEP_EC_KERNEL === 'js' ? 'js' : 'simd';

/** Selects the kernel ('simd' falls back to 'js' when unavailable); returns the one now in use. */
export function setEcKernel(kind: EcKernel): EcKernel {
  preferred = kind;
  return ecKernel();
}

/** The kernel gfDotMany uses for large strips. */
export function ecKernel(): EcKernel {
  return preferred === 'simd' && simdKernel() ? 'simd' : 'js';
}

/**
 * outs[r] = Σ_j coefs[r·n + j] · srcs[j] for every row r (n = srcs.length), over the first
 * outs[r].length bytes, which must be equal for all outputs and ≤ every source's length.
 */
export function gfDotMany(outs: readonly Uint8Array[], coefs: Uint8Array, srcs: readonly Uint8Array[]): void {
  const n = srcs.length;
  if (coefs.length < outs.length * n) throw new RangeError(`gfDotMany: ${coefs.length} coefficients for ${outs.length}×${n}`);
  if (outs.length === 0) return;
  const len = outs[0]!.length;
  for (const o of outs) if (o.length !== len) throw new RangeError('gfDotMany: outputs differ in length');
  for (let j = 0; j < n; j++) if (srcs[j]!.length < len) throw new RangeError(`gfDotMany: source ${j} has ${srcs[j]!.length} bytes, need ${len}`);
  const k = preferred === 'simd' && len >= SIMD_MIN_BYTES && n >= 1 && n <= 16 ? simdKernel() : null;
  if (k) {
    k.dotMany(outs, coefs, srcs, len);
    return;
  }
  for (let r = 0; r < outs.length; r++) gfDot(outs[r]!, coefs.subarray(r * n, (r + 1) * n), srcs);
}

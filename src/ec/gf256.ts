// GF(2^8) arithmetic as Sheepdog's lib/fec.c (zfec/Rizzo) defines it.
//
// Field: polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d; zfec spells it "101110001", lowest power first),
// generator α = x = 2. The tables below are built the same way and are byte-identical to fec.c's
// gf_exp[510] (doubled so that exp[log a + log b] needs no modulo), gf_log[256] (log 0 = 255 sentinel),
// inverse[256] (inverse 0 = 0) and gf_mul_table[256][256] (row/column 0 forced to zero).
// ISA-L, sheep's default accelerator on SSSE3 CPUs, uses the same polynomial (its tables reduce with
// 0x1d), so both code paths compute the same products.

/** The reduction polynomial, x^8 + x^4 + x^3 + x^2 + 1. */
export const GF_POLY = 0x11d;

/** exp[i] = α^i for i in 0..509 (the second half repeats the first). */
export const GF_EXP: Uint8Array = new Uint8Array(510);
/** log[x] for x ≠ 0; log[0] = 255 like fec.c (never used as a real logarithm). */
export const GF_LOG: Uint8Array = new Uint8Array(256);
/** Multiplicative inverse; GF_INV[0] = 0. */
export const GF_INV: Uint8Array = new Uint8Array(256);
/**
 * Full 64 KiB multiplication table: GF_MUL[(a << 8) | b] = a·b. `gfMulRow(c)` hands out the 256-byte
 * row of a constant, which is what the bulk kernels index with the data bytes.
 */
export const GF_MUL: Uint8Array = new Uint8Array(65536);

(function buildTables(): void {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x;
    GF_LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= GF_POLY;
  }
  GF_LOG[0] = 255;
  for (let i = 0; i < 255; i++) GF_EXP[i + 255] = GF_EXP[i]!;
  GF_INV[0] = 0;
  for (let a = 1; a < 256; a++) GF_INV[a] = GF_EXP[255 - GF_LOG[a]!]!;
  for (let a = 1; a < 256; a++) {
    const la = GF_LOG[a]!;
    const row = a << 8;
    for (let b = 1; b < 256; b++) GF_MUL[row | b] = GF_EXP[la + GF_LOG[b]!]!;
  }
})();

/** a·b in GF(2^8). */
export function gfMul(a: number, b: number): number {
  return GF_MUL[((a & 0xff) << 8) | (b & 0xff)]!;
}

/** 1/a; throws for 0. */
export function gfInv(a: number): number {
  if ((a & 0xff) === 0) throw new RangeError('GF(2^8): 0 has no inverse');
  return GF_INV[a & 0xff]!;
}

/** a/b; throws for b = 0. */
export function gfDiv(a: number, b: number): number {
  return gfMul(a, gfInv(b));
}

/** α^n for any integer n ≥ 0 (fec.c's gf_exp[modnn(n)]). */
export function gfPow(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`GF(2^8): exponent must be a non-negative integer, got ${n}`);
  return GF_EXP[n % 255]!;
}

/** The 256-byte multiplication row of constant c: row[x] = c·x (a view into GF_MUL, not a copy). */
export function gfMulRow(c: number): Uint8Array {
  const base = (c & 0xff) << 8;
  return GF_MUL.subarray(base, base + 256);
}

/** C = A·B for row-major A (rows×inner) and B (inner×cols). */
export function gfMatMul(a: Uint8Array, b: Uint8Array, rows: number, inner: number, cols: number): Uint8Array {
  if (a.length < rows * inner || b.length < inner * cols) throw new RangeError('gfMatMul: matrix smaller than its dimensions');
  const c = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let col = 0; col < cols; col++) {
      let acc = 0;
      for (let i = 0; i < inner; i++) acc ^= GF_MUL[(a[r * inner + i]! << 8) | b[i * cols + col]!]!;
      c[r * cols + col] = acc;
    }
  }
  return c;
}

/**
 * Inverse of the n×n row-major matrix m (m is left untouched). Plain Gauss–Jordan with row swaps;
 * the inverse of a non-singular matrix is unique, so this agrees with fec.c's _invert_mat/_invert_vdm
 * and ISA-L's gf_invert_matrix. Throws for a singular matrix.
 */
export function gfInvertMatrix(m: Uint8Array, n: number): Uint8Array {
  if (m.length < n * n) throw new RangeError('gfInvertMatrix: matrix smaller than n×n');
  const a = m.slice(0, n * n);
  const inv = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && a[pivot * n + col] === 0) pivot++;
    if (pivot === n) throw new RangeError(`GF(2^8): singular ${n}×${n} matrix`);
    if (pivot !== col) {
      for (let k = 0; k < n; k++) {
        const t = a[col * n + k]!;
        a[col * n + k] = a[pivot * n + k]!;
        a[pivot * n + k] = t;
        const u = inv[col * n + k]!;
        inv[col * n + k] = inv[pivot * n + k]!;
        inv[pivot * n + k] = u;
      }
    }
    const s = GF_INV[a[col * n + col]!]! << 8;
    for (let k = 0; k < n; k++) {
      a[col * n + k] = GF_MUL[s | a[col * n + k]!]!;
      inv[col * n + k] = GF_MUL[s | inv[col * n + k]!]!;
    }
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r * n + col]!;
      if (f === 0) continue;
      const fr = f << 8;
      for (let k = 0; k < n; k++) {
        a[r * n + k] ^= GF_MUL[fr | a[col * n + k]!]!;
        inv[r * n + k] ^= GF_MUL[fr | inv[col * n + k]!]!;
      }
    }
  }
  return inv;
}

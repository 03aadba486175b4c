// Optional accelerator: a WebAssembly SIMD GF(2^8) dot product, the same split-nibble technique ISA-L's
// SSSE3 kernels use (pshufb ≙ i8x16.swizzle). For each coefficient c two 16-byte tables hold c·x for
// the low nibble x and c·(x<<4) for the high nibble; a 16-byte vector of data is multiplied with two
// swizzles and an XOR. The module is tiny and assembled below byte by byte (no toolchain, no .wasm
// file). Where WebAssembly SIMD is unavailable, simdKernel() returns null and the JS kernels run.
//
// Memory layout of the module's own 1 MiB memory:
//   [0, 8192)                       nibble tables, 32 bytes per (row, source)
//   [8192, 8192 + 16·CHUNK)         up to 16 source chunks
//   [8192 + 16·CHUNK, …+15·CHUNK)   up to 15 output chunks
// Strips are streamed through it CHUNK bytes at a time, so any length works.
import { gfMulRow } from './gf256.js';

// The project compiles without DOM types, so declare the slice of the WebAssembly API used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}
declare const WebAssembly: WasmApi | undefined;
type DotFn = (n: number, src: number, stride: number, out: number, len: number, tbl: number) => void;

const CHUNK = 32 * 1024;
const TABLES = 0;
const TABLE_BYTES = 8192;
const SRC = TABLE_BYTES;
const MAX_SRCS = 16;
const OUT = SRC + MAX_SRCS * CHUNK;
const MAX_OUTS = 15;
const PAGES = Math.ceil((OUT + MAX_OUTS * CHUNK) / 65536);

// --- a minimal WebAssembly assembler for one function ---------------------------------------------
const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number): number[] => [0x20, i];
const set = (i: number): number[] => [0x21, i];
const tee = (i: number): number[] => [0x22, i];
const i32c = (n: number): number[] => [0x41, ...uleb(n)]; // only small non-negative constants (< 64)
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const v128Load = (offset: number): number[] => [...simd(0x00), 0, ...uleb(offset)];
const v128Store: number[] = [...simd(0x0b), 0, 0];
const v128Zero: number[] = [...simd(0x0c), ...new Array<number>(16).fill(0)];
const I8X16_SWIZZLE = 0x0e;
const I8X16_SPLAT = 0x0f;
const V128_AND = 0x4e;
const V128_XOR = 0x51;
const I8X16_SHR_U = 0x6d;
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = 0x0b;
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const I32_GE_U = 0x4f;
const BR = 0x0c;
const BR_IF = 0x0d;

/**
 * dot(n, src, stride, out, len, tbl): for pos in 0..len step 16,
 *   out[pos..+16] = XOR over j < n of  swz(tbl[32j..], src_j[pos] & 15) ^ swz(tbl[32j+16..], src_j[pos] >> 4)
 * with src_j = src + j·stride. len must be a multiple of 16 and n ≥ 1.
 */
function dotModule(): Uint8Array {
  // params 0..5: n src stride out len tbl; locals 6..9 (i32): pos j sp tp; 10..12 (v128): acc x mask
  const [n, src, stride, out, len, tbl] = [0, 1, 2, 3, 4, 5];
  const [pos, j, sp, tp, acc, x, mask] = [6, 7, 8, 9, 10, 11, 12];
  const body = [
    ...i32c(15), ...simd(I8X16_SPLAT), ...set(mask),
    ...BLOCK, ...LOOP,
    ...get(pos), ...get(len), I32_GE_U, BR_IF, 1,
    ...v128Zero, ...set(acc),
    ...i32c(0), ...set(j),
    ...get(src), ...get(pos), I32_ADD, ...set(sp),
    ...get(tbl), ...set(tp),
    ...LOOP,
    ...get(sp), ...v128Load(0), ...set(x),
    ...get(acc),
    ...get(tp), ...v128Load(0), ...get(x), ...get(mask), ...simd(V128_AND), ...simd(I8X16_SWIZZLE), ...simd(V128_XOR),
    ...get(tp), ...v128Load(16), ...get(x), ...i32c(4), ...simd(I8X16_SHR_U), ...simd(I8X16_SWIZZLE), ...simd(V128_XOR),
    ...set(acc),
    ...get(sp), ...get(stride), I32_ADD, ...set(sp),
    ...get(tp), ...i32c(32), I32_ADD, ...set(tp),
    ...get(j), ...i32c(1), I32_ADD, ...tee(j), ...get(n), I32_LT_U, BR_IF, 0,
    END,
    ...get(out), ...get(pos), I32_ADD, ...get(acc), ...v128Store,
    ...get(pos), ...i32c(16), I32_ADD, ...set(pos),
    BR, 0,
    END, END, END,
  ];
  const func = [2, 4, I32, 3, V128, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, I32, I32, I32, I32, I32, I32, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, ...uleb(PAGES)]),
    ...section(7, [2, ...name('dot'), 0x00, 0, ...name('mem'), 0x02, 0]),
    ...section(10, [1, ...uleb(func.length), ...func]),
  ]);
}

export interface SimdKernel {
  /**
   * outs[r] = Σ_j coefs[r·n + j] · srcs[j] over the first `len` bytes (n = srcs.length ≤ 16).
   * Outputs must not overlap sources.
   */
  dotMany(outs: readonly Uint8Array[], coefs: Uint8Array, srcs: readonly Uint8Array[], len: number): void;
}

class WasmSimdKernel implements SimdKernel {
  private readonly mem: Uint8Array;

  constructor(private readonly dot: DotFn, memory: WasmMemory) {
    this.mem = new Uint8Array(memory.buffer);
  }

  dotMany(outs: readonly Uint8Array[], coefs: Uint8Array, srcs: readonly Uint8Array[], len: number): void {
    const n = srcs.length;
    if (n < 1 || n > MAX_SRCS) throw new RangeError(`SIMD kernel: 1..${MAX_SRCS} sources, got ${n}`);
    const perBatch = Math.min(MAX_OUTS, Math.floor(TABLE_BYTES / (32 * n)));
    for (let r0 = 0; r0 < outs.length; r0 += perBatch) {
      const rows = Math.min(perBatch, outs.length - r0);
      this.tables(coefs, r0, rows, n);
      for (let off = 0; off < len; off += CHUNK) {
        const c = Math.min(CHUNK, len - off);
        for (let j = 0; j < n; j++) this.mem.set(srcs[j]!.subarray(off, off + c), SRC + j * CHUNK);
        const rounded = (c + 15) & ~15; // bytes past c are stale; their results are dropped
        for (let r = 0; r < rows; r++) {
          const at = OUT + r * CHUNK;
          this.dot(n, SRC, CHUNK, at, rounded, TABLES + r * n * 32);
          outs[r0 + r]!.set(this.mem.subarray(at, at + c), off);
        }
      }
    }
  }

  private tables(coefs: Uint8Array, r0: number, rows: number, n: number): void {
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        const row = gfMulRow(coefs[(r0 + r) * n + j]!);
        const t = TABLES + (r * n + j) * 32;
        for (let i = 0; i < 16; i++) {
          this.mem[t + i] = row[i]!;
          this.mem[t + 16 + i] = row[i << 4]!;
        }
      }
    }
  }
}

let cached: SimdKernel | null | undefined;

/** The WebAssembly SIMD kernel, or null where the runtime lacks WebAssembly SIMD. */
export function simdKernel(): SimdKernel | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    const bytes = dotModule();
    const wa = typeof WebAssembly === 'object' ? WebAssembly : undefined;
    if (wa && wa.validate(bytes)) {
      const inst = new wa.Instance(new wa.Module(bytes));
      const k = new WasmSimdKernel(inst.exports.dot as DotFn, inst.exports.mem as WasmMemory);
      if (selfTest(k)) cached = k;
    }
  } catch {
    cached = null;
  }
  return cached;
}

/** Cross-checks the kernel against table multiplication once (odd length, two rows, three sources). */
function selfTest(k: SimdKernel): boolean {
  const len = 1000;
  const srcs = [0, 1, 2].map((j) => Uint8Array.from({ length: len }, (_, i) => (i * 37 + j * 101 + ((i * i) >> 3)) & 0xff));
  const coefs = new Uint8Array([0x00, 0x01, 0x8e, 0xff, 0x1d, 0x02]);
  const outs = [new Uint8Array(len), new Uint8Array(len)];
  k.dotMany(outs, coefs, srcs, len);
  for (let r = 0; r < 2; r++) {
    for (let i = 0; i < len; i++) {
      let e = 0;
      for (let j = 0; j < 3; j++) e ^= gfMulRow(coefs[r * 3 + j]!)[srcs[j]![i]!]!;
      if (outs[r]![i] !== e) return false;
    }
  }
  return true;
}

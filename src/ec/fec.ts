// Sheepdog 1.0's Reed–Solomon code (lib/fec.c, zfec-derived; include/fec.h), byte-compatible with
// strips written by real sheep on either of its code paths (zfec C or ISA-L SSE, same matrix/field).
//
// Generator matrix (fec_new(d, d+p)): an extended Vandermonde matrix V of d+p rows whose evaluation
// points are 0, 1, α, α², …: row 0 = [1, 0, …, 0], row r ≥ 1 = [α^((r−1)·c)] for column c. It is made
// systematic by right-multiplying with the inverse of its top d×d block: E = V · V_top⁻¹, so rows
// 0..d−1 are the identity and row d+i holds the coefficients of parity strip i. Parity rows depend
// only on d and the row number, so a d:p code's parity rows are the first p rows of d:15's.
// Any d rows of E are independent (Vandermonde with distinct points), so any d strips rebuild all.
import { GF_EXP, gfInvertMatrix, gfMatMul, GF_MUL } from './gf256.js';
import { gfDotMany } from './kernels.js';
import { EcParamError, validateEc } from './policy.js';
import { assertStripeMultiple, joinStripes, SD_EC_DATA_STRIPE_SIZE, splitStripes } from './strips.js';

/** A strip buffer, or null where the strip is missing. */
export type MaybeStrip = Uint8Array | null | undefined;

/** The (d+p)×d systematic generator matrix, row-major, exactly as fec_new() leaves enc_matrix. */
export function encodeMatrix(d: number, p: number): Uint8Array {
  validateEc(d, p);
  const n = d + p;
  const v = new Uint8Array(n * d);
  v[0] = 1;
  for (let r = 1; r < n; r++) for (let c = 0; c < d; c++) v[r * d + c] = GF_EXP[((r - 1) * c) % 255]!;
  const topInv = gfInvertMatrix(v.subarray(0, d * d), d);
  const bottom = gfMatMul(v.subarray(d * d), topInv, p, d, d);
  const e = new Uint8Array(n * d);
  for (let i = 0; i < d; i++) e[i * d + i] = 1;
  e.set(bottom, d * d);
  return e;
}

export interface EcCodec {
  /** Data strips per stripe. */
  readonly d: number;
  /** Parity strips per stripe. */
  readonly p: number;
  /** d + p: strips per stripe = replicas = nr_copies. */
  readonly n: number;
  /** 512/d: bytes of one strip of one stripe. */
  readonly stripSize: number;
  /** copy_policy byte, (d/2)<<4 | p. */
  readonly copyPolicy: number;
  /** (d+p)×d generator matrix (row-major); a fresh copy on every read. */
  readonly matrix: Uint8Array;
  /** Parity strips (p × 512/d bytes) of one 512-byte stripe, like ec_encode(). */
  encodeStripe(stripe: Uint8Array): Uint8Array[];
  /**
   * All d+p strip files of an object (or of a stripe-aligned range of one): strip i is strip i of every
   * stripe, data.length/d bytes. `out` (d+p buffers of at least that size) avoids allocation; otherwise
   * the strips are views into one new buffer.
   */
  encodeObject(data: Uint8Array, out?: Uint8Array[]): Uint8Array[];
  /** The p parity strip files computed from the d data strip files (already split). */
  encodeParity(dataStrips: readonly Uint8Array[], out?: Uint8Array[]): Uint8Array[];
  /** The object bytes from any ≥ d of its d+p strip files (null/undefined where missing). */
  decodeObject(strips: readonly MaybeStrip[], out?: Uint8Array): Uint8Array;
  /**
   * Rebuilds the strips listed in `missing` (data or parity indexes, any order) from the first d
   * other strips present, in index order — the choice sheep's recovery and dog's vdi check make.
   * Returns them in the order of `missing`.
   */
  reconstruct(strips: readonly MaybeStrip[], missing: readonly number[], out?: Uint8Array[]): Uint8Array[];
  /**
   * Coefficient rows (outputs.length × d) that produce strips `outputs` from strips `inputs`
   * (exactly d distinct indexes): what isa_decode_buffer() feeds to ISA-L.
   */
  decodeMatrix(inputs: readonly number[], outputs: readonly number[]): Uint8Array;
}

class ErasureCodec implements EcCodec {
  readonly n: number;
  readonly stripSize: number;
  readonly copyPolicy: number;
  private readonly enc: Uint8Array;
  private readonly parityRows: Uint8Array[];
  /** The p parity rows as one p×d block (what ec_init_tables() gets). */
  private readonly parityCoefs: Uint8Array;

  constructor(
    readonly d: number,
    readonly p: number,
  ) {
    this.n = d + p;
    this.stripSize = SD_EC_DATA_STRIPE_SIZE / d;
    this.copyPolicy = ((d / 2) << 4) | p;
    this.enc = encodeMatrix(d, p);
    this.parityCoefs = this.enc.subarray(d * d);
    this.parityRows = Array.from({ length: p }, (_, i) => this.enc.subarray((d + i) * d, (d + i + 1) * d));
  }

  get matrix(): Uint8Array {
    return this.enc.slice();
  }

  encodeStripe(stripe: Uint8Array): Uint8Array[] {
    if (stripe.length !== SD_EC_DATA_STRIPE_SIZE) throw new EcParamError(`encodeStripe: a stripe is ${SD_EC_DATA_STRIPE_SIZE} bytes, got ${stripe.length}`);
    const ss = this.stripSize;
    const d = this.d;
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.p; i++) {
      const row = this.parityRows[i]!;
      const ps = new Uint8Array(ss);
      for (let j = 0; j < d; j++) {
        const base = row[j]! << 8;
        const off = j * ss;
        for (let k = 0; k < ss; k++) ps[k] ^= GF_MUL[base | stripe[off + k]!]!;
      }
      out.push(ps);
    }
    return out;
  }

  encodeObject(data: Uint8Array, out?: Uint8Array[]): Uint8Array[] {
    assertStripeMultiple(data.length, 'encodeObject: data length');
    const len = data.length / this.d;
    const strips = out ?? this.allocStrips(this.n, len);
    if (strips.length < this.n) throw new EcParamError(`encodeObject: need ${this.n} output strips, got ${strips.length}`);
    for (let i = 0; i < this.n; i++) if (strips[i]!.length < len) throw new EcParamError(`encodeObject: output strip ${i} has ${strips[i]!.length} bytes, need ${len}`);
    const views = strips.slice(0, this.n).map((s) => (s.length === len ? s : s.subarray(0, len)));
    splitStripes(data, this.d, views);
    this.encodeParity(views.slice(0, this.d), views.slice(this.d));
    return out ? strips : views;
  }

  encodeParity(dataStrips: readonly Uint8Array[], out?: Uint8Array[]): Uint8Array[] {
    if (dataStrips.length !== this.d) throw new EcParamError(`encodeParity: need ${this.d} data strips, got ${dataStrips.length}`);
    const len = this.checkLength(dataStrips, 'data strip');
    const parity = out ?? this.allocStrips(this.p, len);
    if (parity.length < this.p) throw new EcParamError(`encodeParity: need ${this.p} parity outputs, got ${parity.length}`);
    const outs: Uint8Array[] = [];
    for (let i = 0; i < this.p; i++) {
      const o = parity[i]!;
      if (o.length < len) throw new EcParamError(`encodeParity: parity output ${i} has ${o.length} bytes, need ${len}`);
      outs.push(o.length === len ? o : o.subarray(0, len));
    }
    gfDotMany(outs, this.parityCoefs, dataStrips);
    return parity;
  }

  decodeObject(strips: readonly MaybeStrip[], out?: Uint8Array): Uint8Array {
    const len = this.checkStrips(strips);
    const d = this.d;
    const missingData: number[] = [];
    for (let j = 0; j < d; j++) if (!strips[j]) missingData.push(j);
    if (out && out.length < len * d) throw new EcParamError(`decodeObject: output has ${out.length} bytes, need ${len * d}`);
    const data = out ?? new Uint8Array(len * d);
    if (missingData.length === 0) return joinStripes(strips.slice(0, d) as Uint8Array[], d, data);
    // Rebuild the lost data strips into scratch memory (decodeObject is synchronous, so one buffer per
    // thread suffices); they are interleaved into `data` right away.
    const rebuilt = this.reconstruct(strips, missingData, scratchStrips(missingData.length, len));
    const dataStrips: Uint8Array[] = [];
    for (let j = 0, m = 0; j < d; j++) dataStrips.push(strips[j] ?? rebuilt[m++]!);
    return joinStripes(dataStrips, d, data);
  }

  reconstruct(strips: readonly MaybeStrip[], missing: readonly number[], out?: Uint8Array[]): Uint8Array[] {
    const len = this.checkStrips(strips);
    const targets = new Set<number>();
    for (const m of missing) {
      if (!Number.isInteger(m) || m < 0 || m >= this.n) throw new EcParamError(`reconstruct: strip index ${m} outside 0..${this.n - 1}`);
      if (targets.has(m)) throw new EcParamError(`reconstruct: strip index ${m} listed twice`);
      targets.add(m);
    }
    if (missing.length === 0) return [];
    const inputs: number[] = [];
    for (let i = 0; i < this.n && inputs.length < this.d; i++) if (strips[i] && !targets.has(i)) inputs.push(i);
    if (inputs.length < this.d) {
      throw new EcParamError(`reconstruct: ${this.d}:${this.p} needs ${this.d} intact strips besides the ${missing.length} to rebuild, only ${inputs.length} present`);
    }
    if (out && out.length < missing.length) throw new EcParamError(`reconstruct: need ${missing.length} outputs, got ${out.length}`);
    const coefs = this.decodeMatrix(inputs, missing);
    const srcs = inputs.map((i) => strips[i]!);
    const results = out ? out.slice(0, missing.length) : this.allocStrips(missing.length, len);
    results.forEach((o, t) => {
      if (o.length < len) throw new EcParamError(`reconstruct: output ${t} has ${o.length} bytes, need ${len}`);
    });
    gfDotMany(results.map((o) => (o.length === len ? o : o.subarray(0, len))), coefs, srcs);
    return results;
  }

  decodeMatrix(inputs: readonly number[], outputs: readonly number[]): Uint8Array {
    const d = this.d;
    if (inputs.length !== d) throw new EcParamError(`decodeMatrix: need exactly ${d} input strips, got ${inputs.length}`);
    const seen = new Set<number>();
    for (const i of [...inputs, ...outputs]) {
      if (!Number.isInteger(i) || i < 0 || i >= this.n) throw new EcParamError(`decodeMatrix: strip index ${i} outside 0..${this.n - 1}`);
    }
    for (const i of inputs) {
      if (seen.has(i)) throw new EcParamError(`decodeMatrix: input strip ${i} listed twice`);
      seen.add(i);
    }
    const b = new Uint8Array(d * d);
    let identity = true;
    for (let r = 0; r < d; r++) {
      b.set(this.enc.subarray(inputs[r]! * d, inputs[r]! * d + d), r * d);
      if (inputs[r] !== r) identity = false;
    }
    const inv = identity ? b : gfInvertMatrix(b, d);
    const rows = new Uint8Array(outputs.length * d);
    for (let t = 0; t < outputs.length; t++) {
      const row = this.enc.subarray(outputs[t]! * d, outputs[t]! * d + d);
      rows.set(gfMatMul(row, inv, 1, d, d), t * d);
    }
    return rows;
  }

  /** Common length of the present strips (≥ d of them, ≤ n entries), validated. */
  private checkStrips(strips: readonly MaybeStrip[]): number {
    if (strips.length > this.n) throw new EcParamError(`${this.d}:${this.p} has ${this.n} strips, got ${strips.length} entries`);
    let len = -1;
    let present = 0;
    for (let i = 0; i < strips.length; i++) {
      const s = strips[i];
      if (!s) continue;
      present++;
      if (len < 0) len = s.length;
      else if (s.length !== len) throw new EcParamError(`strip ${i} has ${s.length} bytes, the others ${len}`);
    }
    if (present < this.d) throw new EcParamError(`${this.d}:${this.p} needs at least ${this.d} strips to decode, only ${present} present`);
    if (len % this.stripSize !== 0) throw new EcParamError(`strip length ${len} is not a multiple of the ${this.stripSize}-byte ${this.d}:${this.p} strip`);
    return len;
  }

  private checkLength(strips: readonly Uint8Array[], what: string): number {
    const len = strips[0]!.length;
    for (let i = 1; i < strips.length; i++) if (strips[i]!.length !== len) throw new EcParamError(`${what} ${i} has ${strips[i]!.length} bytes, ${what} 0 has ${len}`);
    if (len % this.stripSize !== 0) throw new EcParamError(`${what} length ${len} is not a multiple of the ${this.stripSize}-byte ${this.d}:${this.p} strip`);
    return len;
  }

  private allocStrips(count: number, len: number): Uint8Array[] {
    const buf = new ArrayBuffer(count * len);
    return Array.from({ length: count }, (_, i) => new Uint8Array(buf, i * len, len));
  }
}

let scratch = new ArrayBuffer(0);

/** `count` views of `len` bytes over a reused buffer (grown on demand). */
function scratchStrips(count: number, len: number): Uint8Array[] {
  if (scratch.byteLength < count * len) scratch = new ArrayBuffer(count * len);
  return Array.from({ length: count }, (_, i) => new Uint8Array(scratch, i * len, len));
}

const codecs = new Map<number, EcCodec>();

/** The d:p codec (d ∈ {2,4,8,16}, p ∈ 1..15), built once and cached. Throws EcParamError otherwise. */
export function createCodec(d: number, p: number): EcCodec {
  validateEc(d, p);
  const key = d * 32 + p;
  let c = codecs.get(key);
  if (!c) {
    c = new ErasureCodec(d, p);
    codecs.set(key, c);
  }
  return c;
}

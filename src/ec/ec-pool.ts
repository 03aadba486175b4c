// Erasure coding off the main thread: a small piscina pool running src/ec/ec-task.ts on views into
// shared memory. Inputs already in a SharedArrayBuffer are used in place; others are copied into
// one once. Results are views into a fresh SharedArrayBuffer (or written into caller-provided
// SAB-backed buffers). Small jobs run inline: a pool round trip costs ~40 µs.
import { Piscina } from 'piscina';
import { createCodec, type EcCodec, type MaybeStrip } from './fec.js';
import type { EcDecodeTask, EcEncodeTask, EcReconstructTask, SabRange } from './ec-task.js';
import { EcParamError } from './policy.js';
import { assertStripeMultiple } from './strips.js';

/** Jobs touching at most this many object bytes run on the calling thread. */
export const EC_INLINE_LIMIT = 64 * 1024;

export interface EcPoolOptions {
  /** Worker threads (default 2). */
  readonly threads?: number;
  /** Override EC_INLINE_LIMIT (0 sends every job to the pool). */
  readonly inlineLimit?: number;
}

const isShared = (v: Uint8Array): boolean => v.buffer instanceof SharedArrayBuffer;

function rangeOf(v: Uint8Array): SabRange {
  return { sab: v.buffer as SharedArrayBuffer, offset: v.byteOffset, length: v.length };
}

/** One SharedArrayBuffer cut into `count` views of `len` bytes. */
function sharedViews(count: number, len: number): Uint8Array[] {
  const sab = new SharedArrayBuffer(count * len);
  return Array.from({ length: count }, (_, i) => new Uint8Array(sab, i * len, len));
}

function toShared(v: Uint8Array): Uint8Array {
  if (isShared(v)) return v;
  const s = new Uint8Array(new SharedArrayBuffer(v.length));
  s.set(v);
  return s;
}

export class EcPool {
  private readonly pool: Piscina;
  private readonly inlineLimit: number;

  constructor(options: EcPoolOptions = {}) {
    const threads = options.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RangeError(`EC pool threads must be 1..64, got ${threads}`);
    this.inlineLimit = options.inlineLimit ?? EC_INLINE_LIMIT;
    this.pool = new Piscina({
      filename: new URL('./ec-task.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 30_000,
    });
  }

  /** Worker threads currently running. */
  get threads(): number {
    return this.pool.threads.length;
  }

  /**
   * Encodes an object (or a stripe-aligned range of one) into its d+p strip files, each data.length/d
   * bytes. `out`, when given, receives the strips (SAB-backed buffers are written in place).
   */
  async encode(d: number, p: number, data: Uint8Array, out?: Uint8Array[]): Promise<Uint8Array[]> {
    const codec = createCodec(d, p);
    assertStripeMultiple(data.length, 'encode: data length');
    const len = data.length / d;
    if (out) {
      if (out.length < codec.n) throw new EcParamError(`encode: need ${codec.n} output strips, got ${out.length}`);
      for (let i = 0; i < codec.n; i++) if (out[i]!.length < len) throw new EcParamError(`encode: output strip ${i} has ${out[i]!.length} bytes, need ${len}`);
    }
    if (data.length <= this.inlineLimit) return codec.encodeObject(data, out);
    const direct = out !== undefined && out.slice(0, codec.n).every(isShared);
    const targets = direct ? out!.slice(0, codec.n).map((s) => s.subarray(0, len)) : sharedViews(codec.n, len);
    const task: EcEncodeTask = { d, p, data: rangeOf(toShared(data)), out: targets.map(rangeOf) };
    await this.pool.run(task, { name: 'encode' });
    if (!out) return targets;
    if (!direct) for (let i = 0; i < codec.n; i++) out[i]!.set(targets[i]!);
    return out;
  }

  /** The object bytes from ≥ d of its strip files (null where missing). */
  async decode(d: number, p: number, strips: readonly MaybeStrip[], out?: Uint8Array): Promise<Uint8Array> {
    const codec = createCodec(d, p);
    const len = this.stripLength(codec, strips);
    if (out && out.length < len * d) throw new EcParamError(`decode: output has ${out.length} bytes, need ${len * d}`);
    if (len * d <= this.inlineLimit) return codec.decodeObject(strips, out);
    const target = out && isShared(out) ? out.subarray(0, len * d) : new Uint8Array(new SharedArrayBuffer(len * d));
    const task: EcDecodeTask = { d, p, strips: strips.map((s) => (s ? rangeOf(toShared(s)) : null)), out: rangeOf(target) };
    await this.pool.run(task, { name: 'decode' });
    if (!out) return target;
    if (target.buffer !== out.buffer) out.set(target);
    return out;
  }

  /** Rebuilds the strips listed in `missing` (see EcCodec.reconstruct), in that order. */
  async reconstruct(d: number, p: number, strips: readonly MaybeStrip[], missing: readonly number[]): Promise<Uint8Array[]> {
    const codec = createCodec(d, p);
    const len = this.stripLength(codec, strips);
    if (len * d <= this.inlineLimit || missing.length === 0) return codec.reconstruct(strips, missing);
    // Validate on this thread so callers get EcParamError rather than a cloned worker error.
    codec.reconstruct(strips.map((s) => (s ? s.subarray(0, 0) : null)), missing);
    const targets = sharedViews(missing.length, len);
    const task: EcReconstructTask = { d, p, strips: strips.map((s) => (s ? rangeOf(toShared(s)) : null)), missing: [...missing], out: targets.map(rangeOf) };
    await this.pool.run(task, { name: 'reconstruct' });
    return targets;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }

  /** Validates a strip set (≤ d+p entries, ≥ d present, equal lengths) and returns the strip length. */
  private stripLength(codec: EcCodec, strips: readonly MaybeStrip[]): number {
    if (strips.length > codec.n) throw new EcParamError(`${codec.d}:${codec.p} has ${codec.n} strips, got ${strips.length} entries`);
    let len = -1;
    let present = 0;
    strips.forEach((s, i) => {
      if (!s) return;
      present++;
      if (len < 0) len = s.length;
      else if (s.length !== len) throw new EcParamError(`strip ${i} has ${s.length} bytes, the others ${len}`);
    });
    if (present < codec.d) throw new EcParamError(`${codec.d}:${codec.p} needs at least ${codec.d} strips to decode, only ${present} present`);
    if (len % codec.stripSize !== 0) throw new EcParamError(`strip length ${len} is not a multiple of the ${codec.stripSize}-byte ${codec.d}:${codec.p} strip`);
    return len;
  }
}

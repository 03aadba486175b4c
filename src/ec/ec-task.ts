// piscina tasks: erasure-code whole objects held in shared memory. Inputs and outputs are views
// (sab, offset, length) into SharedArrayBuffers, so no object bytes cross the thread boundary.
// Each task returns the number of bytes it wrote.
import { createCodec } from './fec.js';

/** `length` bytes at `offset` of a SharedArrayBuffer. */
export interface SabRange {
  readonly sab: SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
}

export interface EcEncodeTask {
  readonly d: number;
  readonly p: number;
  /** Object bytes (a multiple of 512). */
  readonly data: SabRange;
  /** d+p outputs of data.length/d bytes: strip i of every stripe. */
  readonly out: readonly SabRange[];
}

export interface EcDecodeTask {
  readonly d: number;
  readonly p: number;
  /** Up to d+p strip files, null where missing; at least d present. */
  readonly strips: readonly (SabRange | null)[];
  /** The object: d × strip length bytes. */
  readonly out: SabRange;
}

export interface EcReconstructTask {
  readonly d: number;
  readonly p: number;
  readonly strips: readonly (SabRange | null)[];
  /** Strip indexes to rebuild. */
  readonly missing: readonly number[];
  /** One output per missing index, in that order. */
  readonly out: readonly SabRange[];
}

export function view(r: SabRange): Uint8Array {
  if (!(r.sab instanceof SharedArrayBuffer)) throw new TypeError('EC task: expected a SharedArrayBuffer range');
  if (r.offset < 0 || r.length < 0 || r.offset + r.length > r.sab.byteLength) {
    throw new RangeError(`EC task: range ${r.offset}+${r.length} outside a ${r.sab.byteLength}-byte buffer`);
  }
  return new Uint8Array(r.sab, r.offset, r.length);
}

export function encode(task: EcEncodeTask): number {
  const codec = createCodec(task.d, task.p);
  const strips = codec.encodeObject(view(task.data), task.out.map(view));
  return strips.length * (task.data.length / task.d);
}

export function decode(task: EcDecodeTask): number {
  const codec = createCodec(task.d, task.p);
  const strips = task.strips.map((s) => (s ? view(s) : null));
  codec.decodeObject(strips, view(task.out));
  return task.d * (strips.find((s) => s)?.length ?? 0);
}

export function reconstruct(task: EcReconstructTask): number {
  const codec = createCodec(task.d, task.p);
  const rebuilt = codec.reconstruct(task.strips.map((s) => (s ? view(s) : null)), task.missing, task.out.map(view));
  return rebuilt.reduce((n, s) => n + s.length, 0);
}

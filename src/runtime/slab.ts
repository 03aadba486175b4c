// Shared slab pool: N fixed-size slots in ONE SharedArrayBuffer, for payloads too big for a ring
// frame (object data up to 4 MiB). The bytes stay put; only a small {slot, length} descriptor
// travels through a ring or postMessage. Any thread may alloc and any thread may free: the slot
// bitmap is updated with Atomics.compareExchange, so there is no owner thread and no lock.
//
// Layout:
//   bytes 0..63    header, Int32 words: MAGIC, SLOT_SIZE, SLOTS, IN_USE, FREE_SEQ, WAITERS
//   bytes 64..     allocation bitmap, one bit per slot (1 = allocated), padding bits preset to 1
//   dataOffset..   slots (dataOffset is 64-byte aligned; slotSize is a multiple of 64)
//
// Waiting for a free slot (allocAsync) uses the same no-lost-wake-up shape as the doorbell:
//   waiter: WAITERS += 1 -> seen = FREE_SEQ -> try alloc -> wait(FREE_SEQ, seen) -> WAITERS -= 1
//   freer:  clear bit -> FREE_SEQ += 1 -> if WAITERS > 0 notify all
// If the freer sees WAITERS == 0, the waiter's increment (and so its FREE_SEQ read and its alloc
// retry) come after the bit was cleared. Only a waiter ever decrements its own WAITERS mark.

import { holdEventLoop } from './doorbell.js';

const MAGIC = 0x51ab0001;
const H_MAGIC = 0;
const H_SLOT_SIZE = 1;
const H_SLOTS = 2;
const H_IN_USE = 3;
const H_FREE_SEQ = 4;
const H_WAITERS = 5;
const HEADER_BYTES = 64;
const BITMAP_WORD0 = HEADER_BYTES / 4;

/** Slot alignment (one cache line). */
export const SLAB_SLOT_ALIGN = 64;
export const SLAB_MAX_SLOT_SIZE = 1 << 30;
export const SLAB_MAX_SLOTS = 1 << 20;
export const SLAB_MAX_TOTAL_BYTES = 2 ** 34; // 16 GiB: beyond this something is misconfigured
/** Largest object payload, and a slot size that holds one plus header room. */
export const OBJECT_MAX_BYTES = 4 * 1024 * 1024;
export const OBJECT_SLOT_SIZE = OBJECT_MAX_BYTES + 4096;

/** What travels in a message instead of the bytes. */
export interface SlabRef {
  slot: number;
  length: number;
}

export interface SlabPoolOptions {
  /** Bytes per slot; rounded up to a multiple of 64. */
  slotSize: number;
  slots: number;
}

const bitmapWords = (slots: number): number => Math.ceil(slots / 32);
const dataOffsetFor = (slots: number): number =>
  Math.ceil((HEADER_BYTES + bitmapWords(slots) * 4) / SLAB_SLOT_ALIGN) * SLAB_SLOT_ALIGN;

export class SlabPool {
  /**
   * Create the shared memory for a pool. The SharedArrayBuffer is the descriptor: it is
   * structured-cloneable and carries its own geometry, so `new SlabPool(sab)` works in any thread.
   */
  static allocate({ slotSize, slots }: SlabPoolOptions): SharedArrayBuffer {
    if (!Number.isInteger(slotSize) || slotSize <= 0 || slotSize > SLAB_MAX_SLOT_SIZE) {
      throw new RangeError(`SlabPool: slotSize must be an integer in 1..${SLAB_MAX_SLOT_SIZE}, got ${slotSize}`);
    }
    if (!Number.isInteger(slots) || slots <= 0 || slots > SLAB_MAX_SLOTS) {
      throw new RangeError(`SlabPool: slots must be an integer in 1..${SLAB_MAX_SLOTS}, got ${slots}`);
    }
    const size = Math.ceil(slotSize / SLAB_SLOT_ALIGN) * SLAB_SLOT_ALIGN;
    const total = dataOffsetFor(slots) + size * slots;
    if (total > SLAB_MAX_TOTAL_BYTES) {
      throw new RangeError(`SlabPool: ${slots} slots x ${size} bytes = ${total} bytes exceeds the ${SLAB_MAX_TOTAL_BYTES}-byte limit`);
    }
    const sab = new SharedArrayBuffer(total);
    const i32 = new Int32Array(sab);
    i32[H_SLOT_SIZE] = size;
    i32[H_SLOTS] = slots;
    const rem = slots % 32;
    if (rem !== 0) i32[BITMAP_WORD0 + bitmapWords(slots) - 1] = ~((1 << rem) - 1); // padding bits: never free
    Atomics.store(i32, H_MAGIC, MAGIC);
    return sab;
  }

  readonly sab: SharedArrayBuffer;
  readonly slotSize: number;
  readonly slots: number;
  private readonly i32: Int32Array;
  private readonly words: number;
  private readonly dataOffset: number;
  private hint: number; // per-instance start word: threads spread out, fewer CAS collisions

  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('SlabPool: expected a SharedArrayBuffer from SlabPool.allocate()');
    const i32 = new Int32Array(sab);
    if (sab.byteLength < HEADER_BYTES || Atomics.load(i32, H_MAGIC) !== MAGIC) {
      throw new TypeError('SlabPool: buffer was not created by SlabPool.allocate()');
    }
    this.sab = sab;
    this.i32 = i32;
    this.slotSize = i32[H_SLOT_SIZE]!;
    this.slots = i32[H_SLOTS]!;
    this.words = bitmapWords(this.slots);
    this.dataOffset = dataOffsetFor(this.slots);
    if (this.dataOffset + this.slotSize * this.slots !== sab.byteLength) throw new Error('SlabPool: header does not match buffer size');
    this.hint = Math.floor(Math.random() * this.words);
  }

  /** Claim a free slot; -1 when every slot is in use. Never blocks. */
  alloc(): number {
    const i32 = this.i32;
    const words = this.words;
    for (let k = 0; k < words; k++) {
      const w = (this.hint + k) % words;
      const idx = BITMAP_WORD0 + w;
      let v = Atomics.load(i32, idx);
      while (v !== -1) {
        const bit = ~v & (v + 1); // lowest clear bit, isolated
        const prev = Atomics.compareExchange(i32, idx, v, v | bit);
        if (prev === v) {
          this.hint = w;
          Atomics.add(i32, H_IN_USE, 1);
          return w * 32 + (31 - Math.clz32(bit));
        }
        v = prev; // lost a race on this word: retry with the fresh value
      }
    }
    return -1;
  }

  /**
   * Claim a slot, waiting (Atomics.waitAsync on the free counter) until one is freed by any
   * thread. With timeoutMs, resolves -1 if none became available in time. No fairness guarantee.
   */
  async allocAsync(timeoutMs?: number): Promise<number> {
    let slot = this.alloc();
    if (slot >= 0) return slot;
    const i32 = this.i32;
    const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
    const release = holdEventLoop();
    Atomics.add(i32, H_WAITERS, 1);
    try {
      for (;;) {
        const seen = Atomics.load(i32, H_FREE_SEQ);
        slot = this.alloc();
        if (slot >= 0) return slot;
        const left = deadline - performance.now();
        if (left <= 0) return -1;
        const r = Atomics.waitAsync(i32, H_FREE_SEQ, seen, left);
        if (r.async) await r.value;
      }
    } finally {
      Atomics.sub(i32, H_WAITERS, 1);
      release();
    }
  }

  /** Blocking variant for worker threads (Atomics.wait). -1 on timeout. */
  allocSync(timeoutMs?: number): number {
    let slot = this.alloc();
    if (slot >= 0) return slot;
    const i32 = this.i32;
    const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
    Atomics.add(i32, H_WAITERS, 1);
    try {
      for (;;) {
        const seen = Atomics.load(i32, H_FREE_SEQ);
        slot = this.alloc();
        if (slot >= 0) return slot;
        const left = deadline - performance.now();
        if (left <= 0) return -1;
        Atomics.wait(i32, H_FREE_SEQ, seen, left);
      }
    } finally {
      Atomics.sub(i32, H_WAITERS, 1);
    }
  }

  /** Release a slot (from any thread). Throws on an out-of-range slot or a double free. */
  free(slot: number): void {
    this.checkSlot(slot);
    const i32 = this.i32;
    const idx = BITMAP_WORD0 + (slot >>> 5);
    const bit = 1 << (slot & 31);
    let v = Atomics.load(i32, idx);
    for (;;) {
      if ((v & bit) === 0) throw new Error(`SlabPool.free: slot ${slot} is not allocated (double free?)`);
      const prev = Atomics.compareExchange(i32, idx, v, v & ~bit);
      if (prev === v) break;
      v = prev;
    }
    Atomics.sub(i32, H_IN_USE, 1);
    Atomics.add(i32, H_FREE_SEQ, 1);
    if (Atomics.load(i32, H_WAITERS) > 0) Atomics.notify(i32, H_FREE_SEQ);
  }

  /** SAB-backed view of the first `length` bytes of a slot (default: whole slot). */
  view(slot: number, length: number = this.slotSize): Uint8Array {
    return new Uint8Array(this.sab, this.offsetOf(slot, length), length);
  }

  /** Buffer over the same memory as view() (no copy). */
  buffer(slot: number, length: number = this.slotSize): Buffer {
    return Buffer.from(this.sab, this.offsetOf(slot, length), length);
  }

  /** View for a descriptor received in a message. */
  viewOf(ref: SlabRef): Uint8Array {
    return this.view(ref.slot, ref.length);
  }

  /** Slots currently allocated, across all threads. */
  inUse(): number {
    return Atomics.load(this.i32, H_IN_USE);
  }

  /** True if `slot` is currently allocated (diagnostics / assertions). */
  isAllocated(slot: number): boolean {
    this.checkSlot(slot);
    return (Atomics.load(this.i32, BITMAP_WORD0 + (slot >>> 5)) & (1 << (slot & 31))) !== 0;
  }

  private offsetOf(slot: number, length: number): number {
    this.checkSlot(slot);
    if (!Number.isInteger(length) || length < 0 || length > this.slotSize) {
      throw new RangeError(`SlabPool: length ${length} outside 0..${this.slotSize} (slot size)`);
    }
    return this.dataOffset + slot * this.slotSize;
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new RangeError(`SlabPool: slot ${slot} outside 0..${this.slots - 1}`);
    }
  }
}

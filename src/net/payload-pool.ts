// Reusable, block-aligned buffers for large request payloads (object writes, NBD writes).
//
// Reused: every fresh multi-megabyte buffer is external memory to V8, and allocating one per request made
// the sheep run a full mark-compact about once per object written (measured with --trace-gc: one every
// ~50 ms during sequential 4 MiB writes). A buffer goes back to the pool only once its request is
// answered, when nothing refers to it any more.
//
// Aligned: the object store writes aligned payloads with O_DIRECT, which skips copying them into the page
// cache, the largest CPU cost of a large write on these machines (perf: ~40% of all CPU during an NBD copy).
// O_DIRECT needs the buffer's address aligned to the device's block, and JavaScript cannot see addresses;
// but a WebAssembly.Memory always starts on a page boundary, so each pooled buffer is a small one.

/** Address, offset and length alignment that O_DIRECT may require (the largest logical block size). */
export const DIRECT_ALIGNMENT = 4096;

const WASM_PAGE = 65536;

/** The one WebAssembly API used here (this project's TypeScript libraries do not declare WebAssembly). */
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer } };

/** ArrayBuffers that start on a DIRECT_ALIGNMENT boundary (WebAssembly memories made here). */
const alignedBuffers = new WeakSet<ArrayBufferLike>();

/** True when `b` starts at a DIRECT_ALIGNMENT-aligned address, so O_DIRECT can write it. */
export function isDirectAligned(b: Uint8Array): boolean {
  return alignedBuffers.has(b.buffer) && b.byteOffset % DIRECT_ALIGNMENT === 0;
}

/** `bytes` (a multiple of 64 KiB) starting on a page boundary, or null if WebAssembly memory is unavailable. */
function allocAligned(bytes: number): ArrayBuffer | null {
  try {
    const pages = bytes / WASM_PAGE;
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
    alignedBuffers.add(mem.buffer);
    return mem.buffer;
  } catch {
    return null; // address space or the engine said no: callers fall back to ordinary buffers
  }
}

/** The pooled capacity for a payload of n bytes: 64 KiB pages, rounded up to a power of two. */
function capacityFor(n: number): number {
  let cap = WASM_PAGE;
  while (cap < n) cap *= 2;
  return cap;
}

/** Blocks are cut from slabs of at least this size, so the process holds few WebAssembly memories (each reserves a large address range). */
const SLAB_BYTES = 8 << 20;

/** One slab: equal blocks of `cap` bytes, each either handed out or idle. */
interface Slab {
  readonly cap: number;
  readonly blocks: Buffer[];
  readonly idle: boolean[];
}

export class PayloadPool {
  /** Idle blocks, by capacity. */
  private readonly free = new Map<number, Buffer[]>();
  /** The slabs this pool cut, by their memory. */
  private readonly slabs = new WeakMap<ArrayBufferLike, Slab>();
  private slabBytes = 0;

  constructor(
    /** Smaller payloads are allocated normally (V8's young generation handles them well). */
    readonly minBytes: number,
    /** Larger payloads are allocated normally, unaligned and not pooled. */
    readonly maxBytes: number,
    /** Memory the pool may take for blocks; it stays resident once taken. Beyond it, payloads are allocated normally. */
    readonly maxPoolBytes: number,
  ) {
    if (!(minBytes > 0 && maxBytes >= minBytes && maxPoolBytes >= 0)) throw new RangeError('PayloadPool: bad limits');
  }

  /**
   * A pooled block of exactly `n` bytes, or null when `n` is outside the pooled sizes or the pool is
   * spent: never an allocation outside the pool (for a payload whose bytes have not arrived yet).
   */
  tryGet(n: number): Buffer | null {
    if (n < this.minBytes || n > this.maxBytes) return null;
    const cap = capacityFor(n);
    const block = this.free.get(cap)?.pop() ?? this.cutSlab(cap);
    if (!block) return null;
    this.slabs.get(block.buffer)!.idle[block.byteOffset / cap] = false;
    return block.subarray(0, n);
  }

  /** A buffer of exactly `n` bytes (contents undefined), or null when `n` is below the pooled size. */
  get(n: number): Buffer | null {
    if (n < this.minBytes) return null;
    return this.tryGet(n) ?? Buffer.allocUnsafeSlow(n);
  }

  /** Gives back a buffer from get(); the caller must hold no reference to it afterwards. */
  release(b: Buffer): void {
    const slab = this.slabs.get(b.buffer);
    if (!slab) return; // not pooled
    const k = b.byteOffset / slab.cap;
    if (!Number.isInteger(k) || slab.idle[k]) return; // not a block's start, or released twice
    slab.idle[k] = true;
    this.free.get(slab.cap)!.push(slab.blocks[k]!);
  }

  /** A new slab of `cap`-byte blocks: all but the first go to the free list, the first is returned. */
  private cutSlab(cap: number): Buffer | undefined {
    const bytes = Math.max(cap, SLAB_BYTES);
    if (this.slabBytes + bytes > this.maxPoolBytes) return undefined;
    const memory = allocAligned(bytes);
    if (!memory) return undefined;
    this.slabBytes += bytes;
    const blocks: Buffer[] = [];
    for (let off = 0; off < bytes; off += cap) blocks.push(Buffer.from(memory, off, cap));
    this.slabs.set(memory, { cap, blocks, idle: blocks.map(() => true) });
    const list = this.free.get(cap) ?? [];
    this.free.set(cap, list);
    list.push(...blocks.slice(1).reverse());
    return blocks[0];
  }

  /** Bytes held for reuse (for tests). */
  get heldBytes(): number {
    let n = 0;
    for (const [size, list] of this.free) n += size * list.length;
    return n;
  }

  /** Memory taken for blocks so far (for tests). */
  get poolBytes(): number {
    return this.slabBytes;
  }
}

/**
 * The pool every receiver of large payloads in this process shares (the wire server, the NBD server):
 * 4 MiB objects and NBD writes of 256 KiB (nbdcopy, 64 in flight per connection) to 4 MiB (qemu-img sends
 * 2 MiB). At most 128 MiB stays resident.
 */
export const sharedPayloads = new PayloadPool(256 << 10, 4 << 20, 128 << 20);

// Reusable buffers for large request payloads (4 MiB object writes). Every fresh multi-megabyte buffer is
// external memory to V8, and allocating one per request made the sheep run a full mark-compact about once
// per object written (measured with --trace-gc: one every ~50 ms during sequential 4 MiB writes). A buffer
// goes back to the pool only once its request is answered, when nothing refers to it any more.

export class PayloadPool {
  private readonly free = new Map<number, Buffer[]>();

  constructor(
    /** Smaller payloads are allocated normally (V8's young generation handles them well). */
    readonly minBytes: number,
    /** Buffers kept per size; beyond that a released buffer is left to the GC. */
    private readonly keepPerSize: number,
  ) {
    if (!(minBytes > 0 && keepPerSize >= 0)) throw new RangeError('PayloadPool: bad limits');
  }

  /** A buffer of exactly `n` bytes (contents undefined), or null when `n` is below the pooled size. */
  get(n: number): Buffer | null {
    if (n < this.minBytes) return null;
    return this.free.get(n)?.pop() ?? Buffer.allocUnsafeSlow(n);
  }

  /** Gives back a buffer from get(); the caller must hold no reference to it afterwards. */
  release(b: Buffer): void {
    const list = this.free.get(b.length);
    if (!list) this.free.set(b.length, [b]);
    else if (list.length < this.keepPerSize && !list.includes(b)) list.push(b);
  }

  /** Bytes held for reuse (for tests). */
  get heldBytes(): number {
    let n = 0;
    for (const [size, list] of this.free) n += size * list.length;
    return n;
  }
}

// Bytes received from a stream but not yet consumed: the one framing buffer every protocol reader uses
// (Sheepdog wire client and server, NBD, the local driver's hub). Taking a prefix that lies in one chunk
// is a view, not a copy, unless the chunk is transient (a reused receive buffer, see socket-reader.ts).

/** Bytes received but not yet consumed. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;
  /** memory of the last transient chunk: views into it must not outlive the current callback */
  private transient: ArrayBufferLike | null = null;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  /** Adds bytes valid only until keep() (a reused receive buffer); take() and peek() copy them. */
  pushTransient(b: Buffer): void {
    this.transient = b.buffer;
    this.push(b);
  }

  /** Copies whatever is left of transient chunks, so the receive buffer can be reused. */
  keep(): void {
    if (this.transient === null) return;
    for (let i = 0; i < this.chunks.length; i++) if (this.chunks[i]!.buffer === this.transient) this.chunks[i] = Buffer.from(this.chunks[i]!);
    this.transient = null;
  }

  /** Moves up to into.length - at bytes into `into` at `at`; returns how many. */
  fill(into: Buffer, at: number): number {
    const n = Math.min(this.length, into.length - at);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(into, at + off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return n;
  }

  /** Consumes n bytes: a view when they lie in one chunk, else a copy (into `into` when given, n bytes long). */
  take(n: number, into?: Buffer): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (into && into.length !== n) throw new RangeError(`take(${n}): target buffer holds ${into.length} bytes`);
    if (n > this.length) throw new RangeError(`take(${n}): only ${this.length} bytes queued`);
    const first = this.chunks[0]!;
    if (first.length >= n && !into && first.buffer !== this.transient) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = into ?? Buffer.allocUnsafe(n);
    this.fill(out, 0);
    return out;
  }

  /** The first n bytes without consuming them (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n && first.buffer !== this.transient) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const c of this.chunks) {
      if (off >= n) break;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
    }
    return out;
  }

  /** Drops up to n bytes; returns how many were dropped. */
  skip(n: number): number {
    let dropped = 0;
    while (dropped < n && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - dropped);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      dropped += k;
    }
    this.length -= dropped;
    return dropped;
  }

  /** Forgets everything buffered (a connection being dropped). */
  clear(): void {
    this.chunks = [];
    this.length = 0;
    this.transient = null;
  }
}

// Bytes received from a stream but not yet consumed: the one framing buffer every protocol reader uses
// (Sheepdog wire client and server, NBD, the local driver's hub). Taking a prefix that lies in one chunk
// is a view, not a copy.

/** Bytes received but not yet consumed. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  /** Consumes n bytes: a view when they lie in one chunk, else a copy (into `into` when given, n bytes long). */
  take(n: number, into?: Buffer): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (into && into.length !== n) throw new RangeError(`take(${n}): target buffer holds ${into.length} bytes`);
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n && !into) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = into ?? Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.length -= n;
    return out;
  }

  /** The first n bytes without consuming them (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
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
  }
}

// Stateless CPU work on whole objects (SHA-1 for GET_HASH and `dog vdi check`) runs on a piscina pool,
// fed by views into shared memory. Small inputs are hashed inline: a task costs ~40 µs of overhead.
import { createHash } from 'node:crypto';
import { Piscina } from 'piscina';
import type { HashTask } from './hash-task.js';

const INLINE_LIMIT = 64 * 1024;

export class HashPool {
  private readonly pool: Piscina;

  constructor(threads = 2) {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`hash pool threads must be 1..64, got ${threads}`);
    this.pool = new Piscina({
      filename: new URL('./hash-task.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 30_000,
    });
  }

  /** SHA-1 (hex) of `length` bytes at `offset` in shared memory, zero-padded to `paddedLength`. */
  sha1Shared(sab: SharedArrayBuffer, offset: number, length: number, paddedLength = length): Promise<string> {
    if (offset < 0 || length < 0 || offset + length > sab.byteLength) throw new RangeError(`hash range ${offset}+${length} outside a ${sab.byteLength}-byte buffer`);
    if (paddedLength <= INLINE_LIMIT) {
      const h = createHash('sha1').update(new Uint8Array(sab, offset, length));
      if (paddedLength > length) h.update(new Uint8Array(paddedLength - length));
      return Promise.resolve(h.digest('hex'));
    }
    const task: HashTask = { sab, offset, length, paddedLength };
    return this.pool.run(task, { name: 'sha1' }) as Promise<string>;
  }

  /** SHA-1 of an ordinary buffer: copied once into shared memory when large. */
  async sha1(data: Uint8Array, paddedLength = data.length): Promise<string> {
    if (paddedLength <= INLINE_LIMIT || data.buffer instanceof SharedArrayBuffer) {
      if (data.buffer instanceof SharedArrayBuffer) return this.sha1Shared(data.buffer, data.byteOffset, data.length, paddedLength);
      const h = createHash('sha1').update(data);
      if (paddedLength > data.length) h.update(new Uint8Array(paddedLength - data.length));
      return h.digest('hex');
    }
    const sab = new SharedArrayBuffer(data.length);
    new Uint8Array(sab).set(data);
    return this.sha1Shared(sab, 0, data.length, paddedLength);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

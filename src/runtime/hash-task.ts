// piscina task: SHA-1 of a range of shared memory. The bytes are never copied across threads.
import { createHash } from 'node:crypto';

export interface HashTask {
  readonly sab: SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
  /** Hash as if the range were followed by zeros up to this many bytes (sparse objects). */
  readonly paddedLength?: number;
}

const ZEROS = new Uint8Array(1 << 20);

export function sha1(task: HashTask): string {
  const h = createHash('sha1');
  h.update(new Uint8Array(task.sab, task.offset, task.length));
  let pad = (task.paddedLength ?? task.length) - task.length;
  while (pad > 0) {
    const n = Math.min(pad, ZEROS.length);
    h.update(ZEROS.subarray(0, n));
    pad -= n;
  }
  return h.digest('hex');
}

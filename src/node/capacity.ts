// A node's store capacity: what it announces as sd_node.space (free + used, as Sheepdog's md_get_size) and
// reports in `dog node info`/`dog node md info`. An operator (or a test) can emulate a smaller disk by
// writing a byte count to STORE/capacity: the node then reports at most that much. The limit is only
// advertised, not enforced on writes; it is re-read whenever the capacity is measured, so a changed file is
// picked up by `dog cluster reweight`.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';

export const CAPACITY_FILE = 'capacity';

export interface Capacity {
  /** Total bytes this node can hold (sd_node.space). */
  readonly size: bigint;
  readonly free: bigint;
  readonly used: bigint;
}

/** The byte limit in DIR/capacity, or null when there is none; a malformed file is an error, not ignored. */
export async function readCapacityLimit(dir: string): Promise<bigint | null> {
  let text: string;
  try {
    text = await readFile(join(dir, CAPACITY_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw new Error(`${join(dir, CAPACITY_FILE)}: expected a byte count, got '${t.slice(0, 40)}'`);
  return BigInt(t);
}

/**
 * Measures the store: real free and used bytes, capped by the capacity file of `dir` when there is one
 * (no `dir`: no file is read, as in the simulator, whose disks are not files).
 */
export async function measureCapacity(store: Store, dir: string | undefined): Promise<Capacity> {
  const used = await store.usedBytes();
  let free = await store.freeBytes();
  const limit = dir === undefined ? null : await readCapacityLimit(dir);
  if (limit === null) return { size: free + used, free, used };
  // An emulated disk of `limit` bytes: never more free than the real disk has, none once data fills it.
  if (limit - used < free) free = limit > used ? limit - used : 0n;
  return { size: limit, free, used };
}

/** Sheepdog's node_size_varied(): a change below 1% of the announced size is not worth a new epoch. */
export function spaceVaried(old: bigint, now: bigint): boolean {
  if (old === 0n) return now !== 0n;
  const diff = now > old ? now - old : old - now;
  return diff * 100n >= old;
}

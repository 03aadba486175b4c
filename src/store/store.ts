// What a sheep needs from its disk. ObjectStore keeps objects in files (Sheepdog's layout); the simulator
// swaps in an in-memory disk with injected faults. Errors are StoreErrors (NO_OBJ, NO_SPACE, EIO...).
// Objects are named by store keys (strip-key.ts): an oid for a whole object, oid + strip index for an
// erasure-coded strip file; list() and listStale() return keys.
import type { StoreError } from './object-store.js';

export interface WriteOptions {
  /**
   * The write may stay in the page cache until the next flush(), like a disk's volatile write cache
   * (NBD writes without FUA). Default: durable (fdatasync'ed) before the call returns.
   */
  readonly writeback?: boolean;
}

export interface Store {
  /** Called when an operation fails because the disk does: the sheep leaves the cluster. */
  onEio: ((err: StoreError) => void) | null;
  init(): Promise<void>;
  setLayout(layout: string): void;
  exists(oid: bigint): Promise<boolean>;
  /** Creates (or atomically replaces) an object of `objectSize` bytes holding `data` at `offset`. */
  create(oid: bigint, objectSize: number, data: Uint8Array, offset: number, opts?: WriteOptions): Promise<void>;
  /** Overwrites part of an existing object; NO_OBJ if absent. */
  write(oid: bigint, data: Uint8Array, offset: number, opts?: WriteOptions): Promise<void>;
  /** Makes every writeback write acknowledged so far durable (NBD FLUSH). */
  flush(): Promise<void>;
  /** Bytes past the object's end read as zeros. */
  read(oid: bigint, offset: number, length: number, into?: Buffer): Promise<Buffer>;
  size(oid: bigint): Promise<number>;
  remove(oid: bigint): Promise<void>;
  moveToStale(oid: bigint, epoch: number): Promise<void>;
  /** The newest stale copy, with the epoch it was set aside at. */
  readStale(oid: bigint, length: number): Promise<{ data: Buffer; epoch: number }>;
  listStale(): Promise<bigint[]>;
  list(): Promise<bigint[]>;
  wipe(): Promise<void>;
  usedBytes(): Promise<bigint>;
  freeBytes(): Promise<bigint>;
  close(): Promise<void>;
}

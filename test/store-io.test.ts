// The I/O plumbing under the node: reused payload buffers, the framing queue, and the object store's
// writeback writes with their flush.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteQueue } from '../src/net/byte-queue.js';
import { isDirectAligned, PayloadPool } from '../src/net/payload-pool.js';
import { ObjectStore, StoreError, storeFiles } from '../src/store/object-store.js';
import { removeDir, tempDir, timed } from './helpers.js';
import { decodeUnverified, encodeUnverified, readUnverifiedFile, writeUnverifiedFile } from '../src/node/cluster-state.js';
import { closeSync, constants as fsConstants, existsSync, openSync } from 'node:fs';

test('PayloadPool: small sizes are not pooled, large ones are not aligned; released buffers are reused, within the memory limit', timed(() => {
  const SLAB = 8 << 20;
  const pool = new PayloadPool(1024, 4 << 20, SLAB + (4 << 20));
  assert.is(pool.get(1023), null);
  const a = pool.get(4096)!; // a 64 KiB block: the first of a new 8 MiB slab
  const b = pool.get(5000)!;
  assert.is(a.length, 4096);
  assert.is(b.length, 5000);
  assert.is(pool.poolBytes, SLAB);
  assert.ok(isDirectAligned(a) && isDirectAligned(b), 'pooled blocks are aligned');
  assert.not.ok(isDirectAligned(a.subarray(512)), 'a view at an unaligned offset is not aligned');
  assert.is(pool.heldBytes, SLAB - 2 * 65536);
  pool.release(a);
  pool.release(a); // twice: kept once
  pool.release(a.subarray(4096)); // not a block's start: ignored
  pool.release(Buffer.alloc(4096)); // not the pool's: ignored
  assert.is(pool.heldBytes, SLAB - 65536);
  const again = pool.get(60000)!;
  assert.is(again.buffer, a.buffer, 'a released block comes back');
  assert.is(again.byteOffset, a.byteOffset);
  const four = pool.get(4 << 20)!; // 4 MiB blocks come from another 8 MiB slab
  assert.is(four.length, 4 << 20);
  assert.not.ok(isDirectAligned(four), 'a new 8 MiB slab would exceed the limit: an ordinary buffer');
  const big = pool.get(5 << 20)!;
  assert.is(big.length, 5 << 20);
  assert.not.ok(isDirectAligned(big), 'above maxBytes: not pooled');
  assert.is(pool.poolBytes, SLAB);
  const roomy = new PayloadPool(1024, 4 << 20, 2 * SLAB);
  const blocks = [roomy.get(4 << 20)!, roomy.get(4 << 20)!];
  assert.ok(blocks.every(isDirectAligned) && blocks[0]!.buffer === blocks[1]!.buffer, 'two 4 MiB blocks share one slab');
  assert.throws(() => new PayloadPool(0, 1, 1), /bad limits/);
  assert.throws(() => new PayloadPool(2, 1, 1), /bad limits/);
}));

test('ByteQueue.take into a target: copies across chunks, and a wrong-sized target is refused', timed(() => {
  const q = new ByteQueue();
  q.push(Buffer.from([1, 2, 3]));
  q.push(Buffer.from([4, 5, 6, 7]));
  const into = Buffer.alloc(2);
  assert.is(q.take(2, into), into, 'the target is filled even when the bytes lie in one chunk');
  assert.equal([...into], [1, 2]);
  const across = Buffer.alloc(4);
  q.take(4, across);
  assert.equal([...across], [3, 4, 5, 6]);
  assert.throws(() => q.take(1, Buffer.alloc(2)), /target buffer holds 2 bytes/);
  assert.equal([...q.take(1)], [7]);
  assert.is(q.length, 0);
}));

test('ObjectStore writeback: data is readable at once; flush makes it durable and survives removed objects', timed(async () => {
  const dir = tempDir('sheep-store-io-');
  try {
    const store = new ObjectStore(dir);
    await store.init();
    const oid = 0x00abcdef00000001n;
    await store.create(oid, 1 << 20, Buffer.alloc(4096, 1), 0, { writeback: true });
    await store.write(oid, Buffer.alloc(512, 2), 8192, { writeback: true });
    const back = await store.read(oid, 0, 8704);
    assert.ok(back.subarray(0, 4096).equals(Buffer.alloc(4096, 1)) && back.subarray(8192).equals(Buffer.alloc(512, 2)));
    // what a crash of the process leaves: the file as written (the page cache outlives the process)
    const file = readFileSync(join(dir, 'obj', '00abcdef00000001'));
    assert.is(file.length, 1 << 20);
    assert.ok(file.subarray(8192, 8704).equals(Buffer.alloc(512, 2)));
    const gone = 0x00abcdef00000002n;
    await store.create(gone, 1 << 20, Buffer.alloc(10, 3), 0, { writeback: true });
    await store.remove(gone);
    await store.flush(); // the removed object is skipped, not an error
    await store.flush(); // nothing left to flush
    // a durable write after writeback ones
    await store.write(oid, Buffer.alloc(16, 4), 0);
    assert.ok((await store.read(oid, 0, 16)).equals(Buffer.alloc(16, 4)));
    await assertNoObj(store.write(gone, Buffer.alloc(1), 0, { writeback: true }));
    await store.close();
  } finally {
    removeDir(dir);
  }
}));

/** Does the filesystem under `dir` accept O_DIRECT (tmpfs does not)? */
function acceptsDirect(dir: string): boolean {
  try {
    closeSync(openSync(join(dir, 'probe'), fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

/** `n` bytes in an aligned pooled buffer, filled with `fill`. */
function alignedPayload(pool: PayloadPool, n: number, fill: number): Buffer {
  const b = pool.get(n)!;
  assert.ok(isDirectAligned(b));
  return b.fill(fill);
}

test('ObjectStore O_DIRECT: large aligned writes bypass the page cache and stay coherent with buffered ones', timed(() => directCoherence(false)));

test('ObjectStore on a filesystem that refuses O_DIRECT (EINVAL at open): every write and read goes buffered, same bytes', timed(async () => {
  const realOpen = storeFiles.open;
  let refused = 0;
  storeFiles.open = (path, flags, mode) => {
    if (flags & fsConstants.O_DIRECT) {
      refused++;
      return Promise.reject(Object.assign(new Error(`EINVAL: invalid argument, open '${path}'`), { code: 'EINVAL' }));
    }
    return realOpen(path, flags, mode);
  };
  try {
    await directCoherence(true);
    assert.is(refused, 1, 'the first refusal turns O_DIRECT off for good');
  } finally {
    storeFiles.open = realOpen;
  }
}));

async function directCoherence(refusing: boolean): Promise<void> {
  const dir = tempDir('sheep-store-direct-');
  const pool = new PayloadPool(4096, 4 << 20, 32 << 20);
  try {
    const direct = !refusing && acceptsDirect(dir);
    if (!direct && !refusing) console.log('!! the filesystem of the temporary folder refuses O_DIRECT: only the buffered fallback is checked here');
    const store = new ObjectStore(dir);
    await store.init();
    const oid = 0x00abcdef00000003n;
    const OBJ = 4 << 20;
    await store.create(oid, OBJ, alignedPayload(pool, OBJ, 0x11), 0);
    assert.is(store.directWrites, direct ? 1 : 0, 'a whole aligned object is created with O_DIRECT');
    await store.write(oid, Buffer.alloc(4096, 0x22), 8192); // small: buffered (O_DSYNC)
    await store.write(oid, alignedPayload(pool, 256 << 10, 0x33), 1 << 20); // large and aligned: direct
    await store.write(oid, alignedPayload(pool, 256 << 10, 0x44), 4096); // direct over the buffered write
    await store.write(oid, alignedPayload(pool, 256 << 10, 0x55).subarray(0, (256 << 10) - 512), 2 << 20); // odd length: buffered
    await store.write(oid, alignedPayload(pool, 512 << 10, 0x66), (3 << 20) + 512); // odd offset: buffered
    await store.write(oid, alignedPayload(pool, 256 << 10, 0x77), 3 << 20, { writeback: true }); // direct, flushed below
    assert.is(store.directWrites, direct ? 4 : 0);
    const want = Buffer.alloc(OBJ, 0x11);
    want.fill(0x44, 4096, 4096 + (256 << 10));
    want.fill(0x33, 1 << 20, (1 << 20) + (256 << 10));
    want.fill(0x55, 2 << 20, (2 << 20) + (256 << 10) - 512);
    want.fill(0x66, (3 << 20) + 512, (3 << 20) + 512 + (512 << 10));
    want.fill(0x77, 3 << 20, (3 << 20) + (256 << 10));
    assert.ok((await store.read(oid, 0, OBJ)).equals(want), 'a direct read sees every write');
    assert.is(store.directReads, direct ? 1 : 0);
    assert.ok((await store.read(oid, 4096, 8192)).equals(want.subarray(4096, 4096 + 8192)), 'so does a small (buffered) read');
    assert.ok((await store.read(oid, (3 << 20) + 512, 256 << 10)).equals(want.subarray((3 << 20) + 512, (3 << 20) + 512 + (256 << 10))), 'and an unaligned one');
    const tail = await store.read(oid, OBJ - (128 << 10), 256 << 10); // past the end: zeros
    assert.ok(tail.subarray(0, 128 << 10).equals(want.subarray(OBJ - (128 << 10))) && tail.subarray(128 << 10).equals(Buffer.alloc(128 << 10)));
    assert.is(store.directReads, direct ? 2 : 0);
    assert.ok(readFileSync(join(dir, 'obj', '00abcdef00000003')).equals(want), 'so does another reader of the file');
    await store.flush();
    // a direct write to a missing object is NO_OBJ, as a buffered one
    await assertNoObj(store.write(0x00abcdef00000009n, alignedPayload(pool, 256 << 10, 1), 0));
    await store.close();
  } finally {
    removeDir(dir);
  }
}

async function assertNoObj(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StoreError && err.code === 'NO_OBJ', String(err));
    return;
  }
  assert.unreachable('expected NO_OBJ');
}

test('DIR/unverified: round trip (strip keys too), damaged lines skipped, removed when empty', timed(async () => {
  const copies = new Map<bigint, number>([
    [0x803e791900000000n, 13],
    [(3n << 64n) | 0x003e791900000002n, 7],
  ]);
  assert.equal(decodeUnverified(encodeUnverified(copies)), copies);
  assert.equal(decodeUnverified('zz 1\n80 x\n\n00ab 4\n'), new Map([[0xabn, 4]]));
  const dir = tempDir('sheep-unverified-');
  try {
    assert.equal(await readUnverifiedFile(dir), new Map());
    await writeUnverifiedFile(dir, copies);
    assert.equal(await readUnverifiedFile(dir), copies);
    await writeUnverifiedFile(dir, new Map());
    assert.not.ok(existsSync(join(dir, 'unverified')));
  } finally {
    removeDir(dir);
  }
}));

test.run();

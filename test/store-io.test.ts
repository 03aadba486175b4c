// The I/O plumbing under the node: reused payload buffers, the framing queue, and the object store's
// writeback writes with their flush.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteQueue } from '../src/net/byte-queue.js';
import { PayloadPool } from '../src/net/payload-pool.js';
import { ObjectStore, StoreError } from '../src/store/object-store.js';
import { removeDir, tempDir, timed } from './helpers.js';
import { decodeUnverified, encodeUnverified, readUnverifiedFile, writeUnverifiedFile } from '../src/node/cluster-state.js';
import { existsSync } from 'node:fs';

test('PayloadPool: small sizes are not pooled; released buffers are reused, up to the limit per size', timed(() => {
  const pool = new PayloadPool(1024, 2);
  assert.is(pool.get(1023), null);
  const a = pool.get(4096)!;
  const b = pool.get(4096)!;
  const c = pool.get(4096)!;
  assert.is(a.length, 4096);
  pool.release(a);
  pool.release(b);
  pool.release(c); // beyond the limit: left to the GC
  pool.release(a); // twice: kept once
  assert.is(pool.heldBytes, 2 * 4096);
  const again = [pool.get(4096), pool.get(4096), pool.get(4096)];
  assert.ok(again.includes(a) && again.includes(b), 'the released buffers come back');
  assert.is(pool.heldBytes, 0);
  assert.throws(() => new PayloadPool(0, 1), /bad limits/);
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

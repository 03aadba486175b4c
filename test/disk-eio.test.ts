// A node whose disk returns EIO leaves the cluster; the others keep serving. Real sheep processes on the
// local driver; SIGUSR2 is the CLI's test hook that makes every store operation of that sheep fail with EIO
// (ObjectStore.injectEio). The faulty sheep answers its peers NETWORK_ERROR until it is gone (so their
// gateways retry on the other replicas / at the new epoch), leaves, and exits 1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { ObjectStore, oidHex, StoreError } from '../src/store/object-store.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForMembers } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';
import { assertPlacement, BLOCK, blockData, clusterState, sleep, verifiedLoad, waitRecovered } from './recovery-helpers.js';

const log = (msg: string) => process.stderr.write(`  [disk-eio] ${msg}\n`);

test('ObjectStore.injectEio: every operation fails with EIO and is reported; other errors are not disk failures', withTimeout(10_000, async () => {
  const dir = tempDir('store-eio-');
  const store = new ObjectStore(dir, { noSync: true });
  const reported: string[] = [];
  store.onEio = (err) => reported.push(err.message);
  try {
    await store.init();
    await store.create(1n, 4096, Buffer.alloc(4096, 1), 0);
    store.injectEio(true);
    const ops: Array<[string, () => Promise<unknown>]> = [
      ['read', () => store.read(1n, 0, 4096)],
      ['write', () => store.write(1n, Buffer.alloc(512), 0)],
      ['create', () => store.create(2n, 4096, Buffer.alloc(1), 0)],
      ['exists', () => store.exists(1n)],
      ['size', () => store.size(1n)],
      ['list', () => store.list()],
      ['remove', () => store.remove(1n)],
      ['moveToStale', () => store.moveToStale(1n, 1)],
      ['freeBytes', () => store.freeBytes()],
    ];
    for (const [name, op] of ops) {
      const err = await op().then(() => null, (e: unknown) => e);
      assert.ok(err instanceof StoreError && err.code === 'EIO', `${name} fails with EIO`);
    }
    assert.is(reported.length, ops.length, 'every failure reported');
    store.injectEio(false);
    assert.ok((await store.read(1n, 0, 4096)).every((b) => b === 1), 'the object is untouched');
    // An error that is not the disk failing (here EISDIR) is still an EIO to the client, but not reported.
    mkdirSync(join(dir, 'obj', oidHex(3n)));
    const other = await store.read(3n, 0, 16).then(() => null, (e: unknown) => e);
    assert.ok(other instanceof StoreError && other.code === 'EIO' && other.fsCode === 'EISDIR', String(other));
    assert.is(reported.length, ops.length);
  } finally {
    await store.close();
    removeDir(dir);
  }
}));

test('a sheep whose disk fails with EIO leaves; reads and writes through another node see no error; data intact', withTimeout(60_000, async () => {
  const dir = tempDir('sheep-eio-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    await cluster.start(3);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const { vid } = await createVdi(c, 'eio', 64n << 20n);
    // 8 MiB at 32 MiB written before the failure (2 objects), a verified load on the first 16 MiB (4 objects).
    const BASE_AT = 32 << 20;
    const base = Buffer.alloc(8 << 20);
    for (let i = 0; i < base.length; i++) base[i] = (i * 31 + 7) & 0xff;
    await writeVdi(c, vid, BASE_AT, base);
    const load = verifiedLoad(c, vid, (16 << 20) / BLOCK);
    await sleep(1000);
    const before = await clusterState(cluster.basePort);

    const faulty = cluster.nodes[2]!;
    const exit = new Promise<number | null>((r) => faulty.child.once('exit', (code) => r(code)));
    faulty.child.kill('SIGUSR2');
    const failedAt = Date.now();
    const code = await Promise.race([exit, sleep(10_000).then(() => 'still running')]);
    log(`the faulty sheep exited (${code}) after ${Date.now() - failedAt} ms`);
    assert.is(code, 1, 'the faulty sheep exits 1');
    assert.match(readFileSync(join(faulty.dir, 'sheep.log'), 'utf8'), /disk error: .*injected.*leaving the cluster/);
    for (const port of [cluster.basePort, cluster.basePort + 1]) await waitForMembers(port, 2, 5_000);
    await sleep(1500); // keep the load going at the new epoch
    const r = await load.stop();
    log(`load: ${r.acked.size} blocks acknowledged, ${r.writes} writes, ${r.reads} verified reads, slowest request ${r.maxLatencyMs} ms`);
    assert.equal(r.errors, [], 'no client error');
    assert.ok(r.acked.size > 50, `enough writes acknowledged (${r.acked.size})`);
    const after = await waitRecovered(cluster);
    assert.ok(after > before.epoch, `a new epoch (${before.epoch} → ${after})`);

    // Intact through both survivors: what was written before, and every acknowledged block of the load.
    for (const port of [cluster.basePort, cluster.basePort + 1]) {
      const x = await SheepClient.connect('127.0.0.1', port);
      assert.ok((await readVdi(x, vid, BASE_AT, base.length)).equals(base), `data written before, via ${port}`);
      for (const [blk, g] of r.acked) assert.ok((await readVdi(x, vid, blk * BLOCK, BLOCK)).equals(blockData(blk, g)), `block ${blk} via ${port}`);
      x.close();
    }

    // The disk replaced (here: the same store, readable again), the sheep restarted: full redundancy again.
    await cluster.startNode(2);
    await waitForMembers(cluster.basePort, 3);
    await waitRecovered(cluster);
    const x = await SheepClient.connect('127.0.0.1', cluster.basePort + 2);
    assert.ok((await readVdi(x, vid, BASE_AT, base.length)).equals(base), 'via the restarted sheep');
    for (const [blk, g] of r.acked) assert.ok((await readVdi(x, vid, blk * BLOCK, BLOCK)).equals(blockData(blk, g)), `block ${blk} via the restarted sheep`);
    x.close();
    await assertPlacement(cluster, c, 3);
    c.close();
  } finally {
    await cluster.stop();
    if (process.env.KEEP_TEST_DIRS) process.stderr.write(`kept ${dir}\n`);
    else removeDir(dir);
  }
}));

test.run();

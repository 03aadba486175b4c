// Failure tests on real sheep processes (local driver): node loss under load, loss of 2 of 3, full-cluster
// restart in another order, forced recovery, clean shutdown. After recovery, every object must have exactly
// its placement's replicas, byte-identical, and no acknowledged write may be lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { oidToHex, vidToDataOid } from '../src/proto/oid.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForMembers } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';
import { assertPlacement, BLOCK, blockData, clusterState, sleep, waitRecovered } from './recovery-helpers.js';

async function withCluster(fn: (cluster: LocalCluster) => Promise<void>): Promise<void> {
  const dir = tempDir('sheep-recovery-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    await cluster.start(3);
    await fn(cluster);
  } finally {
    await cluster.stop();
    if (process.env.KEEP_TEST_DIRS) process.stderr.write(`kept ${dir}\n`);
    else removeDir(dir);
  }
}

test('SIGKILL one node of 3 under verified load: nothing lost, full redundancy after it returns', withTimeout(120_000, () =>
  withCluster(async (cluster) => {
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const { vid } = await createVdi(c, 'load', 64n << 20n);
    const blocks = (16 << 20) / BLOCK; // work inside the first 16 MiB: 4 objects
    const acked = new Map<number, number>();
    let gen = 1;
    let stop = false;
    let errors = 0;
    const writer = async () => {
      while (!stop) {
        const blk = Math.floor(Math.random() * blocks);
        if (acked.get(blk) === -1) continue;
        const g = gen++;
        acked.set(blk, -1); // in flight: not checked until acknowledged
        try {
          await writeVdi(c, vid, blk * BLOCK, blockData(blk, g));
          acked.set(blk, g);
        } catch (e) {
          errors++;
          acked.delete(blk);
          throw e;
        }
      }
    };
    const reader = async () => {
      while (!stop) {
        const blk = Math.floor(Math.random() * blocks);
        const g = acked.get(blk);
        if (g === undefined || g === -1) {
          await sleep(1);
          continue;
        }
        const data = await readVdi(c, vid, blk * BLOCK, BLOCK);
        const now = acked.get(blk);
        if (now === g) assert.ok(data.equals(blockData(blk, g)), `block ${blk} gen ${g}`);
      }
    };
    const load = Promise.all([writer(), writer(), writer(), reader(), reader()]);
    await sleep(1500);
    await cluster.kill(2, 'SIGKILL');
    await sleep(2000);
    await cluster.startNode(2);
    await sleep(2000);
    stop = true;
    await load;
    assert.is(errors, 0);
    assert.ok(acked.size > 50, `enough writes acknowledged (${acked.size})`);
    await waitForMembers(cluster.basePort, 3);
    await waitRecovered(cluster);
    // every acknowledged block, through every node
    for (const n of cluster.nodes) {
      const x = await SheepClient.connect('127.0.0.1', n.port);
      for (const [blk, g] of acked) assert.ok((await readVdi(x, vid, blk * BLOCK, BLOCK)).equals(blockData(blk, g)), `block ${blk} via ${n.port}`);
      x.close();
    }
    const objects = await assertPlacement(cluster, c, 3);
    assert.ok(objects >= 5);
    c.close();
  }),
));

test('SIGKILL 2 of 3: still readable; after they return, every object has 3 identical copies', withTimeout(120_000, () =>
  withCluster(async (cluster) => {
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const { vid } = await createVdi(c, 'two-down', 32n << 20n);
    const data = Buffer.alloc(10 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    await writeVdi(c, vid, 0, data);
    await cluster.kill(1, 'SIGKILL');
    await cluster.kill(2, 'SIGKILL');
    await waitForMembers(cluster.basePort, 1);
    assert.ok((await readVdi(c, vid, 0, data.length)).equals(data), 'readable from the survivor');
    // written while alone: must reach the others once they are back
    const late = Buffer.alloc(8192, 0x77);
    await writeVdi(c, vid, 5 << 20, late);
    await cluster.startNode(1);
    await cluster.startNode(2);
    await waitForMembers(cluster.basePort, 3);
    await waitRecovered(cluster);
    data.set(late, 5 << 20);
    for (const n of cluster.nodes) {
      const x = await SheepClient.connect('127.0.0.1', n.port);
      assert.ok((await readVdi(x, vid, 0, data.length)).equals(data), `via ${n.port}`);
      x.close();
    }
    await assertPlacement(cluster, c, 3);
    assert.is(readdirSync(join(cluster.nodes[2]!.dir, 'obj')).filter((f) => f === oidToHex(vidToDataOid(vid, 1))).length, 1);
    c.close();
  }),
));

test('all nodes killed and restarted in another order: the cluster waits for all, then serves everything', withTimeout(120_000, () =>
  withCluster(async (cluster) => {
    let c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 2);
    const { vid } = await createVdi(c, 'phoenix', 32n << 20n);
    const data = Buffer.alloc(9 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
    await writeVdi(c, vid, 0, data);
    c.close();
    const before = await clusterState(cluster.basePort);
    for (const i of [0, 1, 2]) await cluster.kill(i, 'SIGKILL');
    await cluster.startNode(2);
    const lone = await SheepClient.connect('127.0.0.1', cluster.basePort + 2);
    const probe = await lone.request({ opcode: Op.READ_OBJ, dataLength: 16, obj: { oid: vidToDataOid(vid, 0) } });
    assert.is(probe.result, Res.WAIT_FOR_JOIN, 'waits for the other members');
    lone.close();
    await cluster.startNode(0);
    await cluster.startNode(1);
    await waitForMembers(cluster.basePort, 3);
    const epoch = await waitRecovered(cluster);
    assert.ok(epoch > before.epoch, `epoch moved on (${before.epoch} → ${epoch})`);
    c = await SheepClient.connect('127.0.0.1', cluster.basePort + 1);
    assert.ok((await readVdi(c, vid, 0, data.length)).equals(data));
    // every node shows the same epoch history
    const histories = await Promise.all(
      cluster.nodes.map(async (n) => {
        const x = await SheepClient.connect('127.0.0.1', n.port);
        const r = await x.request({ opcode: Op.STAT_CLUSTER, dataLength: (48 + 3 * 80) * 16, cluster: { nodesNr: 3 } });
        x.close();
        const out: string[] = [];
        for (let off = 0; off + 48 <= r.data.length; off += 48 + 3 * 80) if (r.data.readUInt32LE(off + 16)) out.push(`${r.data.readUInt32LE(off + 16)}:${r.data.readUInt32LE(off + 20)}`);
        return out.join(',');
      }),
    );
    assert.ok(histories.every((h) => h === histories[0]), histories.join(' | '));
    await assertPlacement(cluster, c, 2);
    c.close();
  }),
));

test('recover force starts a partial cluster; shutdown stops every node and they come back', withTimeout(120_000, () =>
  withCluster(async (cluster) => {
    let c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const { vid } = await createVdi(c, 'forced', 16n << 20n);
    await writeVdi(c, vid, 0, Buffer.alloc(4096, 9));
    c.close();
    for (const i of [0, 1, 2]) await cluster.kill(i, 'SIGKILL');
    await cluster.startNode(0);
    await cluster.startNode(1);
    await waitForMembers(cluster.basePort, 2);
    c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    assert.is((await c.request({ opcode: Op.READ_OBJ, dataLength: 8, obj: { oid: vidToDataOid(vid, 0) } })).result, Res.WAIT_FOR_JOIN);
    assert.is((await c.request({ opcode: Op.FORCE_RECOVER, dataLength: 3 * 80 })).result, Res.SUCCESS);
    await waitRecovered(cluster);
    assert.ok((await readVdi(c, vid, 0, 4096)).every((b) => b === 9));
    assert.is((await c.request({ opcode: Op.FORCE_RECOVER, dataLength: 3 * 80 })).result, Res.FORCE_RECOVER, 'not waiting any more');
    // clean shutdown of the whole cluster
    const exits = cluster.nodes.slice(0, 2).map((n) => new Promise((r) => n.child.once('exit', r)));
    assert.is((await c.request({ opcode: Op.SHUTDOWN })).result, Res.SUCCESS);
    c.close();
    await Promise.all(exits);
    await cluster.startNode(0);
    await cluster.startNode(1);
    await waitForMembers(cluster.basePort, 2);
    await waitRecovered(cluster);
    c = await SheepClient.connect('127.0.0.1', cluster.basePort + 1);
    assert.ok((await readVdi(c, vid, 0, 4096)).every((b) => b === 9));
    c.close();
  }),
));

test.run();

// Failure tests on real sheep processes (local driver): node loss under load, loss of 2 of 3, full-cluster
// restart in another order, forced recovery, clean shutdown. After recovery, every object must have exactly
// its placement's replicas, byte-identical, and no acknowledged write may be lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { vidToDataOid } from '../src/proto/oid.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForMembers } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';
import { killOneUnderLoad, killTwoOfThree, restartAllInAnotherOrder } from './recovery-scenarios.js';
import { waitRecovered } from './recovery-helpers.js';

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
  withCluster((cluster) => killOneUnderLoad(cluster, { lossMs: 10_000 })),
));

test('SIGKILL 2 of 3: still readable; after they return, every object has 3 identical copies', withTimeout(120_000, () =>
  withCluster((cluster) => killTwoOfThree(cluster, { lossMs: 10_000 })),
));

test('all nodes killed and restarted in another order: the cluster waits for all, then serves everything', withTimeout(120_000, () =>
  withCluster((cluster) => restartAllInAnotherOrder(cluster)),
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

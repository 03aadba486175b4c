// The tree store (dog cluster format -b tree): objects where Sheepdog 1.0 puts them, and a node restarted
// on a tree store serves them again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { createVdi, LocalCluster, randomPortBase, waitForMembers, waitForRunning } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

test('format -b tree: data objects in obj/<vid low byte>/, inodes in obj/meta/, survives a restart', withTimeout(90_000, async () => {
  const dir = tempDir('sheep-tree-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    await cluster.start(3);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    const f = await c.request({ opcode: Op.MAKE_FS, cluster: { copies: 3, blockSizeShift: 22 } }, Buffer.from('tree\0'));
    assert.is(f.result, Res.SUCCESS);
    const { vid } = await createVdi(c, 'treevdi', 32n << 20n);
    const data = Buffer.alloc(5 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    await writeVdi(c, vid, 0, data);
    const low = (vid & 0xff).toString(16).padStart(2, '0');
    for (const n of cluster.nodes) {
      assert.ok(existsSync(join(n.dir, 'obj', 'meta', oidToHex(vidToVdiOid(vid)))), 'inode in obj/meta');
      assert.ok(existsSync(join(n.dir, 'obj', low, oidToHex(vidToDataOid(vid, 0)))), `data in obj/${low}`);
      assert.ok(existsSync(join(n.dir, 'obj', low, oidToHex(vidToDataOid(vid, 1)))));
      assert.equal(readdirSync(join(n.dir, 'obj')).filter((x) => /^[0-9a-f]{16}$/.test(x)), [], 'nothing at the top level');
    }
    const list = await c.request({ opcode: Op.GET_OBJ_LIST, dataLength: 1 << 16 });
    assert.is(list.data.length / 8, 3, 'GET_OBJ_LIST walks the tree');
    await cluster.kill(1, 'SIGKILL');
    await waitForMembers(cluster.basePort, 2);
    await cluster.startNode(1);
    await waitForMembers(cluster.basePort, 3);
    await waitForRunning(cluster.basePort + 1);
    const x = await SheepClient.connect('127.0.0.1', cluster.basePort + 1);
    assert.ok((await readVdi(x, vid, 0, data.length)).equals(data), 'served by the restarted node');
    const local = await x.request({ opcode: Op.EXIST, obj: { oid: vidToDataOid(vid, 1) } });
    assert.is(local.result, Res.SUCCESS);
    x.close();
    c.close();
  } finally {
    await cluster.stop();
    removeDir(dir);
  }
}));

test.run();

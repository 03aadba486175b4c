// Strict mode (dog cluster format -t): with fewer zones than copies, writes halt instead of quietly
// writing fewer copies; reads go on; writes resume when the zone is back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi, VdiIoError } from '../src/client/vdi-io.js';
import { ClusterFlag, Op, Res } from '../src/proto/constants.js';
import { vidToDataOid } from '../src/proto/oid.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForMembers, waitForRunning } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

test('strict cluster: HALT with a zone missing, reads still served, writes back after it returns', withTimeout(90_000, async () => {
  const dir = tempDir('sheep-strict-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    await cluster.start(3);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3, ClusterFlag.STRICT);
    const { vid } = await createVdi(c, 'strict', 16n << 20n);
    await writeVdi(c, vid, 0, Buffer.alloc(4096, 1));
    await cluster.kill(2, 'SIGKILL');
    await waitForMembers(cluster.basePort, 2);
    const r = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToDataOid(vid, 0) } }, Buffer.alloc(512, 2));
    assert.is(r.result, Res.HALT);
    try {
      await writeVdi(c, vid, 8 << 20, Buffer.alloc(512, 3));
      assert.unreachable('a new object must not be created with fewer copies');
    } catch (e) {
      assert.ok(e instanceof VdiIoError && e.result === Res.HALT, String(e));
    }
    assert.ok((await readVdi(c, vid, 0, 4096)).every((b) => b === 1), 'reads still work');
    await cluster.startNode(2);
    await waitForMembers(cluster.basePort, 3);
    await waitForRunning(cluster.basePort + 2);
    await writeVdi(c, vid, 0, Buffer.alloc(512, 4));
    assert.ok((await readVdi(c, vid, 0, 512)).every((b) => b === 4));
    c.close();
  } finally {
    await cluster.stop();
    removeDir(dir);
  }
}));

test.run();

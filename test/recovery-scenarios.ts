// Failure scenarios shared by the local-driver and ZooKeeper-driver test files: the same steps and
// assertions, with the driver's own time to notice a dead node.
import * as assert from 'uvu/assert';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { vidToDataOid } from '../src/proto/oid.js';
import { createVdi, format, type LocalCluster, waitForMembers } from './cluster-harness.js';
import { assertPlacement, BLOCK, blockData, clusterState, sleep, verifiedLoad, waitRecovered } from './recovery-helpers.js';

export interface ScenarioOptions {
  /** How long the driver may take to report a killed node gone. */
  readonly lossMs: number;
  readonly log?: (msg: string) => void;
}

export async function readEverywhere(cluster: LocalCluster, vid: number, data: Buffer): Promise<void> {
  for (const n of cluster.nodes) {
    const x = await SheepClient.connect('127.0.0.1', n.port);
    try {
      assert.ok((await readVdi(x, vid, 0, data.length)).equals(data), `via ${n.port}`);
    } finally {
      x.close();
    }
  }
}

/** SIGKILL one node of 3 under a verified load: no client error, nothing lost, full redundancy after it returns. */
export async function killOneUnderLoad(cluster: LocalCluster, opts: ScenarioOptions): Promise<void> {
  const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
  await format(c, 3);
  const { vid } = await createVdi(c, 'load', 64n << 20n);
  const blocks = (16 << 20) / BLOCK; // work inside the first 16 MiB: 4 objects
  const load = verifiedLoad(c, vid, blocks);
  await sleep(1500);
  await cluster.kill(2, 'SIGKILL');
  const killedAt = Date.now();
  await waitForMembers(cluster.basePort, 2, opts.lossMs);
  opts.log?.(`SIGKILL: the others listed 2 nodes after ${Date.now() - killedAt} ms`);
  await sleep(500);
  await cluster.startNode(2);
  await waitForMembers(cluster.basePort, 3, 15_000);
  await sleep(1500);
  const r = await load.stop();
  opts.log?.(`load: ${r.acked.size} blocks acknowledged, ${r.writes} writes, ${r.reads} verified reads, slowest request ${r.maxLatencyMs} ms`);
  assert.equal(r.errors, [], 'no client error');
  assert.ok(r.acked.size > 50, `enough writes acknowledged (${r.acked.size})`);
  await waitRecovered(cluster);
  // every acknowledged block, through every node
  for (const n of cluster.nodes) {
    const x = await SheepClient.connect('127.0.0.1', n.port);
    for (const [blk, g] of r.acked) assert.ok((await readVdi(x, vid, blk * BLOCK, BLOCK)).equals(blockData(blk, g)), `block ${blk} via ${n.port}`);
    x.close();
  }
  const objects = await assertPlacement(cluster, c, 3);
  assert.ok(objects >= 5);
  c.close();
}

/** SIGKILL 2 of 3 (copies 3): still readable and writable; after they return, every object has 3 identical copies. */
export async function killTwoOfThree(cluster: LocalCluster, opts: ScenarioOptions): Promise<void> {
  const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
  await format(c, 3);
  const { vid } = await createVdi(c, 'two-down', 32n << 20n);
  const data = Buffer.alloc(10 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
  await writeVdi(c, vid, 0, data);
  await cluster.kill(1, 'SIGKILL');
  await cluster.kill(2, 'SIGKILL');
  await waitForMembers(cluster.basePort, 1, opts.lossMs);
  assert.ok((await readVdi(c, vid, 0, data.length)).equals(data), 'readable from the survivor');
  // written while alone: must reach the others once they are back
  const late = Buffer.alloc(8192, 0x77);
  await writeVdi(c, vid, 5 << 20, late);
  await cluster.startNode(1);
  await cluster.startNode(2);
  await waitForMembers(cluster.basePort, 3, 15_000);
  await waitRecovered(cluster);
  data.set(late, 5 << 20);
  await readEverywhere(cluster, vid, data);
  await assertPlacement(cluster, c, 3);
  c.close();
}

/** Every node killed and restarted in another order: the cluster waits for all, then serves everything. */
export async function restartAllInAnotherOrder(cluster: LocalCluster): Promise<void> {
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
  await waitForMembers(cluster.basePort, 3, 20_000);
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
}

// In-place upgrade: store directories laid out as Sheepdog 1.0 leaves them (DIR/config in its 40-byte
// format v6, DIR/epoch/%08u = sd_node[] + time_t, DIR/obj/<oid> with full-size inodes and data objects on
// the nodes placement picks) are served by sheep-actors started on the same directories: same VDIs,
// snapshots and bytes, and the cluster keeps working (writes, recovery after a node loss).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res, SD_INODE_DATA_VDI_ID_OFFSET, SD_INODE_SIZE } from '../src/proto/constants.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { decodeClusterInfo, encodeInodeHeader, encodeSdNodes, type SdNodeInit } from '../src/proto/structs.js';
import { buildVnodeRing, placeObject } from '../src/placement/ring.js';
import { hashVdiName } from '../src/placement/vdi-id.js';
import { encodeConfig } from '../src/node/cluster-state.js';
import { LocalCluster, nameBuf, randomPortBase, waitForMembers, waitForRunning } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const OBJ = 4 << 20;

function pattern(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

test('a cluster stopped under Sheepdog 1.0 comes back under sheep-actors with its VDIs, snapshots and bytes', withTimeout(90_000, async () => {
  const dir = tempDir('sheep-upgrade-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    const nodes: SdNodeInit[] = [0, 1, 2].map((i) => ({ nid: { addr: '127.0.0.1', port: cluster.basePort + i }, nrVnodes: 128, zone: i, space: 100n << 30n }));
    const ring = buildVnodeRing(nodes.map((n) => ({ addr: n.nid.addr, port: n.nid.port, zone: n.zone!, nrVnodes: n.nrVnodes! })));
    const ctime = (BigInt(1_700_000_000) << 32n) | 123_000_000n;
    const copies = 2;
    // What Sheepdog wrote on each node: config, two epochs, objects.
    const epochFile = (list: SdNodeInit[], t: number) => {
      const b = Buffer.alloc(list.length * 80 + 8);
      encodeSdNodes(list, b, 0);
      b.writeBigUInt64LE(BigInt(t), list.length * 80);
      return b;
    };
    for (let i = 0; i < 3; i++) {
      const d = join(dir, String(i));
      mkdirSync(join(d, 'obj', '.stale'), { recursive: true });
      mkdirSync(join(d, 'epoch'), { recursive: true });
      writeFileSync(join(d, 'config'), encodeConfig({ ctime, flags: 0x04, copies, store: 'plain', shutdown: true, copyPolicy: 0, blockSizeShift: 22, space: 100n << 30n }));
      writeFileSync(join(d, 'epoch', '00000001'), epochFile(nodes.slice(0, 2), 1_700_000_000));
      writeFileSync(join(d, 'epoch', '00000002'), epochFile(nodes, 1_700_000_100));
    }
    const put = (oid: bigint, data: Buffer) => {
      for (const i of placeObject(ring, oid, copies)) writeFileSync(join(dir, String(i), 'obj', oidToHex(oid)), data);
    };
    // VDI "legacy": snapshot (snap id 1) at vid h, working VDI at h+1 sharing object 0, owning object 1.
    const h = hashVdiName('legacy');
    const snapVid = h;
    const workVid = h + 1;
    const inode = (vid: number, snapId: number, snapCtime: bigint, parent: number, index: Array<[number, number]>) => {
      const b = Buffer.alloc(SD_INODE_SIZE); // Sheepdog writes whole inodes
      encodeInodeHeader({ name: 'legacy', tag: snapId === 1 ? 'before' : '', createTime: ctime, snapCtime, vdiSize: 64n << 20n, nrCopies: copies, blockSizeShift: 22, snapId, vdiId: vid, parentVdiId: parent }, b);
      for (const [i, v] of index) b.writeUInt32LE(v, SD_INODE_DATA_VDI_ID_OFFSET + 4 * i);
      return b;
    };
    put(vidToVdiOid(snapVid), inode(snapVid, 1, ctime + (1n << 32n), 0, [[0, snapVid], [1, snapVid]]));
    put(vidToVdiOid(workVid), inode(workVid, 2, 0n, snapVid, [[0, snapVid], [1, workVid]]));
    put(vidToDataOid(snapVid, 0), pattern(1, OBJ));
    put(vidToDataOid(snapVid, 1), pattern(2, OBJ));
    put(vidToDataOid(workVid, 1), pattern(3, OBJ));

    // Start sheep-actors on the same directories, in another order than the epoch lists them.
    await cluster.startNode(2);
    await cluster.startNode(0);
    await cluster.startNode(1);
    await waitForMembers(cluster.basePort, 3);
    for (const i of [0, 1, 2]) await waitForRunning(cluster.basePort + i);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    const info = decodeClusterInfo((await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data);
    assert.is(info.ctime, ctime, 'same cluster');
    assert.is(info.nrCopies, copies);
    assert.is(info.epoch, 3, 'epochs 1 and 2 kept, resumed as 3');
    const bitmap = (await c.request({ opcode: Op.READ_VDIS, dataLength: 1 << 21 })).data;
    for (const v of [snapVid, workVid]) assert.ok(bitmap[v >> 3]! & (1 << (v & 7)), `vid ${v.toString(16)} in use`);
    const work = await c.request({ opcode: Op.GET_VDI_INFO }, nameBuf('legacy'));
    assert.is(work.raw.readUInt32LE(24), workVid);
    const snap = await c.request({ opcode: Op.GET_VDI_INFO }, nameBuf('legacy', 'before'));
    assert.is(snap.raw.readUInt32LE(24), snapVid);
    assert.ok((await readVdi(c, workVid, 0, 2 * OBJ)).equals(Buffer.concat([pattern(1, OBJ), pattern(3, OBJ)])), 'working VDI bytes');
    assert.ok((await readVdi(c, snapVid, 0, 2 * OBJ)).equals(Buffer.concat([pattern(1, OBJ), pattern(2, OBJ)])), 'snapshot bytes');
    // the snapshot is still read-only, and the working VDI takes writes (copy-on-write of object 0)
    assert.is((await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToDataOid(snapVid, 0) } }, Buffer.alloc(8))).result, Res.READONLY);
    await writeVdi(c, workVid, 100, Buffer.alloc(10, 0xee));
    const after = await readVdi(c, workVid, 0, OBJ);
    assert.ok(after.subarray(100, 110).every((b) => b === 0xee));
    assert.ok((await readVdi(c, snapVid, 0, OBJ)).equals(pattern(1, OBJ)), 'snapshot unchanged');
    c.close();
  } finally {
    await cluster.stop();
    removeDir(dir);
  }
}));

test.run();

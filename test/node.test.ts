// A 3-process sheep cluster on loopback (local driver): wire conformance, replication on exactly the
// placement's nodes, snapshots/clones with copy-on-write, READONLY, reclaim, bad input, restart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { deleteVdi, readVdi, writeVdi } from '../src/client/vdi-io.js';
import { ClusterFlag, Flag, Op, Res, SD_INODE_DATA_VDI_ID_OFFSET, SD_VDI_BITMAP_SIZE } from '../src/proto/constants.js';
import { encodeRequest } from '../src/proto/header.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { decodeClusterInfo, decodeEpochLog, decodeRecoveryThrottling, encodeRecoveryThrottling, epochLogSize } from '../src/proto/structs.js';
import { buildVnodeRing, placeObject, toRingNode } from '../src/placement/ring.js';
import { hashVdiName } from '../src/placement/vdi-id.js';
import { createVdi, format, LocalCluster, nameBuf, nodeList, randomPortBase, vdiInfo, waitForMembers, waitForRunning } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(60_000, fn);
let dir = '';
let cluster: LocalCluster;
let c: SheepClient;

test.before(async () => {
  dir = tempDir('sheep-node-');
  cluster = new LocalCluster(dir, randomPortBase());
  await cluster.start(3);
  c = await SheepClient.connect('127.0.0.1', cluster.basePort);
});

test.after(async () => {
  c?.close();
  await cluster?.stop();
  removeDir(dir);
});

function holders(oid: bigint): number[] {
  return cluster.nodes.map((n, i) => (existsSync(join(n.dir, 'obj', oidToHex(oid))) ? i : -1)).filter((i) => i >= 0);
}

async function expectedHolders(oid: bigint, copies: number): Promise<number[]> {
  const nodes = await nodeList(c);
  const ring = buildVnodeRing(nodes.map(toRingNode));
  return placeObject(ring, oid, copies).map((i) => nodes[i]!.nid.port - cluster.basePort).sort();
}

test('before format: node list answers, I/O waits for format', T(async () => {
  const nodes = await nodeList(c);
  assert.is(nodes.length, 3);
  assert.equal(nodes.map((n) => n.nid.port), [0, 1, 2].map((i) => cluster.basePort + i));
  assert.equal(nodes.map((n) => n.zone), [0, 1, 2]);
  const r = await c.request({ opcode: Op.READ_OBJ, dataLength: 8, obj: { oid: 1n } });
  assert.is(r.result, Res.WAIT_FOR_FORMAT);
  const probe = await c.request({ opcode: Op.STAT_CLUSTER, dataLength: 48 });
  assert.is(probe.result, Res.WAIT_FOR_FORMAT);
}));

test('format, cluster info and epoch history agree on every node', T(async () => {
  await format(c, 3, ClusterFlag.USE_LOCK);
  for (const n of cluster.nodes) {
    // The format is applied on every node in cluster order, the others a moment after the one asked.
    await waitForRunning(n.port);
    const x = await SheepClient.connect('127.0.0.1', n.port);
    const info = await x.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 });
    const ci = decodeClusterInfo(info.data);
    assert.is(ci.nrCopies, 3);
    assert.is(ci.status, 1);
    assert.is(ci.epoch, 1);
    assert.is(ci.nodes.length, 3);
    const st = await x.request({ opcode: Op.STAT_CLUSTER, dataLength: epochLogSize(3) * 4, cluster: { nodesNr: 3 } });
    assert.is(st.result, Res.SUCCESS);
    const log = decodeEpochLog(st.data, 0);
    assert.is(log.epoch, 1);
    assert.is(log.nodes.length, 3);
    assert.is(log.nrCopies, 3);
    const def = await x.request({ opcode: Op.GET_CLUSTER_DEFAULT });
    assert.equal([def.raw[20], def.raw[22]], [3, 22]);
    x.close();
  }
}));

test('VDI create: id from the name hash, bitmap bit, lookup, duplicate refused', T(async () => {
  const a = await createVdi(c, 'test', 64n << 20n);
  assert.is(a.result, Res.SUCCESS);
  assert.is(a.vid, 0x7c2b25);
  assert.is(hashVdiName('test'), 0x7c2b25);
  const dup = await createVdi(c, 'test', 64n << 20n);
  assert.is(dup.result, Res.VDI_EXIST);
  const bitmap = await c.request({ opcode: Op.READ_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
  assert.is(bitmap.data.length, SD_VDI_BITMAP_SIZE);
  assert.ok(bitmap.data[0x7c2b25 >> 3]! & (1 << (0x7c2b25 & 7)));
  assert.is((await vdiInfo(c, 'test')).vid, 0x7c2b25);
  assert.is((await vdiInfo(c, 'nope')).result, Res.NO_VDI);
  assert.equal(holders(vidToVdiOid(0x7c2b25)), await expectedHolders(vidToVdiOid(0x7c2b25), 3));
}));

test('data with copies 3 and copies 2 is byte-identical on exactly the placement nodes', T(async () => {
  const data = Buffer.alloc(3 * 4 * 1024 * 1024 + 12345);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  await writeVdi(c, 0x7c2b25, 1000, data);
  const back = await readVdi(c, 0x7c2b25, 1000, data.length);
  assert.ok(back.equals(data), 'read back what was written (unaligned)');
  for (let idx = 0; idx < 4; idx++) {
    const oid = vidToDataOid(0x7c2b25, idx);
    const where = holders(oid);
    assert.equal(where, await expectedHolders(oid, 3), `object ${idx}`);
    const copies = where.map((i) => readFileSync(join(cluster.nodes[i]!.dir, 'obj', oidToHex(oid))));
    assert.ok(copies.every((b) => b.equals(copies[0]!)), 'replicas identical');
    assert.is(copies[0]!.length, 4 * 1024 * 1024);
  }
  const two = await createVdi(c, 'two', 16n << 20n, { copies: 2 });
  assert.is(two.result, Res.SUCCESS);
  await writeVdi(c, two.vid, 0, Buffer.alloc(8192, 0x5a));
  const oid = vidToDataOid(two.vid, 0);
  assert.is(holders(oid).length, 2);
  assert.equal(holders(oid), await expectedHolders(oid, 2));
}));

test('writeback writes (the NBD path) land on every replica; FLUSH_VDI with the writeback flag flushes every node', T(async () => {
  const wb = await createVdi(c, 'writeback', 16n << 20n);
  assert.is(wb.result, Res.SUCCESS);
  const oid = vidToDataOid(wb.vid, 0);
  const data = Buffer.alloc(8192, 0x3c);
  assert.is((await c.request({ opcode: Op.CREATE_AND_WRITE_OBJ, flags: Flag.WRITEBACK, obj: { oid, offset: 4096 } }, data)).result, Res.SUCCESS);
  assert.is((await c.request({ opcode: Op.WRITE_OBJ, flags: Flag.WRITEBACK, obj: { oid, offset: 0 } }, Buffer.alloc(4096, 0x11))).result, Res.SUCCESS);
  const where = holders(oid);
  assert.equal(where, await expectedHolders(oid, 3));
  for (const i of where) {
    const f = readFileSync(join(cluster.nodes[i]!.dir, 'obj', oidToHex(oid)));
    assert.ok(f.subarray(0, 4096).equals(Buffer.alloc(4096, 0x11)) && f.subarray(4096, 12288).equals(data), `replica on node ${i}`);
  }
  assert.is((await c.request({ opcode: Op.FLUSH_VDI, flags: Flag.WRITEBACK })).result, Res.SUCCESS);
  // old QEMU's FLUSH_VDI (no writeback flag) is still refused, so it keeps sending durable writes
  assert.is((await c.request({ opcode: Op.FLUSH_VDI })).result, Res.INVALID_PARMS);
  // every node answers the peer flush
  for (const n of cluster.nodes) {
    const pc = await SheepClient.connect('127.0.0.1', n.port);
    try {
      assert.is((await pc.request({ opcode: Op.FLUSH_PEER })).result, Res.SUCCESS);
    } finally {
      pc.close();
    }
  }
}));

test('per-node ops: EXIST, GET_OBJ_LIST, GET_HASH, STAT_SHEEP', T(async () => {
  const oid = vidToDataOid(0x7c2b25, 0);
  const node = holders(oid)[0]!;
  const x = await SheepClient.connect('127.0.0.1', cluster.nodes[node]!.port);
  assert.is((await x.request({ opcode: Op.EXIST, obj: { oid } })).result, Res.SUCCESS);
  assert.is((await x.request({ opcode: Op.EXIST, obj: { oid: vidToDataOid(0x7c2b25, 999) } })).result, Res.NO_OBJ);
  const list = await x.request({ opcode: Op.GET_OBJ_LIST, dataLength: 1 << 20 });
  const oids = Array.from({ length: list.data.length / 8 }, (_, i) => list.data.readBigUInt64LE(i * 8));
  assert.ok(oids.includes(oid));
  const h = await x.request({ opcode: Op.GET_HASH, obj: { oid } });
  const expected = createHash('sha1').update(readFileSync(join(cluster.nodes[node]!.dir, 'obj', oidToHex(oid)))).digest('hex');
  assert.is(h.raw.subarray(24, 44).toString('hex'), expected);
  const st = await x.request({ opcode: Op.STAT_SHEEP });
  assert.ok(st.raw.readBigUInt64LE(32) > 0n && st.raw.readBigUInt64LE(40) > 0n);
  x.close();
}));

test('snapshot: old id read-only, new working VDI, copy-on-write keeps snapshot bytes', T(async () => {
  const before = await readVdi(c, 0x7c2b25, 0, 8192);
  const snap = await createVdi(c, 'test', 0n, { base: 0x7c2b25, snapid: 1 });
  assert.is(snap.result, Res.SUCCESS);
  assert.is(snap.vid, 0x7c2b26);
  assert.is((await vdiInfo(c, 'test')).vid, 0x7c2b26, 'working VDI moved');
  assert.is((await vdiInfo(c, 'test', { snapid: 1 })).vid, 0x7c2b25, 'snapshot by id');
  // data writes to the snapshot's objects are refused
  const w = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToDataOid(0x7c2b25, 0) } }, Buffer.alloc(512));
  assert.is(w.result, Res.READONLY);
  await writeVdi(c, 0x7c2b26, 100, Buffer.alloc(50, 0xee));
  const snapBytes = await readVdi(c, 0x7c2b25, 0, 8192);
  assert.ok(snapBytes.equals(before), 'snapshot unchanged');
  const cur = await readVdi(c, 0x7c2b26, 0, 8192);
  assert.ok(cur.subarray(100, 150).every((b) => b === 0xee));
  assert.ok(cur.subarray(0, 100).equals(before.subarray(0, 100)), 'COW copied the rest of the object');
  assert.ok(holders(vidToDataOid(0x7c2b26, 0)).length === 3);
}));

test('clone of a snapshot shares data until written', T(async () => {
  const clone = await createVdi(c, 'clone', 0n, { base: 0x7c2b25 });
  assert.is(clone.result, Res.SUCCESS);
  const snapBytes = await readVdi(c, 0x7c2b25, 0, 4096);
  assert.ok((await readVdi(c, clone.vid, 0, 4096)).equals(snapBytes));
  assert.is(holders(vidToDataOid(clone.vid, 0)).length, 0, 'no own object before a write');
  await writeVdi(c, clone.vid, 0, Buffer.alloc(10, 1));
  assert.is(holders(vidToDataOid(clone.vid, 0)).length, 3);
  assert.ok((await readVdi(c, 0x7c2b25, 0, 4096)).equals(snapBytes), 'snapshot untouched by the clone');
}));

test('DISCARD_OBJ clears the index entry and frees the object', T(async () => {
  const v = await createVdi(c, 'discard-me', 16n << 20n);
  await writeVdi(c, v.vid, 4 << 20, Buffer.alloc(8192, 0x42));
  const oid = vidToDataOid(v.vid, 1);
  assert.is(holders(oid).length, 3);
  assert.is((await c.request({ opcode: Op.DISCARD_OBJ, obj: { oid } })).result, Res.SUCCESS);
  assert.is(holders(oid).length, 0, 'object freed on every replica');
  assert.ok((await readVdi(c, v.vid, 4 << 20, 8192)).every((b) => b === 0), 'reads as zeros');
  assert.is((await c.request({ opcode: Op.DISCARD_OBJ, obj: { oid: vidToVdiOid(v.vid) } })).result, Res.INVALID_PARMS);
  assert.is(await deleteVdi(c, 'discard-me', v.vid, nameBuf('discard-me')), Res.SUCCESS);
}));

test('VDI locks on a -l cluster: second lock refused, release frees it', T(async () => {
  const lock = (x: SheepClient) => x.request({ opcode: Op.LOCK_VDI, vdi: { type: 0 } }, nameBuf('two'));
  const r1 = await lock(c);
  assert.is(r1.result, Res.SUCCESS);
  const other = await SheepClient.connect('127.0.0.1', cluster.basePort + 1);
  assert.is((await lock(other)).result, Res.VDI_LOCKED);
  assert.is((await c.request({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: r1.raw.readUInt32LE(24) } })).result, Res.SUCCESS);
  assert.is((await lock(other)).result, Res.SUCCESS);
  await other.request({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: r1.raw.readUInt32LE(24) } });
  other.close();
}));

test('reclaim: deleting every VDI and snapshot leaves no data object on any node', T(async () => {
  const dataObjects = () =>
    cluster.nodes.flatMap((n) => readdirSync(join(n.dir, 'obj')).filter((f) => /^[0-9a-f]{16}$/.test(f) && !f.startsWith('8')));
  assert.ok(dataObjects().length > 0);
  // delete the working VDIs first (their objects stay while snapshots reference them) then the snapshot
  assert.is(await deleteVdi(c, 'test', 0x7c2b26, nameBuf('test')), Res.SUCCESS);
  assert.is(await deleteVdi(c, 'clone', (await vdiInfo(c, 'clone')).vid, nameBuf('clone')), Res.SUCCESS);
  assert.is(await deleteVdi(c, 'two', (await vdiInfo(c, 'two')).vid, nameBuf('two')), Res.SUCCESS);
  assert.is(await deleteVdi(c, 'writeback', (await vdiInfo(c, 'writeback')).vid, nameBuf('writeback')), Res.SUCCESS);
  assert.ok(dataObjects().length > 0, 'snapshot objects remain');
  assert.is(await deleteVdi(c, 'test', 0x7c2b25, nameBuf('test'), 1), Res.SUCCESS);
  assert.equal(dataObjects(), []);
  const del = await c.request({ opcode: Op.READ_DEL_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
  assert.ok(del.data[0x7c2b25 >> 3]! & (1 << (0x7c2b25 & 7)));
  assert.is((await vdiInfo(c, 'test')).result, Res.NO_VDI);
}));

test('ALTER_VDI_COPY: a copies-2 VDI raised to 3 gets a third replica of every object', T(async () => {
  const v = await createVdi(c, 'grow', 8n << 20n, { copies: 2 });
  await writeVdi(c, v.vid, 0, Buffer.alloc(5 << 20, 0x61));
  const oids = [vidToDataOid(v.vid, 0), vidToDataOid(v.vid, 1)];
  for (const oid of oids) assert.is(holders(oid).length, 2);
  const r = await c.request({ opcode: Op.ALTER_VDI_COPY, vdiState: { newVid: v.vid, copies: 3 } });
  assert.is(r.result, Res.SUCCESS);
  for (let i = 0; i < 100 && !oids.every((o) => holders(o).length === 3); i++) await new Promise((res) => setTimeout(res, 100));
  for (const oid of oids) assert.equal(holders(oid), await expectedHolders(oid, 3));
  assert.is((await c.request({ opcode: Op.ALTER_VDI_COPY, vdiState: { newVid: 0x123, copies: 3 } })).result, Res.NO_VDI);
  assert.is(await deleteVdi(c, 'grow', v.vid, nameBuf('grow')), Res.SUCCESS);
}));

test('STAT counts gateway requests; MD_INFO lists the store; GET_VNODES', T(async () => {
  const stat = async () => {
    const r = await c.request({ opcode: Op.STAT, dataLength: 120 });
    return Array.from({ length: 15 }, (_, i) => r.data.readBigUInt64LE(i * 8));
  };
  const before = await stat();
  await c.request({ opcode: Op.READ_OBJ, dataLength: 512, obj: { oid: vidToVdiOid(0x7c2b25) } });
  const after = await stat();
  assert.is(after[2]! - before[2]!, 1n, 'gateway total');
  assert.is(after[9]! - before[9]!, 1n, 'gateway reads');
  assert.ok(after[5]! - before[5]! >= 512n, 'gateway bytes out');
  const md = await c.request({ opcode: Op.MD_INFO, dataLength: 263688 });
  assert.is(md.result, Res.SUCCESS);
  assert.ok(md.data.toString('latin1').includes(cluster.nodes[0]!.dir), 'the store directory is the disk');
  assert.is((await c.request({ opcode: Op.MD_INFO, dataLength: 100 })).result, Res.INVALID_PARMS);
  const vn = await c.request({ opcode: Op.GET_VNODES, dataLength: 8 });
  assert.is(vn.data.readInt32LE(0), 128);
}));

test('recovery throttle: SET_RECOVERY then GET_RECOVERY, bad sizes refused', T(async () => {
  const body = encodeRecoveryThrottling({ maxExecCount: 2, queueWorkInterval: 150n, throttling: true });
  assert.is((await c.request({ opcode: Op.SET_RECOVERY }, body)).result, Res.SUCCESS);
  const got = decodeRecoveryThrottling((await c.request({ opcode: Op.GET_RECOVERY, dataLength: 24 })).data);
  assert.equal([got.maxExecCount, got.queueWorkInterval, got.throttling], [2, 150n, true]);
  assert.is((await c.request({ opcode: Op.SET_RECOVERY }, Buffer.alloc(4))).result, Res.INVALID_PARMS);
  await c.request({ opcode: Op.SET_RECOVERY }, encodeRecoveryThrottling({ maxExecCount: 0, queueWorkInterval: 0n, throttling: false }));
}));

test('bad input: unknown opcode, version mismatch, oversized length closes only that connection', T(async () => {
  assert.is((await c.request({ opcode: 0x77 })).result, Res.INVALID_PARMS);
  assert.is((await c.request({ opcode: Op.GET_NODE_LIST, protoVer: 0x09, dataLength: 80 })).result, Res.VER_MISMATCH);
  assert.is((await c.request({ opcode: Op.FLUSH_VDI })).result, Res.INVALID_PARMS);
  assert.is((await c.request({ opcode: Op.NEW_VDI }, Buffer.alloc(10))).result, Res.INVALID_PARMS);
  // a header promising 1 GiB of payload: the server must close the socket without waiting for it
  const closed = await new Promise<boolean>((resolve) => {
    const s = connect(cluster.basePort, '127.0.0.1', () => {
      s.write(encodeRequest({ opcode: Op.WRITE_OBJ, flags: Flag.CMD_WRITE, dataLength: 1 << 30, obj: { oid: vidToDataOid(1, 0) } }));
    });
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
    setTimeout(() => resolve(false), 3000);
  });
  assert.ok(closed, 'oversized request closes the connection');
  // a truncated header followed by a hang-up does no harm
  await new Promise<void>((resolve) => {
    const s = connect(cluster.basePort, '127.0.0.1', () => s.end(Buffer.alloc(20, 0xff)));
    s.on('close', () => resolve());
  });
  assert.is((await nodeList(c)).length, 3, 'the existing connection still works');
  const log = readFileSync(join(cluster.nodes[0]!.dir, 'sheep.log'), 'utf8');
  assert.match(log, /above the \d+-byte limit/);
}));

test('a gateway-only node (-g) serves I/O but stores nothing', T(async () => {
  const gw = await cluster.startNode(3, ['-g']);
  await waitForMembers(cluster.basePort, 4);
  await waitForRunning(gw.port);
  const g = await SheepClient.connect('127.0.0.1', gw.port);
  const nodes = await nodeList(g);
  assert.equal(nodes.map((n) => n.nrVnodes), [128, 128, 128, 0]);
  const v = await createVdi(g, 'via-gateway', 8n << 20n);
  assert.is(v.result, Res.SUCCESS);
  const payload = Buffer.alloc(12345, 0x3c);
  await writeVdi(g, v.vid, 777, payload);
  assert.ok((await readVdi(g, v.vid, 777, payload.length)).equals(payload));
  assert.equal(readdirSync(join(gw.dir, 'obj')).filter((f) => /^[0-9a-f]{16}$/.test(f)), [], 'the gateway stores nothing');
  assert.equal(holders(vidToDataOid(v.vid, 0)), [0, 1, 2]);
  const st = await g.request({ opcode: Op.STAT_SHEEP });
  assert.equal([st.raw.readBigUInt64LE(32), st.raw.readBigUInt64LE(40)], [0n, 0n]);
  g.close();
  await cluster.kill(3, 'SIGTERM');
  await waitForMembers(cluster.basePort, 3);
}));

test('a restarted node rejoins with its objects and serves them', T(async () => {
  const epochBefore = decodeClusterInfo((await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data).epoch;
  const v = await createVdi(c, 'survivor', 8n << 20n);
  const payload = Buffer.alloc(65536);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  await writeVdi(c, v.vid, 0, payload);
  await cluster.kill(2, 'SIGKILL');
  await waitForMembers(cluster.basePort, 2);
  assert.ok((await readVdi(c, v.vid, 0, payload.length)).equals(payload), 'served with a node down');
  await cluster.startNode(2);
  await waitForMembers(cluster.basePort, 3);
  await waitForRunning(cluster.basePort + 2);
  const x = await SheepClient.connect('127.0.0.1', cluster.basePort + 2);
  assert.ok((await readVdi(x, v.vid, 0, payload.length)).equals(payload), 'served through the restarted node');
  const local = await x.request({ opcode: Op.EXIST, obj: { oid: vidToDataOid(v.vid, 0) } });
  assert.is(local.result, Res.SUCCESS, 'its own copy survived the restart');
  const info = decodeClusterInfo((await x.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data);
  assert.is(info.epoch, epochBefore + 2, 'leave and rejoin are one epoch each');
  x.close();
  void SD_INODE_DATA_VDI_ID_OFFSET;
}));

test.run();

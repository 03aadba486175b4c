// `dog node vnodes set <N>` (SD_OP_SET_VNODES) against real sheep processes (local driver): on a
// fixed-vnodes cluster the node's vnodes change everywhere, a new epoch starts, recovery moves objects to
// the new placement and data stays readable; a later join keeps the change. An auto-vnodes cluster refuses
// it with dog's "Failed to execute request" (exit 255); bad arguments get dog's usage/error exits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { Op, Res } from '../src/proto/constants.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { buildVnodeRing, placeObject, toRingNode } from '../src/placement/ring.js';
import { LocalCluster, nodeList, randomPortBase, vdiInfo, waitForMembers, waitForRunning } from './cluster-harness.js';
import { runDog } from './dog-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(90_000, fn);
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir = '';
let cluster: LocalCluster;
let base = 0;
/**
 * 48 MiB written before the change: twelve data objects (2 copies each of 3 nodes) plus the inode, so
 * that halving one node's vnodes moves some of them (about 1 in 5 objects, on average).
 */
const payload = randomBytes(48 * MiB);
const COPIES = 2;
const dataOids = (vid: number) => [vidToVdiOid(vid), ...Array.from({ length: 12 }, (_, i) => vidToDataOid(vid, i))];

/** dog against node i of the fixed-vnodes cluster */
const dog = (args: string[], i = 0, input?: Buffer) => runDog([...args, '-p', String(base + i)], input);

/** V-Nodes column of `dog node list -r` as seen by node i */
async function vnodesSeenBy(i: number): Promise<number[]> {
  const r = await dog(['node', 'list', '-r'], i);
  assert.is(r.code, 0, r.err);
  return r.out.trim().split('\n').map((l) => Number(l.split(' ')[2]));
}

async function until(what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** No node lists itself in `dog node recovery`. */
const recovered = async () => {
  const r = await dog(['node', 'recovery', '-r']);
  return r.code === 0 && r.out === '';
};

function holders(oid: bigint): number[] {
  return cluster.nodes.map((n, i) => (existsSync(join(n.dir, 'obj', oidToHex(oid))) ? i : -1)).filter((i) => i >= 0);
}

async function expectedHolders(c: SheepClient, oid: bigint, copies: number): Promise<number[]> {
  const nodes = await nodeList(c);
  return placeObject(buildVnodeRing(nodes.map(toRingNode)), oid, copies)
    .map((i) => nodes[i]!.nid.port - base)
    .sort();
}

test.before(
  withTimeout(60_000, async () => {
    dir = tempDir('sheep-vnodes-');
    base = randomPortBase();
    cluster = new LocalCluster(dir, base);
    await cluster.start(3, ['-V', '128']);
    const f = await dog(['cluster', 'format', '-V']);
    assert.is(f.code, 0, f.err);
    await waitForRunning(base);
  }),
);

test.after(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

test(
  'bad arguments: usage for a missing count (64), dog\'s range message for bad ones (64)',
  T(async () => {
    const missing = await dog(['node', 'vnodes', 'set']);
    assert.is(missing.code, 64);
    assert.ok(missing.out.startsWith('Usage: dog node vnodes set [-a address] [-p port] [-h] <num of vnodes>\n'), missing.out);
    assert.is(missing.err, '');
    const noSub = await dog(['node', 'vnodes']);
    assert.is(noSub.code, 64);
    assert.ok(noSub.out.startsWith('Usage: dog node vnodes set [-a address] [-p port] [-h] <num of vnodes>\nAvailable subcommands:\n  set                     set new vnodes\n'), noSub.out);
    const unknown = await dog(['node', 'vnodes', 'get']);
    assert.is(unknown.code, 1);
    // as with getopt in C, a negative count reads as an option
    const neg = await dog(['node', 'vnodes', 'set', '-1']);
    assert.is(neg.code, 64);
    assert.match(neg.err, /invalid option/);
    for (const bad of ['abc', '0', '65536', '12x', '4294967297', ' 7x', '']) {
      const r = await dog(['node', 'vnodes', 'set', bad]);
      if (bad === '') {
        assert.is(r.code, 64); // an empty argument is a missing one
        continue;
      }
      assert.is(r.code, 64, bad);
      assert.is(r.out, '', bad);
      assert.is(r.err, `Invalid number of vnodes '${bad}': must be an integer between 1 and 65535\n`, bad);
    }
    // nothing was sent: still epoch 1, 128 everywhere
    assert.equal(await vnodesSeenBy(0), [128, 128, 128]);
  }),
);

test(
  'fixed vnodes: set 64 on node 1 -> node list, new epoch, placement and data follow',
  T(async () => {
    const c = await dog(['vdi', 'create', '-c', String(COPIES), 'data', '64M']);
    assert.is(c.code, 0, c.err);
    const w = await dog(['vdi', 'write', 'data'], 0, payload);
    assert.is(w.code, 0, w.err);

    const r = await dog(['node', 'vnodes', 'set', '64'], 1);
    assert.is(r.code, 0, r.err);
    assert.is(r.out + r.err, '');

    // the receiving node has applied it when dog returns; the others apply the same message
    assert.equal(await vnodesSeenBy(1), [128, 64, 128]);
    for (const i of [0, 2]) await until(`node ${i} to see 64 vnodes`, async () => (await vnodesSeenBy(i)).join() === '128,64,128');
    const list = await dog(['node', 'list'], 2);
    assert.is(list.out.split('\n')[2], `   1   ${`127.0.0.1:${base + 1}`.padEnd(20)}\t64          1`);

    const s = await SheepClient.connect('127.0.0.1', base + 1);
    try {
      const vn = await s.request({ opcode: Op.GET_VNODES, dataLength: 4 });
      assert.is(vn.data.readInt32LE(0), 64);
    } finally {
      s.close();
    }

    const info = await dog(['cluster', 'info'], 0);
    assert.is(info.code, 0, info.err);
    const epochs = info.out.split('\n').filter((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+ \[/.test(l));
    assert.is(epochs.length, 2, info.out);
    assert.ok(epochs[0]!.endsWith(` 2 [127.0.0.1:${base}:128, 127.0.0.1:${base + 1}:64, 127.0.0.1:${base + 2}:128]`), epochs[0]);
    assert.ok(epochs[1]!.endsWith(` 1 [127.0.0.1:${base}:128, 127.0.0.1:${base + 1}:128, 127.0.0.1:${base + 2}:128]`), epochs[1]);

    // readable at once (recovery may still run), and after recovery from every node
    const now = await dog(['vdi', 'read', 'data'], 2);
    assert.is(now.code, 0, now.err);
    assert.ok(now.bin.subarray(0, payload.length).equals(payload), 'data read right after the change');
    await until('recovery to finish', recovered);
    for (const i of [0, 1, 2]) {
      const rd = await dog(['vdi', 'read', 'data', '0', String(payload.length)], i);
      assert.is(rd.code, 0, rd.err);
      assert.ok(rd.bin.equals(payload), `data read through node ${i}`);
    }

    // after recovery each object lives exactly where the ring with the new vnodes puts it
    const client = await SheepClient.connect('127.0.0.1', base);
    try {
      const vid = (await vdiInfo(client, 'data')).vid;
      const nodes = await nodeList(client);
      assert.equal(nodes.map((n) => n.nrVnodes), [128, 64, 128]);
      assert.is(buildVnodeRing(nodes.map(toRingNode)).size, 128 + 64 + 128);
      for (const oid of dataOids(vid)) {
        const want = (await expectedHolders(client, oid, COPIES)).join();
        await until(`${oidToHex(oid)} on its new holders`, async () => holders(oid).join() === want);
      }
    } finally {
      client.close();
    }
  }),
);

test(
  'a node joining later gets the changed vnodes; the change survives the membership change',
  T(async () => {
    await cluster.startNode(3, ['-V', '128']);
    await waitForMembers(base, 4);
    await waitForRunning(base + 3);
    for (const i of [0, 1, 2, 3]) await until(`node ${i} to list 4 nodes with 64 on node 1`, async () => (await vnodesSeenBy(i)).join() === '128,64,128,128');
    const info = await dog(['cluster', 'info'], 3);
    assert.match(info.out, new RegExp(` 3 \\[127\\.0\\.0\\.1:${base}:128, 127\\.0\\.0\\.1:${base + 1}:64, 127\\.0\\.0\\.1:${base + 2}:128, 127\\.0\\.0\\.1:${base + 3}:128\\]\\n`));

    // the newcomer can change its own vnodes too, and everyone agrees
    const r = await dog(['node', 'vnodes', 'set', '200'], 3);
    assert.is(r.code, 0, r.err);
    for (const i of [0, 1, 2, 3]) await until(`node ${i} to see 200 on node 3`, async () => (await vnodesSeenBy(i)).join() === '128,64,128,200');
    await until('recovery to finish', recovered);
    const client = await SheepClient.connect('127.0.0.1', base + 3);
    try {
      const vid = (await vdiInfo(client, 'data')).vid;
      for (const oid of dataOids(vid)) {
        const want = (await expectedHolders(client, oid, COPIES)).join();
        await until(`${oidToHex(oid)} on its new holders`, async () => holders(oid).join() === want);
      }
    } finally {
      client.close();
    }
    const rd = await dog(['vdi', 'read', 'data', '0', String(payload.length)], 3);
    assert.ok(rd.bin.equals(payload), 'data after the second change');

    // a node that leaves takes its setting with it (it comes back with its own -V, as sheep does)
    await cluster.kill(3, 'SIGTERM');
    await waitForMembers(base, 3);
    await until('3 nodes listed', async () => (await vnodesSeenBy(0)).join() === '128,64,128');
  }),
);

test(
  'wire: SET_VNODES checks the count (INVALID_PARMS) and a gateway-only node answers GATEWAY_MODE',
  T(async () => {
    const c = await SheepClient.connect('127.0.0.1', base);
    try {
      const body = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeInt32LE(n, 0);
        return b;
      };
      assert.is((await c.request({ opcode: Op.SET_VNODES }, body(0))).result, Res.INVALID_PARMS);
      assert.is((await c.request({ opcode: Op.SET_VNODES }, body(65536))).result, Res.INVALID_PARMS);
      assert.is((await c.request({ opcode: Op.SET_VNODES }, Buffer.alloc(2))).result, Res.INVALID_PARMS);
    } finally {
      c.close();
    }
    const gw = await cluster.startNode(3, ['-g']);
    await waitForMembers(base, 4);
    await waitForRunning(gw.port);
    const r = await dog(['node', 'vnodes', 'set', '32'], 3);
    assert.is(r.code, 255);
    assert.is(r.err, 'Failed to execute request\n');
    const g = await SheepClient.connect('127.0.0.1', gw.port);
    try {
      const b = Buffer.alloc(8);
      b.writeInt32LE(32, 0);
      assert.is((await g.request({ opcode: Op.SET_VNODES }, b)).result, Res.GATEWAY_MODE);
    } finally {
      g.close();
    }
    await cluster.kill(3, 'SIGTERM');
    await waitForMembers(base, 3);
  }),
);

test(
  'auto vnodes: the cluster refuses (INVALID_VNODES_STRATEGY), dog prints "Failed to execute request", exit 255',
  T(async () => {
    const autoDir = tempDir('sheep-vnodes-auto-');
    const autoBase = randomPortBase();
    const auto = new LocalCluster(autoDir, autoBase);
    try {
      await auto.start(2);
      const f = await runDog(['cluster', 'format', '-p', String(autoBase)]);
      assert.is(f.code, 0, f.err);
      await waitForRunning(autoBase);
      const before = await runDog(['node', 'list', '-r', '-p', String(autoBase)]);
      const r = await runDog(['node', 'vnodes', 'set', '64', '-p', String(autoBase + 1)]);
      assert.is(r.code, 255);
      assert.is(r.out, '');
      assert.is(r.err, 'Failed to execute request\n');
      const c = await SheepClient.connect('127.0.0.1', autoBase);
      try {
        const b = Buffer.alloc(8);
        b.writeInt32LE(64, 0);
        assert.is((await c.request({ opcode: Op.SET_VNODES }, b)).result, Res.INVALID_VNODES_STRATEGY);
      } finally {
        c.close();
      }
      const after = await runDog(['node', 'list', '-r', '-p', String(autoBase)]);
      assert.is(after.out, before.out);
      const info = await runDog(['cluster', 'info', '-r', '-p', String(autoBase)]);
      assert.is(info.out.trim().split('\n').filter((l) => /^\d+ \d+ \[/.test(l)).length, 1, info.out);
    } finally {
      await auto.stop();
      removeDir(autoDir);
    }
  }),
);

test.run();

// `dog cluster reweight` and `dog cluster format -F` against 3 real sheep processes (local driver), with
// each node's capacity set by STORE/capacity. Reweight: a node whose capacity changed re-announces its
// space, auto vnodes follow, a new epoch starts and recovery moves the data, which stays byte-identical.
// -F (AVOID_DISKFULL): when the members left could not hold their share, recovery is skipped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { buildVnodeRing, placeObject, toRingNode } from '../src/placement/ring.js';
import { sdHashVdi } from '../src/placement/vdi-id.js';
import { LocalCluster, nodeList, randomPortBase, vdiInfo, waitForMembers, waitForRunning } from './cluster-harness.js';
import { runDog } from './dog-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(120_000, fn);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir = '';
let cluster: LocalCluster;
let base = 0;
const payload = randomBytes(48 * MiB);

const dog = (args: string[], i = 0, input?: Buffer) => runDog([...args, '-p', String(base + i)], input);

async function ok(args: string[], i = 0, input?: Buffer): Promise<string> {
  const r = await dog(args, i, input);
  assert.is(r.code, 0, `dog ${args.join(' ')}: ${r.err}`);
  return r.out;
}

const setCapacity = (i: number, bytes: number) => writeFileSync(join(dir, String(i), 'capacity'), `${bytes}\n`);

async function vnodesSeenBy(i: number): Promise<string> {
  const out = await ok(['node', 'list', '-r'], i);
  return out.trim().split('\n').map((l) => l.split(' ')[2]).join(',');
}

async function until(what: string, cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const recovered = async (i = 0) => {
  const r = await dog(['node', 'recovery', '-r'], i);
  return r.code === 0 && r.out === '';
};

async function epochsSeenBy(i: number): Promise<number> {
  const out = await ok(['cluster', 'info', '-r'], i);
  return out.split('\n').filter((l) => /^\d+ \d+ \[/.test(l)).length;
}

function holders(oid: bigint, nodes = [0, 1, 2]): number[] {
  return nodes.filter((i) => existsSync(join(dir, String(i), 'obj', oidToHex(oid))));
}

test.before(
  withTimeout(60_000, async () => {
    dir = tempDir('sheep-reweight-');
    base = randomPortBase();
    cluster = new LocalCluster(dir, base);
    for (const i of [0, 1, 2]) {
      mkdirSync(join(dir, String(i)), { recursive: true });
      setCapacity(i, GiB);
    }
    await cluster.start(3);
    await ok(['cluster', 'format', '-c', '2']);
    await waitForRunning(base);
  }),
);

test.after(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

test(
  'reweight: nothing changed -> no new epoch; a bigger disk -> more vnodes, new epoch, data moves intact',
  T(async () => {
    assert.is(await vnodesSeenBy(0), '128,128,128');
    const info = await ok(['node', 'info', '-r']);
    assert.match(info, new RegExp(`^0 ${GiB} `, 'm'), info);
    await ok(['vdi', 'create', 'data', '64M']);
    await ok(['vdi', 'write', 'data'], 0, payload);

    const same = await dog(['cluster', 'reweight']);
    assert.is(same.code, 0, same.err);
    assert.is(same.out + same.err, '');
    await sleep(500);
    assert.is(await epochsSeenBy(0), 1);

    setCapacity(0, 2 * GiB);
    const r = await dog(['cluster', 'reweight'], 1);
    assert.is(r.code, 0, r.err);
    assert.is(r.out + r.err, '');
    // spaces 2:1:1 -> 128 x 1.5 and 128 x 0.75, on every node
    for (const i of [0, 1, 2]) await until(`node ${i} to see the new vnodes`, async () => (await vnodesSeenBy(i)) === '192,96,96');
    for (const i of [0, 1, 2]) assert.is(await epochsSeenBy(i), 2, `epochs on node ${i}`);
    const nodeInfo = await ok(['node', 'info', '-r'], 2);
    assert.match(nodeInfo, new RegExp(`^0 ${2 * GiB} `, 'm'), nodeInfo);

    await until('recovery to finish', recovered);
    for (const i of [0, 1, 2]) {
      const rd = await dog(['vdi', 'read', 'data', '0', String(payload.length)], i);
      assert.is(rd.code, 0, rd.err);
      assert.ok(rd.bin.equals(payload), `data read through node ${i}`);
    }
    const c = await SheepClient.connect('127.0.0.1', base);
    try {
      const vid = (await vdiInfo(c, 'data')).vid;
      const nodes = await nodeList(c);
      assert.equal(nodes.map((n) => n.nrVnodes), [192, 96, 96]);
      const ring = buildVnodeRing(nodes.map(toRingNode));
      for (const oid of [vidToVdiOid(vid), ...Array.from({ length: 12 }, (_, i) => vidToDataOid(vid, i))]) {
        const want = placeObject(ring, oid, 2).map((i) => nodes[i]!.nid.port - base).sort().join();
        await until(`${oidToHex(oid)} on its new holders`, async () => holders(oid).join() === want);
      }
    } finally {
      c.close();
    }
  }),
);

test(
  'format -F: recovery that would overfill the remaining nodes is skipped; data stays readable',
  T(async () => {
    for (const i of [0, 1, 2]) setCapacity(i, 16 * MiB);
    await ok(['cluster', 'reweight']);
    for (const i of [0, 1, 2]) await until(`node ${i} to see equal vnodes`, async () => (await vnodesSeenBy(i)) === '128,128,128');
    await ok(['cluster', 'format', '-f', '-F', '-c', '2']);
    await waitForRunning(base);
    const flags = readFileSync(join(dir, '0', 'config')).readUInt16LE(8);
    assert.ok(flags & 0x20, `config flags 0x${flags.toString(16)}`);
    await ok(['vdi', 'create', 'data', '64M']);
    const small = payload.subarray(0, 40 * MiB);
    await ok(['vdi', 'write', 'data'], 0, small);
    const before = [0, 1].map((i) => holdersCount(i));

    // node 2 goes: nodes 0 and 1 would each need all ten 4 MiB objects (40 MiB) in 16 MiB
    await cluster.kill(2);
    await waitForMembers(base, 2);
    await until('recovery to be skipped', async () => readFileSync(join(dir, '0', 'sheep.log'), 'utf8').includes('canceling recovery because of disk full'));
    await until('recovery state to settle', recovered);
    assert.match(readFileSync(join(dir, '1', 'sheep.log'), 'utf8'), /canceling recovery because of disk full/);
    assert.equal([0, 1].map((i) => holdersCount(i)), before, 'nothing pulled or set aside');
    const rd = await dog(['vdi', 'read', 'data', '0', String(small.length)], 1);
    assert.is(rd.code, 0, rd.err);
    assert.ok(rd.bin.equals(small), 'data read with recovery skipped');
  }),
);

/** How many of the -F test VDI's objects node i stores (a fresh format: the vid is the name's hash). */
function holdersCount(i: number): number {
  const vid = sdHashVdi('data') || 1;
  const oids = [vidToVdiOid(vid), ...Array.from({ length: 10 }, (_, k) => vidToDataOid(vid, k))];
  return oids.filter((oid) => existsSync(join(dir, String(i), 'obj', oidToHex(oid)))).length;
}

test.run();

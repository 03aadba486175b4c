// Erasure coding end to end on 6 sheep processes: a cluster formatted 4:2 and a 2:1 VDI. Data written
// through the wire (aligned, unaligned, across objects) reads back byte for byte; strip i of each object
// sits in obj/<oid>_<i> on exactly the i-th node of its placement and the strips on disk decode to the
// data (Sheepdog's layout); reads survive lost nodes; recovery rebuilds the lost strips on their new
// holders; alter-copy is refused; deleting the VDIs removes every strip file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op } from '../src/proto/constants.js';
import { oidToHex, vidToDataOid } from '../src/proto/oid.js';
import { buildVnodeRing, placeObject, toRingNode } from '../src/placement/ring.js';
import { createCodec, joinStripes } from '../src/ec/index.js';
import { LocalCluster, nodeList, randomPortBase, vdiInfo } from './cluster-harness.js';
import { runDog } from './dog-harness.js';
import { waitRecovered } from './recovery-helpers.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(60_000, fn);
const OBJ = 4 << 20;
const VDI_SIZE = 16 << 20;
let dir = '';
let cluster: LocalCluster;
let c: SheepClient;

interface EcVdi {
  readonly name: string;
  readonly d: number;
  readonly p: number;
  vid: number;
  /** What the VDI should hold. */
  readonly model: Buffer;
}
const vdis: EcVdi[] = [
  { name: 'ec42', d: 4, p: 2, vid: 0, model: Buffer.alloc(VDI_SIZE) },
  { name: 'ec21', d: 2, p: 1, vid: 0, model: Buffer.alloc(VDI_SIZE) },
];

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

async function write(v: EcVdi, offset: number, len: number, seed: number): Promise<void> {
  const data = pattern(len, seed);
  await writeVdi(c, v.vid, offset, data);
  data.copy(v.model, offset);
}

async function checkReads(v: EcVdi, what: string): Promise<void> {
  const got = await readVdi(c, v.vid, 0, VDI_SIZE);
  if (!got.equals(v.model)) {
    let i = 0;
    while (got[i] === v.model[i]) i++;
    let j = got.length - 1;
    while (got[j] === v.model[j]) j--;
    const idx = Math.floor(i / OBJ);
    const oid = vidToDataOid(v.vid, idx);
    const hex = oidToHex(oid);
    const enc = createCodec(v.d, v.p).encodeObject(v.model.subarray(idx * OBJ, (idx + 1) * OBJ));
    const nodes = await nodeList(c);
    const place = placeObject(buildVnodeRing(nodes.map(toRingNode)), oid, v.d + v.p).map((k) => nodes[k]!.nid.port - cluster.basePort);
    const lines: string[] = [`placement ${place.join(',')}`];
    for (const n of cluster.nodes) {
      for (const sub of ['obj', 'obj/.stale']) {
        let names: string[] = [];
        try { names = readdirSync(join(n.dir, sub)); } catch { /* none */ }
        for (const f of names.filter((f) => f.startsWith(`${hex}_`))) {
          const k = Number(f.slice(17).split('.')[0]);
          const ok = readFileSync(join(n.dir, sub, f)).equals(Buffer.from(enc[k]!));
          lines.push(`node ${n.port - cluster.basePort} ${sub}/${f}: ${ok ? 'current' : 'OUTDATED'}`);
        }
      }
    }
    assert.unreachable(`${v.name}: whole VDI reads back (${what}): bytes ${i}..${j} differ (object ${idx}, base port ${cluster.basePort})\n${lines.join('\n')}`);
  }
  // Small unaligned reads inside stripes and across objects.
  for (const [off, len] of [[1, 100], [OBJ - 700, 1400], [OBJ + 513, 4000], [3 * OBJ - 5, 10]] as const) {
    const part = await readVdi(c, v.vid, off, len);
    assert.ok(part.equals(v.model.subarray(off, off + len)), `${v.name}: ${len} bytes at ${off} (${what})`);
  }
}

const live = () => cluster.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);

/** Every data object of `v`: strip files exactly on the placement's nodes, decoding to the model. */
async function checkLayout(v: EcVdi, what: string): Promise<void> {
  for (let idx = 0; idx < VDI_SIZE / OBJ; idx++) await checkObject(v, vidToDataOid(v.vid, idx), v.model.subarray(idx * OBJ, (idx + 1) * OBJ), what);
}

async function checkObject(v: { name: string; d: number; p: number }, oid: bigint, want: Buffer, what: string): Promise<void> {
  const nodes = await nodeList(c);
  const ring = buildVnodeRing(nodes.map(toRingNode));
  const codec = createCodec(v.d, v.p);
  {
    const hex = oidToHex(oid);
    const place = placeObject(ring, oid, v.d + v.p).map((i) => nodes[i]!.nid.port - cluster.basePort);
    const found = new Map<number, number[]>();
    for (const n of live()) {
      for (const f of readdirSync(join(n.dir, 'obj'))) {
        if (f.startsWith(`${hex}_`)) found.set(n.port - cluster.basePort, [...(found.get(n.port - cluster.basePort) ?? []), Number(f.slice(17))]);
      }
      assert.not.ok(existsSync(join(n.dir, 'obj', hex)), `${v.name} ${hex}: no whole-object file`);
    }
    const strips: Buffer[] = [];
    place.forEach((node, i) => {
      assert.equal(found.get(node), [i], `${v.name} ${hex}: node ${node} holds strip ${i} only (${what})`);
      strips[i] = readFileSync(join(cluster.nodes[node]!.dir, 'obj', `${hex}_${i}`));
      assert.is(strips[i]!.length, OBJ / v.d, 'strip file is object size / d');
    });
    assert.is(found.size, place.length, `${v.name} ${hex}: strips only on the placement (${what})`);
    assert.ok(Buffer.from(joinStripes(strips.slice(0, v.d), v.d)).equals(want), `${v.name} ${hex}: data strips are the data`);
    // With fewer zones than d+p the last parity strips have no holder; those present must be exact.
    const enc = codec.encodeObject(want);
    for (let i = v.d; i < place.length; i++) assert.ok(Buffer.from(enc[i]!).equals(strips[i]!), `${v.name} ${hex}: parity strip ${i} (${what})`);
    const spare = place.length - v.d;
    if (spare > 0) {
      // Any d strips decode: drop the first `spare` data strips.
      const some = strips.map((s, i) => (i < spare ? null : s));
      assert.ok(Buffer.from(codec.decodeObject(some)).equals(want), `${v.name} ${hex}: decodes without strips 0..${spare - 1}`);
    }
  }
}

test.before(async () => {
  dir = tempDir('sheep-ecgw-');
  cluster = new LocalCluster(dir, randomPortBase());
  await cluster.start(6);
  c = await SheepClient.connect('127.0.0.1', cluster.basePort);
});

test.after(async () => {
  c?.close();
  await cluster?.stop();
  if (!process.env.KEEP_TEST_DIR) removeDir(dir);
});

const port = () => String(cluster.basePort);

test('format -c 4:2, vdi create (default 4:2 and -c 2:1)', T(async () => {
  let r = await runDog(['cluster', 'format', '-c', '4:2', '-p', port()]);
  assert.is(r.code, 0, r.err);
  const def = await c.request({ opcode: Op.GET_CLUSTER_DEFAULT });
  assert.is(def.raw[20], 6, 'cluster nr_copies d+p');
  assert.is(def.raw[21], 0x22, 'cluster copy_policy (4/2)<<4 | 2');
  r = await runDog(['vdi', 'create', 'ec42', '16M', '-p', port()]);
  assert.is(r.code, 0, r.err);
  r = await runDog(['vdi', 'create', '-c', '2:1', 'ec21', '16M', '-p', port()]);
  assert.is(r.code, 0, r.err);
  for (const v of vdis) v.vid = (await vdiInfo(c, v.name)).vid;
  r = await runDog(['vdi', 'list', '-p', port()]);
  assert.match(r.out, /ec42 .* 4:2/);
  assert.match(r.out, /ec21 .* 2:1/);
}));

test('aligned, unaligned and object-spanning writes read back; strips on disk are Sheepdog\'s layout', T(async () => {
  for (const v of vdis) {
    await write(v, 0, OBJ, 1); // a whole object
    await write(v, OBJ + 1000, 10_000, 2); // unaligned, new object (create pads with zeros)
    await write(v, OBJ + 5000, 300, 3); // unaligned overwrite inside one stripe (read-modify-write)
    await write(v, 2 * OBJ - 3000, 7000, 4); // across objects 1 and 2
    await write(v, 3 * OBJ + 512, 512 * 7, 5); // stripe-aligned, not object-aligned
    await write(v, 100, 2, 6); // two bytes in an existing object
    await checkReads(v, 'healthy');
    await checkLayout(v, 'healthy');
  }
}));

test('copy-on-write from a snapshot of a 2:1 VDI', T(async () => {
  let r = await runDog(['vdi', 'create', '-c', '2:1', 'cow21', '8M', '-p', port()]);
  assert.is(r.code, 0, r.err);
  const base = (await vdiInfo(c, 'cow21')).vid;
  const before = pattern(OBJ, 11);
  await writeVdi(c, base, 0, before);
  r = await runDog(['vdi', 'snapshot', '-s', 'snap', 'cow21', '-p', port()]);
  assert.is(r.code, 0, r.err);
  const working = (await vdiInfo(c, 'cow21')).vid;
  assert.is.not(working, base);
  const patch = pattern(1000, 12);
  await writeVdi(c, working, 777, patch); // CREATE_AND_WRITE with CMD_COW: the snapshot's object, overlaid
  const after = Buffer.from(before);
  patch.copy(after, 777);
  assert.ok((await readVdi(c, working, 0, OBJ)).equals(after), 'working VDI has the overlay');
  assert.ok((await readVdi(c, base, 0, OBJ)).equals(before), 'snapshot unchanged');
  await checkObject({ name: 'cow21', d: 2, p: 1 }, vidToDataOid(working, 0), after, 'copied on write');
  await checkObject({ name: 'cow21 snapshot', d: 2, p: 1 }, vidToDataOid(base, 0), before, 'snapshot');
  for (const args of [['cow21'], ['-s', 'snap', 'cow21']]) {
    r = await runDog(['vdi', 'delete', ...args, '-p', port()]);
    assert.is(r.code, 0, r.err);
  }
}));

test('alter-copy on an erasure-coded VDI is refused', T(async () => {
  const r = await runDog(['vdi', 'alter-copy', '-c', '3', 'ec42', '-p', port()]);
  assert.is(r.code, 1);
  assert.match(r.err, /ec42's copy policy is erasure code, changing it is not supported yet/);
  const r2 = await runDog(['vdi', 'alter-copy', '-c', '4:1', 'ec42', '-p', port()]);
  assert.is(r2.code, 64, 'EXIT_USAGE');
  assert.match(r2.err, /Changing redundancy level of erasure coded vdi is not supported yet/);
}));

test('one node lost: reads decode from parity; recovery rebuilds strips on the new holders', T(async () => {
  await cluster.kill(5);
  for (const v of vdis) await checkReads(v, 'degraded, 5 nodes');
  await write(vdis[0]!, 2 * OBJ + 77, 5000, 7); // writes go on meanwhile
  await waitRecovered(cluster);
  for (const v of vdis) {
    await checkReads(v, 'recovered, 5 nodes');
    await checkLayout(v, 'recovered, 5 nodes');
  }
}));

test('a second node lost (4:2 down to 4 zones): data still reads; strips rebuilt', T(async () => {
  await cluster.kill(2);
  for (const v of vdis) await checkReads(v, 'degraded, 4 nodes');
  await waitRecovered(cluster);
  await write(vdis[1]!, 7, 3000, 8);
  for (const v of vdis) {
    await checkReads(v, 'recovered, 4 nodes');
    await checkLayout(v, 'recovered, 4 nodes');
  }
}));

test('a lost node returns with outdated strips: they are rebuilt, not served', T(async () => {
  // Node 5 left at the first loss, before writes it never saw; its strips of those objects are stale.
  await cluster.startNode(5);
  await waitRecovered(cluster);
  for (const v of vdis) {
    await checkReads(v, 'node 5 back');
    await checkLayout(v, 'node 5 back');
  }
}));

test('deleting the VDIs removes every strip file', T(async () => {
  for (const v of vdis) {
    const r = await runDog(['vdi', 'delete', v.name, '-p', port()]);
    assert.is(r.code, 0, r.err);
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = live().flatMap((n) => readdirSync(join(n.dir, 'obj')).filter((f) => /^[0-9a-f]{16}_\d+$/.test(f)));
    if (left.length === 0) break;
    if (Date.now() > deadline) assert.unreachable(`strip files left: ${left.join(' ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}));

test.run();

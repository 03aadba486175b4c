// Multi-disk (md): a 3-process cluster where node 2 runs `sheep DIR,DISK_A,DISK_B,DISK_C`. Objects sit on
// the disk Sheepdog's md hash picks; `dog node md info/plug/unplug` in upstream's format; an unplugged or
// failed disk's objects come back from the peers onto the remaining disks while the node stays.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { oidToHex, vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { buildMdRing, diskIndexOf, vdiskCount } from '../src/store/md-ring.js';
import { MD_SIZE_FILE, MultiDiskStore } from '../src/store/md.js';
import { parseStartArgs } from '../src/cli/sheep-actors.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createVdi, format, LocalCluster, nodeList, randomPortBase, waitForMembers } from './cluster-harness.js';
import { runDog } from './dog-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';
import { sleep, waitRecovered } from './recovery-helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(30_000, fn);
const OBJ = 4 << 20;
const NR_OBJS = 16;

test('md ring: vdisks per GiB, a vector computed independently from md.c', () => {
  assert.is(vdiskCount(1n << 30n), 1);
  assert.is(vdiskCount((1n << 30n) + 1n), 2);
  const ring = buildMdRing([
    { path: '/mnt/d1', space: 3n << 30n },
    { path: '/mnt/d2', space: (1n << 30n) + 1n },
  ]);
  assert.equal([...ring.hashes].map((h) => h.toString(16)), ['3acf409c4fc1416', '1ce2c24bea40f90c', '3afd6994b0351b5e', '5f3d043c774c1c78', 'c0efbd15a49e8eea']);
  assert.equal([...ring.owner], [0, 0, 1, 1, 0]);
  const oids = [0x8000000100000000n, 0x100000000n, 0x100000001n, 0xabcdef00000007n, 0xabcdef000000ffn, 0x200000003n, 0x200000004n, 0x200000005n];
  assert.equal(oids.map((o) => diskIndexOf(ring, o)), [0, 0, 0, 0, 0, 0, 1, 0]);
  assert.throws(() => buildMdRing([{ path: '/a', space: 1n }, { path: '/a', space: 1n }]), /collision/);
  assert.throws(() => vdiskCount(0n), /positive/);
});

test('sheep DIR,DISK1,DISK2: DIR for config and epochs, the rest are disks; bad lists refused', () => {
  const a = parseStartArgs(['/s/meta,/s/d1,/s/d2/', '-p', '7001']);
  assert.is(a.dir, '/s/meta');
  assert.equal(a.disks, ['/s/d1', '/s/d2']);
  assert.equal(parseStartArgs(['/s/meta']).disks, []);
  assert.throws(() => parseStartArgs(['/s/meta,,/s/d2']), /empty path/);
  assert.throws(() => parseStartArgs(['/s/meta,/s/d1,/s/d1']), /duplicate disk/);
});

test('MultiDiskStore: an object left on another disk by an earlier disk set is found and moved home', withTimeout(10_000, async () => {
  const base = tempDir('md-store-');
  const paths = [join(base, 'd1'), join(base, 'd2')];
  for (const p of paths) {
    mkdirSync(join(p, '.stale'), { recursive: true });
    writeFileSync(join(p, MD_SIZE_FILE), `${4n << 30n}\n`);
  }
  const store = new MultiDiskStore(paths, { noSync: true, metaDir: join(base, 'meta') });
  try {
    await store.init();
    const oid = 0x00abcdef00000007n;
    const home = store.diskOf(oid);
    const other = paths.find((p) => p !== home)!;
    writeFileSync(join(other, oidToHex(oid)), Buffer.alloc(4096, 7)); // as a previous disk set left it
    assert.ok(await store.exists(oid), 'found on the other disk');
    assert.ok(existsSync(join(home, oidToHex(oid))) && !existsSync(join(other, oidToHex(oid))), 'moved home');
    assert.ok((await store.read(oid, 0, 4096)).equals(Buffer.alloc(4096, 7)));
    assert.equal(await store.list(), [oid]);
    assert.not.ok(await store.exists(0x42n), "an absent object is absent");
  } finally {
    await store.close();
    removeDir(base);
  }
}));

let dir = '';
let cluster: LocalCluster;
let c: SheepClient;
let c2: SheepClient;
let vid = 0;
let disks: string[] = [];
const image = Buffer.alloc(NR_OBJS * OBJ);
const port = (i: number) => cluster.basePort + i;
const dog = (args: string[], i = 2) => runDog([...args, '-p', String(port(i))]);

/** Object ids stored on a disk (plain layout: hex names at the top). */
const objectsOn = (disk: string) => (existsSync(disk) ? readdirSync(disk).filter((f) => /^[0-9a-f]{16}$/.test(f)) : []);

/** Every object of node 2 sits once, on the disk the md hash of `online` picks (sizes as recorded). */
function assertOnTheirDisks(online: string[]): Map<string, string> {
  const ring = buildMdRing(online.map((path) => ({ path, space: BigInt(readFileSync(join(path, MD_SIZE_FILE), 'utf8').trim()) })));
  const where = new Map<string, string>();
  for (const d of online) {
    for (const hex of objectsOn(d)) {
      assert.not.ok(where.has(hex), `${hex} on two disks`);
      where.set(hex, d);
      assert.is(online[diskIndexOf(ring, BigInt(`0x${hex}`))], d, `${hex} is on the disk the md hash picks`);
    }
  }
  return where;
}

const expectedOids = () => [vidToVdiOid(vid), ...Array.from({ length: NR_OBJS }, (_, i) => vidToDataOid(vid, i))].map(oidToHex);

async function readBackEverywhere(): Promise<void> {
  for (const cl of [c, c2]) assert.ok((await readVdi(cl, vid, 0, image.length)).equals(image), 'data reads back byte-identical');
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test.before(async () => {
  dir = tempDir('sheep-md-');
  cluster = new LocalCluster(dir, randomPortBase());
  disks = ['a', 'b', 'c'].map((x) => join(dir, `disk-${x}`));
  await cluster.startNode(0);
  await cluster.startNode(1);
  await cluster.startNode(2, [], disks);
  await waitForMembers(port(0), 3);
  c = await SheepClient.connect('127.0.0.1', port(0));
  c2 = await SheepClient.connect('127.0.0.1', port(2));
  await format(c, 3);
  vid = (await createVdi(c, 'md', BigInt(image.length))).vid;
  for (let i = 0; i < image.length; i++) image[i] = (i * 131 + (i >> 12)) & 0xff;
  await writeVdi(c, vid, 0, image);
});

test.after(async () => {
  c?.close();
  c2?.close();
  await cluster?.stop();
  removeDir(dir);
});

test('objects land on the disk the md hash picks; DIR keeps only config and epochs', T(async () => {
  const where = assertOnTheirDisks(disks);
  assert.equal([...where.keys()].sort(), expectedOids().sort(), 'every object once on node 2');
  assert.ok(new Set(where.values()).size >= 2, `objects spread over the disks: ${[...new Set(where.values())].join(' ')}`);
  assert.equal(objectsOn(join(cluster.nodes[2]!.dir, 'obj')), [], 'nothing in DIR/obj');
  assert.ok(existsSync(join(cluster.nodes[2]!.dir, 'config')));
  await readBackEverywhere();
}));

test('dog node md info: one line per disk in path order; --all numbers the nodes', T(async () => {
  const r = await dog(['node', 'md', 'info']);
  assert.is(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.is(lines[0], 'Id\tSize\tUsed\tAvail\tUse%\tPath');
  assert.is(lines.length, 4);
  lines.slice(1).forEach((l, i) => assert.match(l, new RegExp(`^ ${i}\\t[^\\t]+\\t[^\\t]+\\t[^\\t]+\\t +\\d+%\\t${disks[i]}$`)));
  const raw = await dog(['node', 'md', 'info', '-r']);
  assert.match(raw.out.split('\n')[0]!, new RegExp(`^127\\.0\\.0\\.1:${port(2)} 0 \\d+ \\d+ \\d+ \\d+% ${disks[0]}$`));
  const all = await dog(['node', 'md', 'info', '--all'], 0);
  assert.is(all.code, 0, all.err);
  assert.match(all.out, /^Id\tSize\tUsed\tAvail\tUse%\tPath\nNode 0:\n 0\t.*\/0\/obj\nNode 1:\n 0\t.*\/1\/obj\nNode 2:\n 0\t/);
  assert.is(all.out.split('\n').filter((l) => /^ \d\t/.test(l)).length, 5);
}));

test('bad dog node md plug/unplug arguments: clear errors, nothing changed', T(async () => {
  const cases: Array<[string[], RegExp]> = [
    [['node', 'md', 'plug', '-f', ','], /Empty path isn't allowed/],
    [['node', 'md', 'plug', '-f', 'relative/disk'], /Invalid path 'relative\/disk': disk paths must be absolute/],
    [['node', 'md', 'plug', '-f', disks[0]!], /Failed to execute request, look for sheep.log for more information/],
    [['node', 'md', 'plug', '-f', cluster.nodes[2]!.dir], /Failed to execute request/],
    [['node', 'md', 'plug', '-f', cluster.nodes[1]!.dir], /Failed to execute request/],
    [['node', 'md', 'unplug', '-f', join(dir, 'no-such-disk')], /Failed to execute request/],
    [['node', 'md', 'unplug', '-f', disks.join(',')], /Failed to execute request/],
  ];
  const usage = await dog(['node', 'md', 'plug', '-f', '']);
  assert.is(usage.code, 64, 'an empty argument is a missing one: usage');
  for (const [args, err] of cases) {
    const r = await dog(args);
    assert.is(r.code, 1, args.join(' '));
    assert.match(r.err, err);
  }
  const log = readFileSync(join(cluster.nodes[2]!.dir, 'sheep.log'), 'utf8');
  assert.match(log, /already plugged/);
  assert.match(log, /holds the node's own directory/);
  assert.match(log, /is meta-store, abort/);
  assert.match(log, /not a plugged disk/);
  assert.match(log, /cannot unplug every disk/);
  const info = await dog(['node', 'md', 'info']);
  assert.is(info.out.trimEnd().split('\n').length, 4, 'still three disks');
  assert.ok(existsSync(join(cluster.nodes[1]!.dir, 'config')), 'the other node’s directory untouched');
}));

test('unplug a disk: its objects come back from the peers onto the other disks; plug it back: objects move to it', T(async () => {
  const gone = disks[1]!;
  const before = assertOnTheirDisks(disks);
  const moved = [...before].filter(([, d]) => d === gone).map(([hex]) => hex);
  const r = await dog(['node', 'md', 'unplug', '-f', gone]);
  assert.is(r.code, 0, r.err);
  const rest = disks.filter((d) => d !== gone);
  await until('the unplugged disk’s objects on the other disks', () => moved.every((hex) => rest.some((d) => existsSync(join(d, hex)))));
  await waitRecovered(cluster);
  const after = assertOnTheirDisks(rest);
  assert.equal([...after.keys()].sort(), expectedOids().sort(), 'every object on the remaining disks');
  assert.is((await nodeList(c)).length, 3, 'the node stayed');
  await readBackEverywhere();
  assert.is((await dog(['node', 'md', 'info'])).out.trimEnd().split('\n').length, 3);

  const p = await dog(['node', 'md', 'plug', '-f', gone]);
  assert.is(p.code, 0, p.err);
  await until('objects back on their disks', () => {
    try {
      assertOnTheirDisks(disks);
      return true;
    } catch {
      return false;
    }
  });
  await waitRecovered(cluster);
  assert.equal([...assertOnTheirDisks(disks).keys()].sort(), expectedOids().sort());
  await readBackEverywhere();
}));

test('a failing disk (EIO) is unplugged; the node stays and its objects are recovered onto the others', T(async () => {
  const failing = disks[0]!; // the SIGUSR2 hook fails the first disk (md info index 0)
  const lost = assertOnTheirDisks(disks);
  cluster.nodes[2]!.child.kill('SIGUSR2');
  await sleep(100);
  // Reads through node 2 touch its failing disk: the error is absorbed (another replica answers).
  await readBackEverywhere();
  const rest = disks.filter((d) => d !== failing);
  await until('the failed disk dropped from md info', async () => (await dog(['node', 'md', 'info'])).out.trimEnd().split('\n').length === 3);
  assert.match(readFileSync(join(cluster.nodes[2]!.dir, 'sheep.log'), 'utf8'), /md: disk .*disk-a failed .*injected/);
  const fromFailed = [...lost].filter(([, d]) => d === failing).map(([hex]) => hex);
  await until('the failed disk’s objects recovered', () => fromFailed.every((hex) => rest.some((d) => existsSync(join(d, hex)))));
  await waitRecovered(cluster);
  assert.equal([...assertOnTheirDisks(rest).keys()].sort(), expectedOids().sort());
  assert.is(cluster.nodes[2]!.child.exitCode, null, 'node 2 still runs');
  assert.is((await nodeList(c)).length, 3, 'and is still a member');
  // Writes through either node still reach all three copies.
  const patch = Buffer.alloc(64 << 10, 0x5a);
  await writeVdi(c2, vid, OBJ + 4096, patch);
  patch.copy(image, OBJ + 4096);
  await readBackEverywhere();
}));

test.run();

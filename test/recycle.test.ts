// VDI id allocation against 3 real sheep processes (local driver): without `format -R` a deleted VDI's
// vid stays taken and a new VDI of the same name takes the next one; with -R (RECYCLE_VID) a family whose
// members are all deleted frees its vids and new VDIs take the lowest free vid, as sheep/vdi.c does. A
// name hashing to the top of the vid space wraps its family to vid 1; a full bitmap has no free vid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { ClusterFlag, Op, Res, SD_NR_VDIS } from '../src/proto/constants.js';
import { sdHashVdi } from '../src/placement/vdi-id.js';
import { VdiBitmap } from '../src/node/cluster-state.js';
import { LocalCluster, randomPortBase, vdiInfo, waitForRunning } from './cluster-harness.js';
import { runDog } from './dog-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const T = (fn: () => Promise<void>) => withTimeout(90_000, fn);

let dir = '';
let cluster: LocalCluster;
let base = 0;

const dog = (args: string[], i = 0, input?: Buffer) => runDog([...args, '-p', String(base + i)], input);

async function ok(args: string[], i = 0): Promise<string> {
  const r = await dog(args, i);
  assert.is(r.code, 0, `dog ${args.join(' ')}: ${r.err}`);
  return r.out;
}

async function vidOf(name: string, i = 0): Promise<number> {
  const c = await SheepClient.connect('127.0.0.1', base + i);
  try {
    const r = await vdiInfo(c, name);
    assert.is(r.result, Res.SUCCESS, `lookup of ${name}: 0x${r.result.toString(16)}`);
    return r.vid;
  } finally {
    c.close();
  }
}

/** Formats the cluster afresh (copies 2), with extra `dog cluster format` options. */
async function reformat(opts: string[]): Promise<void> {
  await ok(['cluster', 'format', '-f', '-c', '2', ...opts]);
  await waitForRunning(base);
}

/**
 * A name whose sd_hash_vdi() is `want`. The low 24 bits of FNV-1a depend only on the low 24 bits of the
 * state (the prime is 2^40 + 0x1b3), so a 4-letter suffix search over a 24-bit state is instant.
 */
function nameWithHash(want: number, prefix = 'wrap-'): string {
  const abc = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
  const step = (h: number, b: number) => Math.imul((h ^ b) & 0xffffff, 0x1b3) & 0xffffff;
  let h0 = 0x84222325 & 0xffffff; // low 24 bits of the FNV-1a offset basis
  for (const b of Buffer.from(prefix)) h0 = step(h0, b);
  for (let i = 0; i < 64; i++) {
    const h1 = step(h0, abc.charCodeAt(i));
    for (let j = 0; j < 64; j++) {
      const h2 = step(h1, abc.charCodeAt(j));
      for (let k = 0; k < 64; k++) {
        const h3 = step(h2, abc.charCodeAt(k));
        for (let l = 0; l < 64; l++) {
          if (step(h3, abc.charCodeAt(l)) === want) {
            const name = prefix + abc[i] + abc[j] + abc[k] + abc[l];
            assert.is(sdHashVdi(name), want, `search gave ${name}`);
            return name;
          }
        }
      }
    }
  }
  throw new Error(`no name with hash ${want.toString(16)}`);
}

test.before(
  withTimeout(60_000, async () => {
    dir = tempDir('sheep-recycle-');
    base = randomPortBase();
    cluster = new LocalCluster(dir, base);
    await cluster.start(3);
  }),
);

test.after(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

test(
  'without -R: a deleted vid stays taken, the same name gets the next vid',
  T(async () => {
    await reformat([]);
    const h = sdHashVdi('alpha') || 1;
    await ok(['vdi', 'create', 'alpha', '8M']);
    assert.is(await vidOf('alpha'), h);
    await ok(['vdi', 'delete', 'alpha']);
    await ok(['vdi', 'create', 'alpha', '8M']);
    assert.is(await vidOf('alpha'), h + 1);
    const c = await SheepClient.connect('127.0.0.1', base + 1);
    try {
      const inUse = await c.request({ opcode: Op.READ_VDIS, dataLength: SD_NR_VDIS / 8 });
      const del = await c.request({ opcode: Op.READ_DEL_VDIS, dataLength: SD_NR_VDIS / 8 });
      const bit = (b: Buffer, v: number) => (b[v >>> 3]! >> (v & 7)) & 1;
      assert.equal([bit(inUse.data, h), bit(del.data, h), bit(inUse.data, h + 1), bit(del.data, h + 1)], [1, 1, 1, 0]);
    } finally {
      c.close();
    }
  }),
);

test(
  'with -R: the flag is in the config and epoch log; vids start at 1 and a dead family frees its vids',
  T(async () => {
    await reformat(['-R']);
    for (const n of cluster.nodes) {
      const cfg = readFileSync(join(n.dir, 'config'));
      assert.ok(cfg.readUInt16LE(8) & ClusterFlag.RECYCLE_VID, `config flags of ${n.dir}`);
    }
    const c = await SheepClient.connect('127.0.0.1', base);
    try {
      const st = await c.request({ opcode: Op.STAT_CLUSTER, dataLength: 48 + 3 * 80, cluster: { nodesNr: 3 } });
      assert.ok(st.data.readUInt16LE(30) & ClusterFlag.RECYCLE_VID);
    } finally {
      c.close();
    }
    await ok(['vdi', 'create', 'alpha', '8M']);
    await ok(['vdi', 'create', 'beta', '8M']);
    assert.is(await vidOf('alpha'), 1);
    assert.is(await vidOf('beta'), 2);
    // a family: alpha with a snapshot (working alpha moves to vid 3) and a clone of the snapshot
    await ok(['vdi', 'snapshot', '-s', 'snap1', 'alpha']);
    assert.is(await vidOf('alpha'), 3);
    await ok(['vdi', 'clone', '-s', 'snap1', 'alpha', 'alpha-clone']);
    assert.is(await vidOf('alpha-clone'), 4);
    await ok(['vdi', 'write', 'alpha', '0', '512'], 0);
    // not all members deleted: vids stay taken
    await ok(['vdi', 'delete', 'alpha']);
    await ok(['vdi', 'delete', 'alpha-clone']);
    await ok(['vdi', 'create', 'gamma', '8M']);
    assert.is(await vidOf('gamma'), 5);
    // upstream: with the working VDI deleted and a snapshot alive, the name still resolves (to the snapshot)
    assert.is(await vidOf('alpha'), 1);
    const again = await dog(['vdi', 'create', 'alpha', '8M']);
    assert.is(again.code, 1, again.out + again.err);
    assert.match(again.err, /VDI exists already/);
    // the last member goes: the whole family (1, 3, 4) is free again, on every node
    await ok(['vdi', 'delete', '-s', 'snap1', 'alpha']);
    for (const i of [0, 1, 2]) {
      const r = await SheepClient.connect('127.0.0.1', base + i);
      try {
        const inUse = await r.request({ opcode: Op.READ_VDIS, dataLength: SD_NR_VDIS / 8 });
        const del = await r.request({ opcode: Op.READ_DEL_VDIS, dataLength: SD_NR_VDIS / 8 });
        assert.is(inUse.data[0]! & 0x3e, 0b100100, `in use on node ${i}: 2 and 5 only`);
        assert.is(del.data[0], 0, `deleted on node ${i}`);
      } finally {
        r.close();
      }
    }
    // the family's objects are gone from the stores
    for (const n of cluster.nodes) for (const v of ['0000000100000000', '0000000300000000', '0000000400000000']) assert.not.ok(existsIn(n.dir, `80${v.slice(2)}`), `${v} on ${n.dir}`);
    // the lowest free vid is reused, and the new VDI works
    await ok(['vdi', 'create', 'delta', '8M']);
    assert.is(await vidOf('delta'), 1);
    await ok(['vdi', 'create', 'alpha', '8M']);
    assert.is(await vidOf('alpha'), 3);
    const list = await ok(['vdi', 'list', '-r']);
    assert.equal(list.trim().split('\n').map((l) => l.split(' ').slice(0, 3).join(' ')).sort(), ['= alpha 0', '= beta 0', '= delta 0', '= gamma 0']);
  }),
);

function existsIn(storeDir: string, hex: string): boolean {
  try {
    readFileSync(join(storeDir, 'obj', hex));
    return true;
  } catch {
    return false;
  }
}

test(
  'without -R: a family at the top of the vid space wraps around to vid 1',
  T(async () => {
    await reformat([]);
    const top = nameWithHash(0xffffff);
    const below = nameWithHash(0xfffffe, 'below-');
    await ok(['vdi', 'create', top, '8M']);
    assert.is(await vidOf(top), 0xffffff);
    await ok(['vdi', 'snapshot', '-s', 's1', top]);
    assert.is(await vidOf(top), 1, 'the working VDI wraps to vid 1');
    await ok(['vdi', 'snapshot', '-s', 's2', top]);
    assert.is(await vidOf(top), 2);
    await ok(['vdi', 'create', below, '8M']);
    assert.is(await vidOf(below), 0xfffffe);
    // snapshots are found across the wrap, from any node
    const c = await SheepClient.connect('127.0.0.1', base + 2);
    try {
      assert.is((await vdiInfo(c, top, { tag: 's1' })).vid, 0xffffff);
      assert.is((await vdiInfo(c, top, { tag: 's2' })).vid, 1);
    } finally {
      c.close();
    }
    const list = await ok(['vdi', 'list', '-r'], 1);
    assert.is(list.trim().split('\n').length, 4, list);
  }),
);

test('a full bitmap has no free vid (NEW_VDI answers FULL_VDI)', () => {
  const b = new VdiBitmap();
  b.bytes.fill(0xff);
  assert.is(b.firstClearFrom(0xffffff), -1);
  b.unset(7);
  assert.is(b.firstClearFrom(0xffffff), 7, 'wraps to the low end');
  assert.is(b.firstClearFrom(8), 7);
});

test.run();

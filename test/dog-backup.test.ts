// Live tests of `dog vdi backup`, `dog vdi restore`, `dog vdi check [-e]` and `dog cluster check`
// against a 3-sheep in-process cluster (sheep-actors cluster DIR --nodes 3 --port P) run as a child
// process. Texts and checksums are compared with Sheepdog 1.0's (tests/functional/041 and 048:
// the md5 sums of the three snapshots, the tree after a restore, the check messages); replicas are
// damaged directly in the stores (DIR/<i>/obj/<oid>) and must come back byte-identical.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomPortBase, waitForPort } from './cluster-harness.js';
import { removeDir, tempDir, timed, withTimeout } from './helpers.js';
import { runDog, type DogResult } from './dog-harness.js';
import {
  BACKUP_END_IDX,
  VDI_BACKUP_FORMAT_VERSION,
  VDI_BACKUP_MAGIC,
  parseBackupStream,
} from '../src/cli/dog/backup.js';

const SHEEP = fileURLToPath(new URL('../src/bin/sheep-actors.js', import.meta.url));
const MiB = 1024 * 1024;

type Result = DogResult;

let port = 0;
let dir = '';
let daemon: ChildProcess | null = null;
let daemonLog = '';

/** dog against the test cluster */
const dog = (args: string[], input?: Buffer | string) => runDog([...args, '-p', String(port)], input);

/** dog that must succeed (the failure message carries dog's stderr) */
async function must(args: string[], input?: Buffer | string): Promise<Result> {
  const r = await dog(args, input);
  assert.is(r.code, 0, `dog ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r;
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
/** common.filter's _filter_short_date */
const filterDate = (s: string) => s.replace(/\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?/g, 'DATE');
/** `echo N` written with `dog vdi write VDI OFF 512`: "N\n" then zeros */
const echoSector = (s: string) => Buffer.concat([Buffer.from(s + '\n'), Buffer.alloc(512 - s.length - 1)]);
const objPath = (node: number, oid: string) => join(dir, String(node), 'obj', oid);

async function portFree(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function pickPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const p = randomPortBase() + Math.floor(Math.random() * 90);
    if (p + 2 > 31999) continue;
    if ((await portFree(p)) && (await portFree(p + 1)) && (await portFree(p + 2))) return p;
  }
  throw new Error('no free port range for the test cluster');
}

function killDaemon(): void {
  const d = daemon;
  daemon = null;
  if (d && d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
}
process.on('exit', killDaemon);

/** `dog vdi list -r NAME` rows: kind, id, vid, tag */
async function rawList(name: string): Promise<{ kind: string; name: string; id: number; vid: string; tag: string }[]> {
  const r = await dog(['vdi', 'list', '-r', name]);
  assert.is(r.code, 0, r.err);
  return r.out
    .split('\n')
    .filter((l) => l)
    .map((l) => {
      const f = l.split(' ');
      return { kind: f[0]!, name: f[1]!, id: Number(f[2]), vid: f[7]!, tag: f[9]! };
    });
}

/** The snapshot a restore made: the newest untagged snapshot of the family. */
async function restoredSnapshot(name: string): Promise<number> {
  const rows = (await rawList(name)).filter((r) => r.kind === 's' && r.tag === '');
  assert.ok(rows.length > 0, `no untagged snapshot of ${name}`);
  return rows.sort((a, b) => parseInt(b.vid, 16) - parseInt(a.vid, 16))[0]!.id;
}

// upstream tests/functional/041.out: md5sum of `dog vdi read test -s snapN` for N = 1..3
const MD5_SNAP1 = 'b6338c1861851820f8d289c3b4e6443c';
const MD5_SNAP2 = '1885611ba75e996f619e8eaf136366e6';
const MD5_SNAP3 = 'd210baf5c55b42b5e0edf04a8535ad6d';

let b12: Buffer = Buffer.alloc(0);
let b13: Buffer = Buffer.alloc(0);
let b23: Buffer = Buffer.alloc(0);

if (!existsSync(SHEEP)) {
  test('sheep daemon is available for live dog backup/check tests', () => {
    assert.unreachable(`these tests need ${SHEEP}; build src/bin/sheep-actors.ts first`);
  });
} else {
  test.before(
    withTimeout(60_000, async () => {
      port = await pickPort();
      dir = tempDir('dog-backup-');
      daemon = spawn(process.execPath, [SHEEP, 'cluster', dir, '--nodes', '3', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      daemon.stdout!.on('data', (c: Buffer) => (daemonLog += c.toString()));
      daemon.stderr!.on('data', (c: Buffer) => (daemonLog += c.toString()));
      const deadline = Date.now() + 30_000;
      while (!/cluster of 3 sheep/.test(daemonLog)) {
        if (daemon.exitCode !== null) throw new Error(`sheep-actors exited early:\n${daemonLog}`);
        if (Date.now() > deadline) throw new Error(`sheep-actors did not start:\n${daemonLog}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 3; i++) await waitForPort(port + i);
    }),
  );

  test.after(() => {
    try {
      killDaemon();
    } finally {
      if (dir) removeDir(dir);
    }
  });

  test(
    'three snapshots as in 041: the same md5 sums as upstream',
    timed(async () => {
      await must(['cluster', 'format']);
      await must(['vdi', 'create', 'test', '12M']);
      await must(['vdi', 'write', 'test', '0', '512'], '0\n');
      await must(['vdi', 'snapshot', 'test', '-s', 'snap1']);
      await must(['vdi', 'write', 'test', String(4 * MiB), '512'], '1\n');
      await must(['vdi', 'snapshot', 'test', '-s', 'snap2']);
      await must(['vdi', 'write', 'test', '0', '512'], '2\n');
      await must(['vdi', 'snapshot', 'test', '-s', 'snap3']);
      const t = await dog(['vdi', 'tree']);
      assert.is(filterDate(t.out), 'test---[DATE]---[DATE]---[DATE]---(you are here)\n');
      const sums = [];
      for (const s of ['snap1', 'snap2', 'snap3']) sums.push(md5((await must(['vdi', 'read', 'test', '-s', s])).bin));
      assert.equal(sums, [MD5_SNAP1, MD5_SNAP2, MD5_SNAP3]);
    }),
  );

  test(
    'vdi backup: header, one record per changed object (changed sectors only), end marker',
    timed(async () => {
      const r12 = await dog(['vdi', 'backup', 'test', '-F', 'snap1', '-s', 'snap2']);
      assert.is(r12.code, 0, r12.err);
      assert.is(r12.err, '');
      b12 = r12.bin;
      const hdr = Buffer.alloc(8);
      hdr.writeUInt32LE(VDI_BACKUP_FORMAT_VERSION, 0);
      hdr.writeUInt32LE(VDI_BACKUP_MAGIC, 4);
      const rec = (idx: number, off: number, len: number) => {
        const b = Buffer.alloc(16);
        b.writeUInt32LE(idx, 0);
        b.writeUInt32LE(off, 4);
        b.writeUInt32LE(len, 8);
        return b;
      };
      // snap1 -> snap2 added object 1 ("1\n" in its first sector): the record is that sector only
      assert.ok(b12.equals(Buffer.concat([hdr, rec(1, 0, 512), echoSector('1'), rec(BACKUP_END_IDX, 0, 0)])), 'backup 1..2 bytes');
      assert.is(b12.subarray(0, 8).toString('hex'), '0100000092119211');

      const r13 = await dog(['vdi', 'backup', 'test', '-F', 'snap1', '-s', 'snap3']);
      assert.is(r13.code, 0, r13.err);
      b13 = r13.bin;
      const p13 = parseBackupStream(b13);
      assert.ok(p13.complete);
      assert.equal(
        p13.records.map((r) => [r.idx, r.offset, r.data.length]),
        [
          [0, 0, 512],
          [1, 0, 512],
        ],
      );
      assert.ok(p13.records[0]!.data.equals(echoSector('2')));
      assert.ok(p13.records[1]!.data.equals(echoSector('1')));

      // snap2 -> snap3: object 1 is shared (same owner vid), only object 0 differs
      const r23 = await dog(['vdi', 'backup', 'test', '-F', 'snap2', '-s', 'snap3']);
      assert.is(r23.code, 0, r23.err);
      b23 = r23.bin;
      const p23 = parseBackupStream(b23);
      assert.is(p23.version, 1);
      assert.is(p23.magic, 0x11921192);
      assert.ok(p23.complete);
      assert.equal(p23.records.map((r) => [r.idx, r.offset, r.data.length]), [[0, 0, 512]]);

      // nothing changed between a snapshot and itself: header and end marker only
      const same = await dog(['vdi', 'backup', 'test', '-F', 'snap2', '-s', 'snap2']);
      assert.ok(same.bin.equals(Buffer.concat([hdr, rec(BACKUP_END_IDX, 0, 0)])));

      const noFrom = await dog(['vdi', 'backup', 'test', '-s', 'snap2']);
      assert.is(noFrom.code, 64);
      assert.is(noFrom.err, "Please specify snapshots with '-F' and '-s' options\n");
      assert.ok(noFrom.out.startsWith('Usage: dog vdi backup [-s snapshot] [-F from] [-a address] [-p port] [-h] [-T] <vdiname>\n'), noFrom.out);
      const missing = await dog(['vdi', 'backup', 'test', '-F', 'nosuch', '-s', 'snap2']);
      assert.is(missing.code, 1);
      assert.is(missing.err, 'Failed to open VDI test (snapshot id: 0 snapshot tag: nosuch): Failed to find requested tag\n');
      assert.is(missing.out, '');
    }),
  );

  test(
    'restore into another VDI family: the diff snap1..snap2 applied to a copy of snap1 gives snap2 byte for byte',
    timed(async () => {
      await must(['vdi', 'clone', '-s', 'snap1', 'test', 'copy']);
      await must(['vdi', 'snapshot', '-s', 'base', 'copy']);
      const r = await dog(['vdi', 'restore', 'copy', '-s', 'base'], b12);
      assert.is(r.code, 0, r.err);
      assert.is(r.out + r.err, '');
      const id = await restoredSnapshot('copy');
      const restored = await must(['vdi', 'read', 'copy', '-s', String(id)]);
      const snap2 = await must(['vdi', 'read', 'test', '-s', 'snap2']);
      assert.is(restored.bin.length, 12 * MiB);
      assert.ok(restored.bin.equals(snap2.bin), 'restored snapshot equals snap2');
      assert.is(md5(restored.bin), MD5_SNAP2);
      // the working VDI is re-created from the snapshot the restore was applied to
      assert.is(md5((await must(['vdi', 'read', 'copy'])).bin), MD5_SNAP1);
      assert.is(md5((await must(['vdi', 'read', 'copy', '-s', 'base'])).bin), MD5_SNAP1);
    }),
  );

  test(
    'restore as in 041: test -s snap1 < backup 1..2 (tree as upstream, data of snap2, working VDI as before)',
    timed(async () => {
      const r = await dog(['vdi', 'restore', 'test', '-s', 'snap1'], b12);
      assert.is(r.code, 0, r.err);
      assert.is(r.out + r.err, '');
      const t = await dog(['vdi', 'tree']);
      assert.ok(
        filterDate(t.out).startsWith('test---[DATE]-+-[DATE]---[DATE]---(you are here)\n                          `-[DATE]\n'),
        t.out,
      );
      const id = await restoredSnapshot('test');
      assert.is(md5((await must(['vdi', 'read', 'test', '-s', String(id)])).bin), MD5_SNAP2);
      assert.is(md5((await must(['vdi', 'read', 'test'])).bin), MD5_SNAP3);
      for (const [s, sum] of [
        ['snap1', MD5_SNAP1],
        ['snap2', MD5_SNAP2],
        ['snap3', MD5_SNAP3],
      ] as const)
        assert.is(md5((await must(['vdi', 'read', 'test', '-s', s])).bin), sum, s);
      // applying 1..3 on snap1 as well (records for two objects)
      const r13 = await dog(['vdi', 'restore', 'test', '-s', 'snap1'], b13);
      assert.is(r13.code, 0, r13.err);
      assert.is(md5((await must(['vdi', 'read', 'test', '-s', String(await restoredSnapshot('test'))])).bin), MD5_SNAP3);
    }),
  );

  test(
    'restore errors: no -s (usage), unknown snapshot, corrupted stream',
    timed(async () => {
      const noS = await dog(['vdi', 'restore', 'test'], b12);
      assert.is(noS.code, 64);
      assert.is(noS.err, "We can restore a backup file only to snapshots\nPlease specify the '-s' option\n");
      assert.ok(noS.out.startsWith('Usage: dog vdi restore [-s snapshot] [-a address] [-p port] [-h] [-T] [-B nr-batched-reclamation] [-I reclamation-interval] <vdiname>\n'), noS.out);
      const tag = await dog(['vdi', 'restore', 'test', '-s', 'non-existence-tag'], b12);
      assert.is(tag.code, 1);
      assert.is(
        tag.err,
        'Failed to open VDI test (snapshot id: 0 snapshot tag: non-existence-tag): Failed to find requested tag\n' +
          "Snapshot ID 0 or tag non-existence-tag doesn't exist\n",
      );
      // a corrupted stream on a throwaway family: upstream has already dropped the working VDI then
      await must(['vdi', 'create', 'junk', '8M']);
      await must(['vdi', 'snapshot', '-s', 's', 'junk']);
      const bad = await dog(['vdi', 'restore', 'junk', '-s', 's'], Buffer.from('not a backup stream'));
      assert.is(bad.code, 1);
      assert.is(bad.err, 'The backup file is corrupted\nFailed to create VDI junk: No VDI found\nfailed to resume the current vdi\n');
      const gone = await dog(['vdi', 'restore', 'junk', '-s', 's'], b12);
      assert.is(gone.code, 1);
      assert.is(gone.err, 'Failed to open VDI junk (snapshot id: 0 snapshot tag: ): No VDI found\n');
      await must(['vdi', 'rollback', '-f', '-s', 's', 'junk']);
      const short = await dog(['vdi', 'restore', 'junk', '-s', 's'], b12.subarray(0, 4));
      assert.is(short.code, 1);
      assert.is(
        short.err,
        'failed to read backup header, Success\nThe backup file is corrupted\nFailed to create VDI junk: No VDI found\nfailed to resume the current vdi\n',
      );
      await must(['vdi', 'delete', '-s', 's', 'junk']);
    }),
  );

  test(
    'vdi check on healthy VDIs; -e finds nothing missing',
    timed(async () => {
      const c = await dog(['vdi', 'check', 'test']);
      assert.is(c.code, 0, c.err);
      assert.is(c.out, 'finish check&repair test\n');
      assert.is(c.err, '');
      const s = await dog(['vdi', 'check', '-s', 'snap2', 'test']);
      assert.is(s.out, 'finish check&repair test\n');
      const e = await dog(['vdi', 'check', '-e', 'test']);
      assert.is(e.code, 0);
      assert.is(e.out, 'test is fine, no object is missing.\n');
      const none = await dog(['vdi', 'check', 'nosuch']);
      assert.is(none.code, 1);
      assert.is(none.err, 'Failed to open VDI nosuch (snapshot id: 0 snapshot tag: ): No VDI found\nFATAL: no inode objects\n');
    }),
  );

  test(
    'vdi check repairs a divergent and a missing replica (peer writes); the replicas are identical afterwards',
    timed(async () => {
      await must(['vdi', 'create', 'chk', '16M']);
      const data = Buffer.alloc(12 * MiB);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
      await must(['vdi', 'write', 'chk', '0', String(data.length)], data);
      // vid of chk: the name hash (no other VDI of that name)
      const vid = (await rawList('chk'))[0]!.vid;
      const oid = (idx: number) => '00' + vid.padStart(6, '0') + idx.toString(16).padStart(8, '0');
      const inodeOid = '80' + vid.padStart(6, '0') + '00000000';
      for (const o of [oid(0), oid(1), oid(2), inodeOid]) for (let n = 0; n < 3; n++) assert.ok(existsSync(objPath(n, o)), `${o} on node ${n}`);

      // node 1: flip bytes in object 0; node 2: lose object 2; node 0: damage the inode's tail
      const f = readFileSync(objPath(1, oid(0)));
      f.write('garbage', 100);
      writeFileSync(objPath(1, oid(0)), f);
      rmSync(objPath(2, oid(2)));
      const ino = readFileSync(objPath(0, inodeOid));
      ino.writeUInt32LE(0xdeadbeef, ino.length - 8);
      writeFileSync(objPath(0, inodeOid), ino);

      const e = await dog(['vdi', 'check', '-e', 'chk']);
      assert.is(e.code, 1);
      assert.is(e.out, `[127.0.0.1:${port + 2}] oid ${oid(2)} is missing.\nchk lost 1 object(s).\n`);

      const c = await dog(['vdi', 'check', 'chk']);
      assert.is(c.code, 0, c.err);
      assert.is(c.err, '');
      assert.equal(
        c.out.split('\n').filter((l) => l).sort(),
        [`finish check&repair chk`, `fixed missing ${oid(2)}`, `fixed replica ${inodeOid}`, `fixed replica ${oid(0)}`].sort(),
      );
      assert.ok(c.out.endsWith('finish check&repair chk\n'));
      for (const o of [oid(0), oid(1), oid(2), inodeOid]) {
        const copies = [0, 1, 2].map((n) => readFileSync(objPath(n, o)));
        assert.ok(copies[0]!.equals(copies[1]!) && copies[0]!.equals(copies[2]!), `replicas of ${o} identical`);
      }
      assert.ok((await must(['vdi', 'read', 'chk', '0', String(data.length)])).bin.equals(data), 'data intact');
      const again = await dog(['vdi', 'check', 'chk']);
      assert.is(again.out, 'finish check&repair chk\n');
      assert.is((await dog(['vdi', 'check', '-e', 'chk'])).out, 'chk is fine, no object is missing.\n');
    }),
  );

  test(
    'vdi check: no majority and no copy at all are reported, nothing is written',
    timed(async () => {
      await must(['vdi', 'create', 'maj', '8M']);
      await must(['vdi', 'write', 'maj', '0', '8M'], Buffer.alloc(8 * MiB, 7));
      const vid = (await rawList('maj'))[0]!.vid;
      const o0 = '00' + vid.padStart(6, '0') + '00000000';
      const o1 = '00' + vid.padStart(6, '0') + '00000001';
      // three different copies of object 0, no copy of object 1
      for (let n = 0; n < 3; n++) {
        const b = readFileSync(objPath(n, o0));
        b[n] = 0x40 + n;
        writeFileSync(objPath(n, o0), b);
        rmSync(objPath(n, o1));
      }
      const before = [0, 1, 2].map((n) => md5(readFileSync(objPath(n, o0))));
      const c = await dog(['vdi', 'check', 'maj']);
      assert.is(c.code, 0);
      assert.is(c.out, 'finish check&repair maj\n');
      // objects are checked concurrently (a work queue upstream): the order of these lines varies
      assert.equal(c.err.split('\n').filter((l) => l).sort(), [`no majority of ${o0}`, `no node has ${o1}`]);
      assert.equal([0, 1, 2].map((n) => md5(readFileSync(objPath(n, o0)))), before);
      const e = await dog(['vdi', 'check', '-e', 'maj']);
      assert.is(e.code, 1);
      assert.is(
        e.out,
        [0, 1, 2].map((n) => `[127.0.0.1:${port + n}] oid ${o1} is missing.\n`).join('') + 'maj lost 3 object(s).\n',
      );
      await must(['vdi', 'delete', 'maj']);
    }),
  );

  test(
    'cluster check: "fix vdi"/"fix snapshot" for every VDI in vid order, repairs snapshot objects too',
    timed(async () => {
      // damage snap1's only object on one node
      const snap1Obj = '007c2b2500000000';
      const b = readFileSync(objPath(2, snap1Obj));
      b[0] ^= 0xff;
      writeFileSync(objPath(2, snap1Obj), b);

      const rows: string[] = [];
      for (const name of ['test', 'copy', 'chk']) for (const r of await rawList(name)) rows.push(JSON.stringify(r));
      const vdis = rows.map((r) => JSON.parse(r) as { kind: string; name: string; id: number; vid: string; tag: string });
      vdis.sort((x, y) => parseInt(x.vid, 16) - parseInt(y.vid, 16));

      const c = await dog(['cluster', 'check']);
      assert.is(c.code, 0, c.err);
      assert.is(c.err, '');
      let expected = '';
      for (const v of vdis) {
        expected += v.kind === 's' ? `fix snapshot ${v.name} (id: ${v.id}, tag: "${v.tag}")\n` : `fix vdi ${v.name}\n`;
        if (v.vid === '7c2b25') expected += `fixed replica ${snap1Obj}\n`;
        expected += `finish check&repair ${v.name}\n`;
      }
      assert.is(c.out, expected);
      const copies = [0, 1, 2].map((n) => readFileSync(objPath(n, snap1Obj)));
      assert.ok(copies[0]!.equals(copies[2]!) && copies[1]!.equals(copies[2]!));
      assert.is(md5((await must(['vdi', 'read', 'test', '-s', 'snap1'])).bin), MD5_SNAP1);

      const again = await dog(['cluster', 'check']);
      assert.ok(!again.out.includes('fixed'), again.out);
    }),
  );
}

test.run();

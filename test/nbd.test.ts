// The NBD front end against real clients (qemu-img, qemu-io, nbdinfo, nbdcopy) and a real cluster:
// `sheep-actors cluster DIR --nodes 3 --port P --nbd-port Q` as a child process. Byte-level round
// trips, block status holes, multi-conn copies, read-only snapshot exports, a live snapshot while a
// connection is open (READONLY → reload → COW), cross-checks with the wire-protocol VDI reader/writer,
// the Nagle regression check (qemu-img bench 4 KiB QD16), and bad input closing only its connection.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { ClusterFlag, Flag, Op, Res } from '../src/proto/constants.js';
import { InodeOff } from '../src/proto/structs.js';
import { vidToVdiOid } from '../src/proto/oid.js';
import { NbdClient, infoRequest } from '../src/nbd/client.js';
import { VdiDevice, VdiDeviceError } from '../src/nbd/vdi-device.js';
import { Cmd, CmdFlag, Errno, Opt, Rep, State, TxFlag } from '../src/nbd/protocol.js';
import { createVdi, format, randomPortBase, vdiInfo, waitForMembers, waitForPort } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const T = (fn: () => Promise<void>, ms = 90_000) => withTimeout(ms, fn);
const BIN = new URL('../src/bin/sheep-actors.js', import.meta.url).pathname;

let dir = '';
let sheepPort = 0;
let nbdPort = 0;
let child: ChildProcess | null = null;
let childLog = '';
let c: SheepClient;
const vids = new Map<string, number>();

const url = (name: string) => `nbd://127.0.0.1:${nbdPort}/${name}`;

// ---- tools ------------------------------------------------------------------------------------------

const toolCache = new Map<string, boolean>();
async function haveTool(tool: string): Promise<boolean> {
  if (!toolCache.has(tool)) {
    const ok = await run('sh', ['-c', `command -v ${tool}`]).then(
      () => true,
      () => false,
    );
    toolCache.set(tool, ok);
  }
  return toolCache.get(tool)!;
}

/** true if every tool is installed; under CI a missing tool fails the test, elsewhere it is skipped loudly. */
async function need(...tools: Array<[tool: string, pkg: string]>): Promise<boolean> {
  for (const [tool, pkg] of tools) {
    if (await haveTool(tool)) continue;
    const msg = `${tool} is not installed (Debian package ${pkg}: apt-get install -y ${pkg})`;
    if (process.env.CI === 'true') throw new Error(`${msg}; CI requires it`);
    process.stdout.write(`\n!!!!! SKIPPING NBD client test: ${msg} !!!!!\n`);
    return false;
  }
  return true;
}
const QEMU_IMG: [string, string] = ['qemu-img', 'qemu-utils'];
const QEMU_IO: [string, string] = ['qemu-io', 'qemu-utils'];
const NBDINFO: [string, string] = ['nbdinfo', 'libnbd-bin'];
const NBDCOPY: [string, string] = ['nbdcopy', 'libnbd-bin'];

async function sh(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const r = await run(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * MiB });
    return r.stdout;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${x.message}\nstdout: ${x.stdout ?? ''}\nstderr: ${x.stderr ?? ''}`);
  }
}

/** Runs a command that is expected to fail; returns its stderr + stdout. */
async function shFails(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args, { timeout: 60_000 });
    throw new Error(`${cmd} ${args.join(' ')} unexpectedly succeeded: ${r.stdout}`);
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    if (x.message.includes('unexpectedly succeeded')) throw e;
    return `${x.stderr ?? ''}${x.stdout ?? ''}`;
  }
}

// ---- cluster ----------------------------------------------------------------------------------------

async function mkVdi(name: string, size: number): Promise<number> {
  const r = await createVdi(c, name, BigInt(size));
  assert.is(r.result, Res.SUCCESS, `creating ${name}`);
  vids.set(name, r.vid);
  return r.vid;
}

/** A snapshot as `dog vdi snapshot` takes it: NEW_VDI(snapid=1, base=working vid). Returns the new working vid. */
async function snapshot(name: string): Promise<number> {
  const cur = await vdiInfo(c, name);
  assert.is(cur.result, Res.SUCCESS);
  const r = await c.request({ opcode: Op.NEW_VDI, vdi: { vdiSize: 0n, baseVdiId: cur.vid, snapid: 1 } }, nameBuf256(name));
  if (r.result !== Res.SUCCESS) throw new Error(`snapshot of ${name} failed: 0x${r.result.toString(16)}`);
  return r.raw.readUInt32LE(24);
}

function nameBuf256(name: string): Buffer {
  const b = Buffer.alloc(256);
  b.write(name);
  return b;
}

async function vdiSize(vid: number): Promise<bigint> {
  const r = await c.request({ opcode: Op.READ_OBJ, dataLength: 8, obj: { oid: vidToVdiOid(vid), offset: InodeOff.vdiSize } });
  return r.data.readBigUInt64LE(0);
}

test.before(async () => {
  dir = tempDir('sheep-nbd-');
  sheepPort = randomPortBase();
  nbdPort = sheepPort + 50;
  child = spawn(process.execPath, [BIN, 'cluster', join(dir, 'cluster'), '--nodes', '3', '--port', String(sheepPort), '--nbd-port', String(nbdPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (childLog += d));
  child.stderr!.on('data', (d) => (childLog += d));
  child.once('exit', (code, sig) => {
    if (code !== 0 && sig !== 'SIGTERM' && sig !== 'SIGKILL') process.stderr.write(`cluster exited ${code ?? sig}: ${childLog}\n`);
  });
  await waitForPort(nbdPort, 20_000);
  await waitForMembers(sheepPort, 3);
  c = await SheepClient.connect('127.0.0.1', sheepPort);
  // Locking cluster (dog cluster format -l): every open is LOCK_VDI, every close RELEASE_VDI.
  await format(c, 3, ClusterFlag.USE_LOCK);
});

test.after(async () => {
  c?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child!.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  removeDir(dir);
});

// ---- tests ------------------------------------------------------------------------------------------

test('nbdinfo: --json flags and block sizes, --list names VDIs and snapshots, unknown export fails', T(async () => {
  if (!(await need(NBDINFO))) return;
  await mkVdi('info', 32 * MiB);
  const j = JSON.parse(await sh('nbdinfo', ['--json', url('info')]));
  const e = j.exports[0];
  assert.is(j.protocol, 'newstyle-fixed');
  assert.is(j.structured, true);
  assert.is(e['export-size'], 32 * MiB);
  for (const k of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_multi_conn', 'can_df']) assert.is(e[k], true, k);
  assert.is(e.is_read_only, false);
  assert.equal(e.contexts, ['base:allocation']);
  assert.is(e.block_size_minimum, 1);
  assert.is(e.block_size_preferred, 4096);
  assert.is(e.block_size_maximum, 32 * MiB);
  const list = await sh('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${nbdPort}`]);
  const names = JSON.parse(list).exports.map((x: { 'export-name': string }) => x['export-name']);
  assert.ok(names.includes('info'), names.join(','));
  const err = await shFails('nbdinfo', ['--json', url('no-such-vdi')]);
  assert.match(err, /export|No such|not/i);
}));

test('qemu-io: pattern write/read, write -z, discard, flush; nbdinfo --map shows the holes', T(async () => {
  if (!(await need(QEMU_IO, NBDINFO))) return;
  await mkVdi('pat', 64 * MiB);
  const out = await sh('qemu-io', [
    '-f', 'raw',
    '-c', 'write -P 0xab 0 1M',
    '-c', 'write -z 1M 1M',
    '-c', 'write -P 0xcd 4M 5M',
    '-c', 'write -P 0x11 10485759 777',
    '-c', 'discard 2M 1M',
    '-c', 'flush',
    '-c', 'read -P 0xab 0 1M',
    '-c', 'read -P 0 1M 1M',
    '-c', 'read -P 0xcd 4M 5M',
    '-c', 'discard 4M 4M',
    '-c', 'read -P 0 4M 4M',
    '-c', 'read -P 0xcd 8M 1M',
    '-c', 'read -P 0 9M 1048575',
    '-c', 'read -P 0x11 10485759 777',
    '-c', 'read -P 0 10486536 1M',
    url('pat'),
  ]);
  assert.not.match(out, /Pattern verification failed|error|failed/i, out);
  // Object 1 (4M..8M) was discarded whole: a hole; objects 0 and 2 hold data; the rest was never written.
  const map = JSON.parse(await sh('nbdinfo', ['--map', '--json', url('pat')])) as Array<{ offset: number; length: number; type: number }>;
  const at = (off: number) => map.find((m) => m.offset <= off && off < m.offset + m.length)!;
  assert.is(at(0).type & 3, 0, JSON.stringify(map));
  assert.is(at(4 * MiB).type & 3, State.HOLE | State.ZERO);
  assert.is(at(8 * MiB).type & 3, 0);
  assert.is(at(20 * MiB).type & 3, State.HOLE | State.ZERO);
  const total = map.reduce((s, m) => s + m.length, 0);
  assert.is(total, 64 * MiB);
}));

test('qemu-img convert into and out of a VDI is byte-identical (64 MiB random)', T(async () => {
  if (!(await need(QEMU_IMG))) return;
  await mkVdi('conv', 128 * MiB);
  const src = join(dir, 'src.raw');
  const data = Buffer.alloc(128 * MiB);
  randomBytes(64 * MiB).copy(data, 16 * MiB); // zeros, 64 MiB random, zeros: exercises WRITE_ZEROES too
  writeFileSync(src, data);
  await sh('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, url('conv')]);
  const back = join(dir, 'conv-back.raw');
  await sh('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url('conv'), back]);
  assert.ok(readFileSync(back).equals(data), 'qemu-img round trip differs');
  const info = await sh('qemu-img', ['info', '--output=json', url('conv')]);
  assert.is(JSON.parse(info)['virtual-size'], 128 * MiB);
  const missing = await shFails('qemu-img', ['info', url('conv-missing')]);
  assert.match(missing, /not available|export|No such/i);
}));

test('nbdcopy with 2 connections (multi-conn) round-trips 64 MiB', T(async () => {
  if (!(await need(NBDCOPY))) return;
  await mkVdi('copy', 64 * MiB);
  const src = join(dir, 'copy-src.raw');
  const data = randomBytes(64 * MiB);
  data.fill(0, 20 * MiB, 30 * MiB);
  writeFileSync(src, data);
  await sh('nbdcopy', ['-C', '2', '--flush', src, url('copy')]);
  const back = join(dir, 'copy-back.raw');
  await sh('nbdcopy', ['-C', '2', url('copy'), back]);
  assert.ok(readFileSync(back).equals(data), 'nbdcopy round trip differs');
}));

test('bytes written over NBD read back identically over the wire protocol, and the reverse', T(async () => {
  const vid = await mkVdi('xchk', 32 * MiB);
  const a = randomBytes(6 * MiB + 123);
  const n = await NbdClient.connect('127.0.0.1', nbdPort, 'xchk');
  assert.is((await n.write(3 * MiB + 17, a)).error, 0);
  assert.is((await n.flush()).error, 0);
  await n.disconnect();
  const viaWire = await readVdi(c, vid, 3 * MiB + 17, a.length);
  assert.ok(viaWire.equals(a), 'readVdi differs from what NBD wrote');
  // The reverse, with no NBD connection open (an open device caches the index, as QEMU did).
  const b = randomBytes(5 * MiB);
  await writeVdi(c, vid, 20 * MiB - 1000, b);
  const n2 = await NbdClient.connect('127.0.0.1', nbdPort, 'xchk');
  const r = await n2.read_(20 * MiB - 1000, b.length);
  assert.is(r.error, 0);
  assert.ok(r.data.equals(b), 'NBD read differs from what writeVdi wrote');
  const r2 = await n2.read_(3 * MiB + 17, a.length);
  assert.ok(r2.data.equals(a));
  await n2.disconnect();
}));

test('a snapshot export NAME:1 is read-only (EPERM) and shows pre-snapshot data', T(async () => {
  if (!(await need(QEMU_IO))) return;
  await mkVdi('snap', 16 * MiB);
  await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 6M', url('snap')]);
  await snapshot('snap');
  await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0xa5 1M 1M', '-c', 'read -P 0x5a 0 1M', '-c', 'read -P 0xa5 1M 1M', url('snap')]);
  // The snapshot still has the old bytes, through qemu (read-only open) and through our client.
  const out = await sh('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x5a 0 6M', url('snap:1')]);
  assert.not.match(out, /verification failed/i);
  const s = await NbdClient.connect('127.0.0.1', nbdPort, 'snap:1');
  assert.ok(s.flags & TxFlag.READ_ONLY, 'snapshot export must advertise READ_ONLY');
  const w = await s.write(0, Buffer.alloc(4096, 1));
  assert.is(w.error, Errno.EPERM);
  assert.is((await s.trim(0, 4 * MiB)).error, Errno.EPERM);
  assert.is((await s.zero(0, 4096)).error, Errno.EPERM);
  const r = await s.read_(MiB, MiB);
  assert.ok(r.data.equals(Buffer.alloc(MiB, 0x5a)));
  await s.disconnect();
  // qemu-io refuses to open it read-write or fails the write.
  const err = await shFails('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 4k', url('snap:1')]);
  assert.match(err, /read.only|permission|not permitted|EPERM/i);
  if (await haveTool('nbdinfo')) {
    const j = JSON.parse(await sh('nbdinfo', ['--json', url('snap:1')]));
    assert.is(j.exports[0].is_read_only, true);
    const list = JSON.parse(await sh('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${nbdPort}`]));
    const names = list.exports.map((x: { 'export-name': string }) => x['export-name']);
    assert.ok(names.includes('snap') && names.includes('snap:1'), names.join(','));
  }
}));

test('a snapshot taken while a connection is open: writes continue as COW on the new working VDI', T(async () => {
  const oldVid = await mkVdi('live', 16 * MiB);
  const n = await NbdClient.connect('127.0.0.1', nbdPort, 'live');
  const A = Buffer.alloc(6 * MiB, 0x41);
  assert.is((await n.write(0, A)).error, 0);
  assert.is((await n.flush()).error, 0); // acknowledged writes may still be on their way until a flush
  const newVid = await snapshot('live');
  assert.is.not(newVid, oldVid);
  // Same connection, same objects: the server answers READONLY internally; the client must not see it.
  const B = Buffer.alloc(MiB, 0x42);
  const results = await Promise.all([n.write(MiB, B), n.write(5 * MiB, B), n.write(9 * MiB, B)]);
  for (const r of results) assert.is(r.error, 0, r.message);
  const r = await n.read_(0, 10 * MiB);
  const expect = Buffer.alloc(10 * MiB);
  A.copy(expect, 0);
  B.copy(expect, MiB);
  B.copy(expect, 5 * MiB);
  B.copy(expect, 9 * MiB);
  assert.ok(r.data.equals(expect), 'data read back through the open connection');
  await n.disconnect();
  // The working VDI (by wire) has the new bytes; the snapshot has only A.
  assert.ok((await readVdi(c, newVid, 0, 10 * MiB)).equals(expect), 'working VDI over the wire');
  const snapBytes = await readVdi(c, oldVid, 0, 10 * MiB);
  const expectSnap = Buffer.alloc(10 * MiB);
  A.copy(expectSnap, 0);
  assert.ok(snapBytes.equals(expectSnap), 'snapshot must keep the pre-snapshot data');
  assert.is(await vdiSize(newVid), BigInt(16 * MiB));
}));

test('a snapshot racing acknowledged, unflushed writes loses none of them in the working VDI', T(async () => {
  const A = Buffer.alloc(6 * MiB, 0x41);
  const B = Buffer.alloc(MiB, 0x42);
  const expect = Buffer.alloc(10 * MiB);
  A.copy(expect, 0);
  for (const at of [1, 5, 9]) B.copy(expect, at * MiB);
  for (let round = 0; round < 4; round++) {
    const name = `racy${round}`;
    const oldVid = await mkVdi(name, 16 * MiB);
    const n = await NbdClient.connect('127.0.0.1', nbdPort, name);
    assert.is((await n.write(0, A)).error, 0);
    // The snapshot starts while A is (most likely) still being written: A lands in the snapshot or not,
    // but always in the working VDI, and later writes follow it there.
    const newVid = await snapshot(name);
    const results = await Promise.all([1, 5, 9].map((at) => n.write(at * MiB, B)));
    for (const r of results) assert.is(r.error, 0, r.message);
    assert.ok((await n.read_(0, 10 * MiB)).data.equals(expect), `round ${round}: read back through the open connection`);
    assert.is((await n.flush()).error, 0);
    await n.disconnect();
    assert.ok((await readVdi(c, newVid, 0, 10 * MiB)).equals(expect), `round ${round}: working VDI over the wire`);
    // The snapshot holds, object by object, either what A wrote or nothing; never B.
    const snap = await readVdi(c, oldVid, 0, 8 * MiB);
    for (const obj of [0, 1]) {
      const got = snap.subarray(obj * 4 * MiB, (obj + 1) * 4 * MiB);
      const a = Buffer.concat([A, Buffer.alloc(2 * MiB)]).subarray(obj * 4 * MiB, (obj + 1) * 4 * MiB);
      assert.ok(got.equals(a) || got.equals(Buffer.alloc(4 * MiB)), `round ${round}: snapshot object ${obj} is neither A nor empty (B leaked: ${got.includes(0x42)})`);
    }
  }
}));

test('write-back: early acknowledgement within the window, ordered overlaps, errors reported by the next flush', T(async () => {
  await mkVdi('wback', 64 * MiB);
  // A transport that holds data writes until released, and can make them fail.
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => undefined;
  let failNext = 0;
  const seen: number[] = [];
  const ops: number[] = [];
  const gated = {
    request: async (init: Parameters<SheepClient['request']>[0], data?: Uint8Array) => {
      ops.push(init.opcode);
      const dataWrite = (init.opcode === Op.WRITE_OBJ || init.opcode === Op.CREATE_AND_WRITE_OBJ) && init.obj && ((init.obj.oid ?? 0n) & (1n << 63n)) === 0n;
      // a payload starting 0xEE fails at once, without waiting for the gate
      if (dataWrite && data![0] === 0xee) return { ...(await c.request(init, data)), result: Res.EIO };
      if (dataWrite) {
        await gate;
        seen.push(data![0]!);
        if (failNext > 0) {
          failNext--;
          const r = await c.request(init, data); // the write happens; its reply is turned into a failure
          return { ...r, result: Res.EIO };
        }
      }
      return c.request(init, data);
    },
  };
  const dev = await VdiDevice.open(gated, 'wback', () => undefined, 8 * MiB);
  const close = () => {
    gate = new Promise<void>((r) => (open = r));
  };
  // With the replicas stalled, writes are acknowledged until 8 MiB are outstanding, and no further.
  close();
  let acked = 0;
  const writes = [0, 1, 2, 3, 4].map((i) => dev.write(i * 2 * MiB, Buffer.alloc(2 * MiB, i + 1), { writeBack: true }).then(() => acked++));
  await new Promise((r) => setTimeout(r, 200));
  assert.is(acked, 4, 'four 2 MiB writes fit an 8 MiB window; the fifth waits for room');
  assert.is(dev.stats.earlyAcks, 4);
  // A read of a range still being written waits for the write.
  let readDone = false;
  const read = dev.read(MiB, 4096).then((b) => ((readDone = true), b));
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(readDone, 'a read does not overtake an acknowledged write of its range');
  open();
  await Promise.all(writes);
  assert.ok((await read).equals(Buffer.alloc(4096, 1)));
  await dev.flush();
  // Overlapping writes acknowledged early apply in order: the last one wins.
  close();
  seen.length = 0;
  for (let v = 1; v <= 5; v++) await dev.write(20 * MiB, Buffer.alloc(MiB, v), { writeBack: true });
  open();
  await dev.flush();
  assert.equal(seen, [1, 2, 3, 4, 5], 'writes of one range reach the cluster in arrival order');
  assert.ok((await dev.read(20 * MiB, MiB)).equals(Buffer.alloc(MiB, 5)));
  // A failed acknowledged write: the next flush reports it, once; meanwhile writes are not acknowledged early.
  failNext = 1;
  await dev.write(30 * MiB, Buffer.alloc(MiB, 7), { writeBack: true });
  const early = dev.stats.earlyAcks;
  await dev.settle();
  await dev.write(31 * MiB, Buffer.alloc(MiB, 8), { writeBack: true });
  assert.is(dev.stats.earlyAcks, early, 'no early acknowledgement while a failure is unreported');
  const flushErr = await dev.flush().then(() => null, (e: unknown) => e);
  assert.ok(flushErr instanceof VdiDeviceError && flushErr.errno === Errno.EIO, 'the flush reports the lost write');
  await dev.flush(); // reported once
  await dev.write(32 * MiB, Buffer.alloc(MiB, 9), { writeBack: true });
  assert.is(dev.stats.earlyAcks, early + 1, 'early acknowledgement resumes after the report');
  // A flush reports only failures of writes acknowledged before it began.
  await dev.flush();
  close();
  await dev.write(33 * MiB, Buffer.alloc(MiB, 1), { writeBack: true }); // held at the gate
  const f1 = dev.flush();
  await dev.write(34 * MiB, Buffer.alloc(MiB, 0xee), { writeBack: true }); // acknowledged, then fails
  await new Promise((r) => setTimeout(r, 50));
  open();
  await f1; // covers only the first write, which landed
  const f2 = await dev.flush().then(() => null, (e: unknown) => e);
  assert.ok(f2 instanceof VdiDeviceError, 'the flush after the failed write reports it');
  // A cluster flush while an acknowledged write is still on its way does not let the next FLUSH skip it.
  close();
  await dev.write(35 * MiB, Buffer.alloc(MiB, 2), { writeBack: true });
  await dev.commit(); // as a FUA write elsewhere does
  open();
  await dev.settle();
  ops.length = 0;
  await dev.flush();
  assert.ok(ops.includes(Op.FLUSH_VDI), 'the write that completed after the cluster flush is flushed');
  // A write larger than the window is acknowledged only once complete.
  close();
  let bigDone = false;
  const big = dev.write(40 * MiB, Buffer.alloc(12 * MiB, 3), { writeBack: true }).then(() => (bigDone = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(bigDone);
  open();
  await big;
  await dev.close();
}));

test('a snapshot that is undone (its base marked, then unmarked) does not fail writes waiting on it', T(async () => {
  const vid = await mkVdi('undone', 16 * MiB);
  const dev = await VdiDevice.open(c, 'undone');
  const setCtime = async (t: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(t, 0);
    const r = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToVdiOid(vid), offset: InodeOff.snapCtime, copies: 3 } }, b);
    assert.is(r.result, Res.SUCCESS);
  };
  // The base is marked as a snapshot would mark it, and no successor appears: the write that notices the
  // mark waits; once the mark is undone it goes on in the same VDI.
  await setCtime(1n << 32n);
  const w = dev.write(0, Buffer.alloc(MiB, 0x55));
  await new Promise((r) => setTimeout(r, 300));
  await setCtime(0n);
  await w;
  assert.ok(dev.stats.reloads >= 1, 'the write noticed the mark');
  assert.is(dev.vid, vid);
  assert.ok((await readVdi(c, vid, 0, MiB)).equals(Buffer.alloc(MiB, 0x55)));
  await dev.close();
}));

test('VdiDevice speaks to the sheep as QEMU did: LOCK_VDI, one inode read, COW creates, coalesced index writes', T(async () => {
  const vid = await mkVdi('qemu-like', 32 * MiB);
  const sent: Array<{ opcode: number; oid: bigint; offset: number; len: number; flags: number; cow: bigint; base: number }> = [];
  const rec = {
    request: (init: Parameters<SheepClient['request']>[0], data?: Uint8Array) => {
      sent.push({ opcode: init.opcode, oid: init.obj?.oid ?? 0n, offset: init.obj?.offset ?? 0, len: data ? data.length : (init.dataLength ?? 0), flags: init.flags ?? 0, cow: init.obj?.cowOid ?? 0n, base: init.vdi?.baseVdiId ?? 0 });
      return c.request(init, data);
    },
  };
  const inode = vidToVdiOid(vid);
  const dev = await VdiDevice.open(rec, 'qemu-like');
  assert.equal(sent.map((s) => s.opcode), [Op.LOCK_VDI, Op.READ_OBJ]);
  assert.is(sent[1]!.oid, inode);
  assert.is(sent[1]!.len, 4_198_968);
  // 12 MiB over three fresh objects: three creates, then ONE index write covering entries 1..3.
  sent.length = 0;
  await dev.write(4 * MiB, Buffer.alloc(12 * MiB, 0x33));
  const creates = sent.filter((s) => s.opcode === Op.CREATE_AND_WRITE_OBJ);
  assert.is(creates.length, 3);
  const idxWrites = sent.filter((s) => s.opcode === Op.WRITE_OBJ && s.oid === inode);
  assert.equal(idxWrites.map((s) => [s.offset, s.len]), [[4664 + 4 * 1, 12]]);
  // Racing writes to one fresh object: one create, the rest plain writes, one index update.
  sent.length = 0;
  await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => dev.write(20 * MiB + i * 8192, Buffer.alloc(4096, i + 1))));
  assert.is(sent.filter((s) => s.opcode === Op.CREATE_AND_WRITE_OBJ).length, 1);
  assert.is(sent.filter((s) => s.opcode === Op.WRITE_OBJ && s.oid === inode).length, 1);
  assert.is(sent.filter((s) => s.opcode === Op.WRITE_OBJ && s.oid !== inode).length, 7);
  for (let i = 0; i < 8; i++) assert.ok((await dev.read(20 * MiB + i * 8192, 4096)).equals(Buffer.alloc(4096, i + 1)));
  // Discarding the three whole objects: one 12-byte zero write into the index.
  sent.length = 0;
  await dev.zero(4 * MiB, 12 * MiB, true);
  const z = sent.filter((s) => s.opcode === Op.WRITE_OBJ && s.oid === inode);
  assert.equal(z.map((s) => [s.offset, s.len]), [[4664 + 4, 12]]);
  for (const i of [1, 2, 3]) assert.is(dev.entry(i), 0);
  // Allocated objects 5 and 7 around a hole at 6: still one coalesced index write.
  await dev.write(5 * 4 * MiB, Buffer.alloc(100, 1));
  await dev.write(7 * 4 * MiB + 5, Buffer.alloc(100, 1));
  sent.length = 0;
  await dev.zero(5 * 4 * MiB, 3 * 4 * MiB, true);
  assert.equal(sent.filter((s) => s.opcode === Op.WRITE_OBJ && s.oid === inode).map((s) => [s.offset, s.len]), [[4664 + 4 * 5, 12]]);
  assert.ok((await dev.read(5 * 4 * MiB, 3 * 4 * MiB)).equals(Buffer.alloc(12 * MiB)));
  // After a snapshot the next write to an old object is a COW create from the snapshot's object.
  await dev.write(0, Buffer.alloc(4096, 9));
  await snapshot('qemu-like');
  sent.length = 0;
  await dev.write(8192, Buffer.alloc(4096, 10));
  const cow = sent.find((s) => s.opcode === Op.CREATE_AND_WRITE_OBJ)!;
  assert.ok(cow && cow.flags & 0x02, 'COW flag');
  assert.is(cow.cow, (BigInt(vid) << 32n) | 0n);
  assert.ok(sent.some((s) => s.opcode === Op.GET_VDI_INFO), 'reloaded the inode by name');
  assert.is.not(dev.vid, vid);
  // Writes go out as writeback; a flush makes them durable with one cluster-wide FLUSH_VDI, and a flush
  // with nothing written since sends nothing.
  assert.ok(sent.filter((s) => s.opcode === Op.WRITE_OBJ || s.opcode === Op.CREATE_AND_WRITE_OBJ).every((s) => s.flags & Flag.WRITEBACK), 'writes are writeback');
  sent.length = 0;
  await dev.flush();
  assert.equal(sent.map((s) => [s.opcode, s.flags]), [[Op.FLUSH_VDI, Flag.WRITEBACK]]);
  sent.length = 0;
  await dev.flush();
  assert.equal(sent.length, 0);
  await dev.write(8192, Buffer.alloc(4096, 11));
  sent.length = 0;
  await dev.close();
  assert.equal(sent.map((s) => s.opcode), [Op.FLUSH_VDI, Op.RELEASE_VDI], 'close flushes what was written');
  assert.is(sent[1]!.base, vid, 'RELEASE_VDI goes to the vid that LOCK_VDI locked');
  // Nothing stays locked: both the snapshot and the new working VDI can be locked again.
  for (const snapid of [1, 0]) {
    const l = await c.request({ opcode: Op.LOCK_VDI, vdi: { snapid } }, Buffer.concat([nameBuf256('qemu-like'), Buffer.alloc(256)]));
    assert.is(l.result, Res.SUCCESS, `lock snapid ${snapid}`);
    await c.request({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: l.raw.readUInt32LE(24) } }, Buffer.from('qemu-like\0'));
  }
}));

test('an open export holds the VDI lock (LOCK_VDI) until its last connection closes (RELEASE_VDI)', T(async () => {
  await mkVdi('lockme', 8 * MiB);
  const other = await SheepClient.connect('127.0.0.1', sheepPort + 1);
  try {
    const lockFromOther = async () => (await other.request({ opcode: Op.LOCK_VDI, vdi: { snapid: 0, type: 0 } }, Buffer.concat([nameBuf256('lockme'), Buffer.alloc(256)]))).result;
    const a = await NbdClient.connect('127.0.0.1', nbdPort, 'lockme');
    const b = await NbdClient.connect('127.0.0.1', nbdPort, 'lockme'); // shares the open device
    assert.is(await lockFromOther(), Res.VDI_LOCKED);
    await a.disconnect();
    assert.is(await lockFromOther(), Res.VDI_LOCKED, 'still open on the second connection');
    await b.disconnect();
    let res: number = Res.VDI_LOCKED;
    for (let i = 0; i < 100 && res === Res.VDI_LOCKED; i++) {
      await new Promise((r) => setTimeout(r, 20));
      res = await lockFromOther();
    }
    assert.is(res, Res.SUCCESS, 'the lock is released after the last connection');
    // Now another sheep holds it: opening over NBD is refused with an error reply, not a hang.
    const h = await NbdClient.open('127.0.0.1', nbdPort);
    await h.greet();
    const go = await h.option(Opt.GO, infoRequest('lockme', []));
    assert.is(go.at(-1)!.type, Rep.ERR_POLICY);
    h.close();
    const rel = await other.request({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: vids.get('lockme')! } }, Buffer.from('lockme\0'));
    assert.is(rel.result, Res.SUCCESS);
  } finally {
    other.close();
  }
}));

test('pipelined writes racing to allocate the same objects all land', T(async () => {
  await mkVdi('race', 16 * MiB);
  const n = await NbdClient.connect('127.0.0.1', nbdPort, 'race');
  const n2 = await NbdClient.connect('127.0.0.1', nbdPort, 'race');
  const writes: Array<Promise<{ error: number }>> = [];
  const expect = Buffer.alloc(16 * MiB);
  for (let i = 0; i < 256; i++) {
    const off = (i % 4) * 4 * MiB + Math.floor(i / 4) * 64 * 1024 + 512;
    const buf = Buffer.alloc(4096, (i % 250) + 1);
    buf.copy(expect, off);
    writes.push((i % 2 ? n : n2).write(off, buf));
  }
  for (const w of await Promise.all(writes)) assert.is(w.error, 0);
  assert.is((await n.flush()).error, 0);
  const r = await n2.read_(0, 16 * MiB);
  assert.ok(r.data.equals(expect), 'some racing write was lost');
  await n.disconnect();
  await n2.disconnect();
  const fresh = await NbdClient.connect('127.0.0.1', nbdPort, 'race');
  assert.ok((await fresh.read_(0, 16 * MiB)).data.equals(expect), 'after reopen');
  const bs = await fresh.blockStatus(0, 16 * MiB);
  assert.equal(bs.extents, [{ length: 16 * MiB, flags: 0 }]);
  await fresh.disconnect();
}));

test('protocol details: ranges, block status REQ_ONE, zeroes, trims, simple replies, options', T(async () => {
  await mkVdi('edge', 12 * MiB + 4096);
  const n = await NbdClient.connect('127.0.0.1', nbdPort, 'edge');
  assert.is(n.size, BigInt(12 * MiB + 4096));
  assert.is((await n.read_(12 * MiB, 8192)).error, Errno.EINVAL);
  assert.is((await n.write(12 * MiB + 1, Buffer.alloc(4096))).error, Errno.ENOSPC);
  assert.is((await n.zero(12 * MiB, 8192)).error, Errno.ENOSPC);
  assert.is((await n.trim(12 * MiB, 8192)).error, Errno.EINVAL);
  assert.is((await n.blockStatus(12 * MiB, 8192)).error, Errno.EINVAL);
  assert.is((await n.request(Cmd.CACHE, 0, 4096)).error, Errno.EINVAL);
  // Last, partial object: write its tail, then status with and without REQ_ONE.
  assert.is((await n.write(12 * MiB + 4000, Buffer.alloc(96, 7))).error, 0);
  let bs = await n.blockStatus(0, 12 * MiB + 4096, CmdFlag.REQ_ONE);
  assert.equal(bs.extents, [{ length: 12 * MiB, flags: State.HOLE | State.ZERO }]);
  bs = await n.blockStatus(MiB, 12 * MiB + 4096 - MiB);
  assert.equal(bs.extents, [{ length: 11 * MiB, flags: 3 }, { length: 4096, flags: 0 }]);
  // WRITE_ZEROES with NO_HOLE allocates; without it a whole object becomes a hole again.
  assert.is((await n.zero(0, 4 * MiB, CmdFlag.NO_HOLE)).error, 0);
  bs = await n.blockStatus(0, 4 * MiB, CmdFlag.REQ_ONE);
  assert.equal(bs.extents, [{ length: 4 * MiB, flags: 0 }]);
  assert.is((await n.write(100, Buffer.alloc(100, 9))).error, 0);
  assert.is((await n.zero(0, 4 * MiB)).error, 0);
  bs = await n.blockStatus(0, 4 * MiB, CmdFlag.REQ_ONE);
  assert.equal(bs.extents, [{ length: 4 * MiB, flags: 3 }]);
  // A partial trim writes zeros into an allocated object.
  assert.is((await n.write(4 * MiB, Buffer.alloc(8192, 0xee))).error, 0);
  assert.is((await n.trim(4 * MiB + 4096, 4096)).error, 0);
  const r = await n.read_(4 * MiB, 8192);
  assert.ok(r.data.equals(Buffer.concat([Buffer.alloc(4096, 0xee), Buffer.alloc(4096)])));
  assert.is((await n.read_(100, 0)).error, 0);
  await n.disconnect();

  // Without structured replies: simple replies for READ, and BLOCK_STATUS is refused.
  const s = await NbdClient.connect('127.0.0.1', nbdPort, 'edge', { structured: false });
  assert.is(s.flags & TxFlag.SEND_DF, 0);
  const rr = await s.read_(4 * MiB, 8192);
  assert.is(rr.error, 0);
  assert.ok(rr.data.equals(Buffer.concat([Buffer.alloc(4096, 0xee), Buffer.alloc(4096)])));
  assert.is((await s.read_(13 * MiB, 10)).error, Errno.EINVAL);
  assert.is((await s.blockStatus(0, 4096)).error, Errno.EINVAL);
  await s.disconnect();

  // Option haggling: unknown options, INFO, LIST, bad LIST, EXPORT_NAME fallback with NO_ZEROES off.
  const h = await NbdClient.open('127.0.0.1', nbdPort);
  await h.greet();
  assert.is((await h.option(99)).at(-1)!.type, Rep.ERR_UNSUP);
  assert.is((await h.option(Opt.EXTENDED_HEADERS)).at(-1)!.type, Rep.ERR_UNSUP);
  assert.is((await h.option(Opt.LIST, Buffer.from('x'))).at(-1)!.type, Rep.ERR_INVALID);
  assert.is((await h.option(Opt.SET_META_CONTEXT, Buffer.alloc(3))).at(-1)!.type, Rep.ERR_INVALID); // before STRUCTURED_REPLY
  const info = await h.option(Opt.INFO, infoRequest('edge', []));
  assert.is(info.at(-1)!.type, Rep.ACK);
  assert.is(info[0]!.data.readBigUInt64BE(2), BigInt(12 * MiB + 4096));
  assert.is((await h.option(Opt.INFO, infoRequest('nope', []))).at(-1)!.type, Rep.ERR_UNKNOWN);
  const listed = await h.option(Opt.LIST);
  const names = listed.filter((x) => x.type === Rep.SERVER).map((x) => x.data.toString('utf8', 4, 4 + x.data.readUInt32BE(0)));
  assert.ok(names.includes('edge'), names.join(','));
  assert.is((await h.option(Opt.ABORT)).at(-1)!.type, Rep.ACK);
  await h.whenClosed();

  // A VDI whose name has a ':' that selects no snapshot is still reachable by its full name.
  await mkVdi('odd:name', 4 * MiB);
  const o = await NbdClient.connect('127.0.0.1', nbdPort, 'odd:name');
  assert.is(o.flags & TxFlag.READ_ONLY, 0);
  assert.is((await o.write(0, Buffer.alloc(512, 1))).error, 0);
  assert.ok((await o.read_(0, 512)).data.equals(Buffer.alloc(512, 1)));
  await o.disconnect();

  const old = await NbdClient.open('127.0.0.1', nbdPort);
  await old.greet(0);
  old.socket.write(Buffer.concat([Buffer.from('IHAVEOPT'), u32(Opt.EXPORT_NAME), u32(4), Buffer.from('edge')]));
  const reply = await readExactly(old.socket, 8 + 2 + 124);
  assert.is(reply.readBigUInt64BE(0), BigInt(12 * MiB + 4096));
  assert.ok(reply.readUInt16BE(8) & TxFlag.HAS_FLAGS);
  assert.ok(reply.subarray(10).every((b) => b === 0));
  old.close();
}));

test('malformed handshakes and requests close only their own connection', T(async () => {
  await mkVdi('bad', 8 * MiB);
  const good = await NbdClient.connect('127.0.0.1', nbdPort, 'bad');
  assert.is((await good.write(0, Buffer.alloc(4096, 3))).error, 0);
  // 1: unknown client flags.
  const b1 = await NbdClient.open('127.0.0.1', nbdPort);
  await b1.greet(0xff00);
  await b1.whenClosed();
  // 2: garbage instead of an option.
  const b2 = await NbdClient.open('127.0.0.1', nbdPort);
  await b2.greet();
  b2.socket.write(Buffer.alloc(64, 0x41));
  await b2.whenClosed();
  // 3: a good handshake, then a request with a bad magic.
  const b3 = await NbdClient.connect('127.0.0.1', nbdPort, 'bad');
  b3.socket.write(Buffer.alloc(28, 0x42));
  await b3.whenClosed();
  // 4: a client that connects and hangs up at once; 5: EXPORT_NAME of an unknown VDI.
  await new Promise<void>((r) => {
    const s = connect(nbdPort, '127.0.0.1', () => s.destroy());
    s.on('close', () => r());
  });
  const b5 = await NbdClient.open('127.0.0.1', nbdPort);
  await b5.greet();
  b5.socket.write(Buffer.concat([Buffer.from('IHAVEOPT'), u32(Opt.EXPORT_NAME), u32(7), Buffer.from('missing')]));
  await b5.whenClosed();
  // 6: an oversized write payload is refused with EINVAL after being skipped, without losing the stream.
  const big = await good.request(Cmd.WRITE, 0, 33 * MiB, 0, Buffer.alloc(33 * MiB));
  assert.is(big.error, Errno.EINVAL);
  // The first connection is unaffected.
  const r = await good.read_(0, 4096);
  assert.is(r.error, 0);
  assert.ok(r.data.equals(Buffer.alloc(4096, 3)));
  await good.disconnect();
}));

test('qemu-img bench 4 KiB QD16 is fast (Nagle regression check)', T(async () => {
  if (!(await need(QEMU_IMG, QEMU_IO))) return;
  await mkVdi('bench', 128 * MiB);
  // Allocate the first 80 MiB so the reads go to real objects.
  await sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 0 80M', url('bench')]);
  const count = 20_000;
  const t0 = process.hrtime.bigint();
  const out = await sh('qemu-img', ['bench', '-f', 'raw', '-c', String(count), '-d', '16', '-s', '4096', url('bench')], 60_000);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const iops = count / secs;
  process.stdout.write(`\n  qemu-img bench read 4k QD16: ${count} requests in ${secs.toFixed(2)} s = ${Math.round(iops)} IOPS (${out.trim().split('\n').pop()})\n`);
  assert.ok(iops > 1000, `only ${Math.round(iops)} IOPS: a Nagle / delayed-ACK stall?`);
}));

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function readExactly(socket: import('node:net').Socket, n: number): Promise<Buffer> {
  // NbdClient has already consumed the greeting; the rest arrives on its queue, so read from there.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have >= n) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks).subarray(0, n));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed')));
  });
}

test.run();

// The sheep-actors / sheep command lines: validation, daemonizing, and record → replay of a real run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { Op, Res } from '../src/proto/constants.js';
import { decodeRecoveryThrottling } from '../src/proto/structs.js';
import { createEventLog, EventLogWriter, readEventLog, type LogRecord } from '../src/runtime/event-log.js';
import { createVdi, format, nameBuf, randomPortBase, waitForMembers, waitForPort } from './cluster-harness.js';
import { removeDir, tempDir, withTimeout } from './helpers.js';

const BIN = new URL('../src/bin/', import.meta.url).pathname;
const run = (bin: string, args: string[]) => spawnSync(process.execPath, [join(BIN, bin), ...args], { encoding: 'utf8', timeout: 20_000 });

test('bad arguments: clear message, exit 64, nothing started', withTimeout(30_000, async () => {
  const dir = tempDir();
  try {
    for (const [args, msg] of [
      [[dir, '-p', '0'], /invalid -p value '0': must be in 1..65535/],
      [[dir, '-p', '70000'], /must be in 1..65535/],
      [[dir, '-p', 'abc'], /expected an integer/],
      [[dir, '-z', '-1'], /option -z|invalid -z|unknown option/],
      [[dir, '--bogus'], /unknown option '--bogus'/],
      [[], /a store directory is required/],
      [[dir, '-l', 'level=9'], /must be in 0..7/],
      [[dir, '-R', 'max=0'], /invalid -R max value '0': must be in 1..1024/],
      [[dir, '-R', 'speed=3'], /invalid -R option 'speed=3'/],
      [[dir, '--nbd', '10809', '--nbd-writeback', '2000'], /invalid --nbd-writeback value '2000': must be in 0..1024/],
      [[dir, '--nbd', '10809', '--nbd-writeback', 'lots'], /--nbd-writeback.*expected an integer/],
    ] as Array<[string[], RegExp]>) {
      const r = run('sheep.js', args);
      assert.is(r.status, 64, `${args.join(' ')} → ${r.status} ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    const r = run('sheep-actors.js', ['frobnicate']);
    assert.is(r.status, 64);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    assert.is(existsSync(join(dir, 'sheep.log')), false, 'nothing was started');
  } finally {
    removeDir(dir);
  }
}));

test('sheep DIR daemonizes, writes its pid file and log, keeps "<path> DIR <options>" on its command line', withTimeout(30_000, async () => {
  const dir = tempDir();
  const port = randomPortBase() + 50;
  const pidFile = join(dir, 'sheep.pid');
  try {
    mkdirSync(join(dir, 'logs'));
    const r = run('sheep.js', [join(dir, 'store'), '-p', String(port), '-b', '127.0.0.1', '-c', `local:path=${join(dir, 'hub.sock')}`, '-P', pidFile, '-l', `dir=${join(dir, 'logs')},level=6`, '-R', 'max=2,interval=30']);
    assert.is(r.status, 0, r.stderr);
    await waitForPort(port);
    for (let i = 0; i < 150 && !existsSync(pidFile); i++) await new Promise((res) => setTimeout(res, 100));
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline[1]!.endsWith('sheep.js'), cmdline.join(' '));
    assert.is(cmdline[2], join(dir, 'store'));
    assert.match(readFileSync(join(dir, 'logs', 'sheep.log'), 'utf8'), /sheep started/, '-l dir= places the log');
    const c = await SheepClient.connect('127.0.0.1', port);
    const t = decodeRecoveryThrottling((await c.request({ opcode: Op.GET_RECOVERY, dataLength: 24 })).data);
    c.close();
    assert.equal([t.maxExecCount, t.queueWorkInterval], [2, 30n], '-R max=,interval= sets the recovery throttle');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((res) => setTimeout(res, 100));
      } catch {
        break;
      }
    }
  } finally {
    removeDir(dir);
  }
}));

test('a recorded cluster run replays; a tampered log diverges; a truncated log is corrupted', withTimeout(60_000, async () => {
  const dir = tempDir();
  const port = randomPortBase();
  const log = join(dir, 'events.log');
  const child = spawn(process.execPath, [join(BIN, 'sheep-actors.js'), 'cluster', join(dir, 'c'), '--nodes', '3', '--port', String(port), '--record', log], { stdio: 'ignore' });
  try {
    await waitForPort(port + 2);
    await waitForMembers(port, 3);
    const c = await SheepClient.connect('127.0.0.1', port);
    await format(c, 3, 0x08);
    assert.is((await createVdi(c, 'alpha', 1n << 30n)).result, Res.SUCCESS);
    assert.is((await createVdi(c, 'beta', 1n << 30n)).result, Res.SUCCESS);
    assert.is((await c.request({ opcode: Op.LOCK_VDI }, nameBuf('alpha'))).result, Res.SUCCESS);
    assert.is((await c.request({ opcode: Op.LOCK_VDI }, nameBuf('alpha'))).result, Res.VDI_LOCKED);
    c.close();
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  const records = readEventLog(log);
  assert.ok(records.filter((r) => r.k === 'spawn').length >= 6, 'one VDI actor per VDI per node');
  assert.ok(records.some((r) => r.k === 'digest'));
  const ok = run('sheep-actors.js', ['replay', log]);
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^replay ok: \d+ records, 6 actors/);

  // Re-write the log with one LOCK turned into an UNLOCK, with valid checksums: replay must name it.
  const bytes = readFileSync(log);
  const edited = join(dir, 'edited.log');
  createEventLog(edited);
  const writers = new Map<number, EventLogWriter>();
  let changed = -1;
  records.forEach((r, i) => {
    const { s, q: _q, ...body } = r as LogRecord & { s: number; q: number };
    let w = writers.get(s);
    if (!w) writers.set(s, (w = new EventLogWriter(edited, s)));
    const ev = (body as { ev?: { type?: string } }).ev;
    if (changed < 0 && body.k === 'in' && ev?.type === 'LOCK') {
      changed = i;
      (body as { ev: unknown }).ev = { ...ev, type: 'UNLOCK' };
    }
    const b = body as { k: string; t: number; a: string; st: string; ev?: unknown; id?: number };
    const parts = () => ({ sv: b.st.slice(0, b.st.lastIndexOf(':')), fp: parseInt(b.st.slice(b.st.lastIndexOf(':') + 1), 16) });
    if (b.k === 'in') w.appendInput(b.t, b.a, b.ev, parts());
    else if (b.k === 'timer') w.appendTimer(b.t, b.a, b.id!, parts());
    else w.append(body as never);
    w.flush();
  });
  for (const w of writers.values()) w.close();
  assert.ok(changed > 0);
  const div = run('sheep-actors.js', ['replay', edited]);
  assert.is(div.status, 1, div.stderr);
  assert.match(div.stderr, new RegExp(`replay diverged at record #${changed} \\(vdi/127\\.0\\.0\\.1:\\d+/[0-9a-f]+, event UNLOCK\\)`));

  const needle = Buffer.from(`127.0.0.1:${port}`);
  let at = bytes.lastIndexOf(needle);
  assert.ok(at > 0);
  const tampered = Buffer.from(bytes);
  tampered[at + needle.length - 1] = tampered[at + needle.length - 1]! ^ 1;
  writeFileSync(log, tampered);
  const bad = run('sheep-actors.js', ['replay', log]);
  assert.is(bad.status, 2, 'a changed byte breaks the frame checksum');
  assert.match(bad.stderr, /corrupted at byte \d+ \(record #\d+\): checksum mismatch/);

  writeFileSync(log, bytes.subarray(0, bytes.length - 7));
  const cut = run('sheep-actors.js', ['replay', log]);
  assert.is(cut.status, 2);
  assert.match(cut.stderr, /truncated frame/);
  at = 0;
  removeDir(dir);
}));

test.run();

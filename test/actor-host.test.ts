import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActorHost, type FailureReport } from '../src/runtime/actor-host.js';
import { RealClock } from '../src/runtime/clock.js';
import { createEventLog, EventLogWriter, readEventLog, LogCorruptedError } from '../src/runtime/event-log.js';
import { replayLog, replayRecords } from '../src/runtime/replay.js';
import './fixtures/test-kinds.js';
import { removeDir, tempDir, timed } from './helpers.js';

const addr = (id: string) => ({ kind: 'counter', id });

function makeHost(recorder?: EventLogWriter, failures: FailureReport[] = []) {
  const replies = new Map<number, unknown>();
  const clock = new RealClock();
  const host: ActorHost = new ActorHost({
    shard: 0,
    clock,
    recorder,
    services: {
      'store.get': (cmd) => new Promise((resolve) => setTimeout(() => resolve({ type: 'store.get.done', value: `v:${String(cmd.key)}` }), 2)),
    },
    router: {
      tell: (_from, to, event) => host.deliver(to, event),
      reply: (id, value) => replies.set(id, value),
    },
    onFailure: (r) => failures.push(r),
  });
  return { host, replies, clock };
}

async function runScenario(host: ActorHost) {
  host.spawn(addr('a'), { start: 1 });
  host.spawn(addr('b'), {});
  host.deliverAsk(addr('a'), { type: 'INC', by: 2 }, 1);
  host.deliver(addr('a'), { type: 'FORWARD', to: 'b', by: 5 });
  host.deliver(addr('a'), { type: 'FETCH', key: 'k1' });
  await host.idle();
  await new Promise((r) => setTimeout(r, 20));
  host.deliver(addr('b'), { type: 'ARM' });
  await new Promise((r) => setTimeout(r, 120));
  host.deliver(addr('b'), { type: 'BOOM' });
  host.deliverAsk(addr('b'), { type: 'GET' }, 2);
  await host.idle();
}

test('actors process asks, tells, effects and timers', timed(async () => {
  const { host, replies } = makeHost();
  await runScenario(host);
  assert.is(replies.get(1), 3);
  const a = host.snapshot(addr('a'))!;
  assert.equal((a.context as { fetched: string[] }).fetched, ['v:k1']);
  host.shutdown();
}));

test('a crashing actor is reported and restarted, and does not take the process down', timed(async () => {
  const failures: FailureReport[] = [];
  const { host, replies } = makeHost(undefined, failures);
  await runScenario(host);
  assert.is(failures.length, 1);
  assert.is(failures[0]!.address, 'counter/b');
  assert.is(failures[0]!.action, 'restarted');
  assert.match(failures[0]!.error, 'boom requested');
  // the restarted actor answers from its initial state
  assert.is(replies.get(2), 0);
  // after maxRestarts (2) the policy stops it
  host.deliver(addr('b'), { type: 'BOOM' });
  host.deliver(addr('b'), { type: 'BOOM' });
  await host.idle();
  assert.is(failures.length, 3);
  assert.is(failures[2]!.action, 'stopped');
  assert.is(host.has(addr('b')), false);
  host.shutdown();
}));

test('a recorded run replays to the same transitions and digest', timed(async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'run.log');
    createEventLog(path);
    const rec = new EventLogWriter(path, 0);
    const { host } = makeHost(rec);
    await runScenario(host);
    host.recordDigest();
    rec.close();
    host.shutdown();
    const records = readEventLog(path);
    assert.ok(records.some((r) => r.k === 'timer'), 'timer firing recorded');
    assert.ok(records.some((r) => r.k === 'crash'), 'crash recorded');
    assert.ok(records.some((r) => r.k === 'in' && (r.ev as { type: string }).type === 'store.get.done'), 'I/O result recorded');
    const result = replayLog(path);
    assert.is(result.divergence, undefined, JSON.stringify(result.divergence));
    assert.is(result.digestsChecked, 1);
    assert.ok(result.inputs >= 6);

    // A changed input diverges, and the report names the record.
    const tampered = records.map((r) => (r.k === 'in' && (r.ev as { type: string }).type === 'INC' ? { ...r, ev: { ...(r.ev as object), by: 7 } } : r));
    const bad = replayRecords(tampered);
    assert.ok(bad.divergence, 'tampered log must diverge');
    assert.is(bad.divergence!.actor, 'counter/a');

    // A flipped byte is reported as corruption, not as a divergence.
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(path, bytes);
    assert.throws(() => replayLog(path), (e: unknown) => e instanceof LogCorruptedError && /checksum/.test((e as Error).message));
    // A truncated log too.
    writeFileSync(path, readFileSync(path).subarray(0, bytes.length - 5));
    assert.throws(() => replayLog(path), (e: unknown) => e instanceof LogCorruptedError && /truncated/.test((e as Error).message));
  } finally {
    removeDir(dir);
  }
}));

test('crc32 in JS equals zlib.crc32 for every length up to 1 KiB', timed(async () => {
  const { crc32 } = await import('../src/runtime/crc32.js');
  const { crc32: native } = await import('node:zlib');
  const buf = Buffer.alloc(1024);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
  for (let n = 0; n <= buf.length; n++) assert.is(crc32(buf.subarray(0, n)), native(buf.subarray(0, n)), `length ${n}`);
}));

test.run();

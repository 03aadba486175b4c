import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { ActorSystem } from '../src/runtime/system.js';
import type { FailureReport } from '../src/runtime/actor-host.js';
import { replayLog } from '../src/runtime/replay.js';
import { assertRejects, removeDir, tempDir, timed } from './helpers.js';

const kinds = [new URL('./fixtures/test-kinds.js', import.meta.url).href];
const counter = (id: string) => ({ kind: 'counter', id });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('actors on two shard workers: placement, tell, ask, cross-shard tells, forwarded effects, failures, replay', timed(async () => {
  const dir = tempDir();
  const failures: FailureReport[] = [];
  const record = join(dir, 'system.log');
  const sys = await ActorSystem.start({
    workers: 2,
    kindModules: kinds,
    record,
    services: { 'store.get': async (cmd) => ({ type: 'store.get.done', value: `home:${String(cmd.key)}` }) },
    onFailure: (r) => failures.push(r),
  });
  try {
    const ids = Array.from({ length: 16 }, (_, i) => `c${i}`);
    const shards = new Set(ids.map((id) => sys.shardOf(counter(id))));
    assert.ok(shards.has(1) && shards.has(2), `actors spread over both workers: ${[...shards]}`);
    for (const id of ids) sys.spawn(counter(id), { start: 10 });
    const sums = await Promise.all(ids.map((id, i) => sys.ask<number>(counter(id), { type: 'INC', by: i })));
    assert.equal(sums, ids.map((_, i) => 10 + i));
    // c0 tells c1..c15 (other shards included) to add 100
    for (let i = 1; i < ids.length; i++) sys.tell(counter('c0'), { type: 'FORWARD', to: ids[i]!, by: 100 });
    await sleep(50);
    const after = await Promise.all(ids.map((id) => sys.ask<number>(counter(id), { type: 'GET' })));
    assert.equal(after.slice(1), ids.slice(1).map((_, i) => 10 + i + 1 + 100));
    // effect from a worker actor with no local service runs on the home thread
    sys.tell(counter('c3'), { type: 'FETCH', key: 'k' });
    await sleep(50);
    const listing = await sys.inspect();
    assert.is(listing.length, 16);
    assert.ok(listing.every((a) => a.shard === sys.shardOf({ kind: 'counter', id: a.address.split('/')[1]! })));
    // a crash in a worker is reported at home and the worker survives
    sys.tell(counter('c5'), { type: 'BOOM' });
    await sleep(50);
    assert.is(failures.length, 1);
    assert.is(failures[0]!.address, 'counter/c5');
    assert.is(await sys.ask<number>(counter('c5'), { type: 'GET' }), 10);
    const stats = await sys.stats();
    assert.is(stats.length, 3);
    assert.ok(stats[1]!.delivered > 0 && stats[2]!.delivered > 0);
    const fetched = listing.find((a) => a.address === 'counter/c3');
    assert.ok(fetched);
  } finally {
    await sys.shutdown();
  }
  const result = replayLog(record);
  assert.is(result.divergence, undefined, JSON.stringify(result.divergence));
  assert.is(result.digestsChecked, 3);
  assert.is(result.actors, 17); // 16 spawns + one restart
  removeDir(dir);
}));

test('ask times out with a clear error when nobody answers', timed(async () => {
  const sys = await ActorSystem.start({ workers: 1, kindModules: kinds });
  try {
    await assertRejects(sys.ask(counter('missing'), { type: 'GET' }, 200), /timed out after 200 ms/);
  } finally {
    await sys.shutdown();
  }
}));

test.run();

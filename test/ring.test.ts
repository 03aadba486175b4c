// Tests for src/runtime/{ring,doorbell,slab,channel}.ts: single-thread property tests against a
// model, and real two-thread runs (worker fixture: test/fixtures/ring-worker.ts).
// Seeds: RING_SEED=<n> reproduces a run; every property failure message carries its seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { Channel, ChannelWriter, Inbox } from '../src/runtime/channel.js';
import { Doorbell } from '../src/runtime/doorbell.js';
import { FRAME_HEADER_BYTES, FrameTooLargeError, Ring, RING_HEADER_BYTES } from '../src/runtime/ring.js';
import { SlabPool } from '../src/runtime/slab.js';
import { checkFrame, fillFrame, lengthFor, mulberry32 } from './fixtures/frames.js';
import { timed, withTimeout } from './helpers.js';

const BASE_SEED = Number(process.env.RING_SEED ?? (Date.now() % 0x7fffffff));

/** Runs fn with a seed; on failure the error message names the seed to reproduce it. */
async function withSeed(seed: number, fn: (seed: number) => unknown | Promise<unknown>): Promise<void> {
  try {
    await fn(seed);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `[seed ${seed}; rerun with RING_SEED=${BASE_SEED}] ${err.message}`;
    console.error(`ring.test: failure with seed ${seed} (RING_SEED=${BASE_SEED})`);
    throw err;
  }
}

// ----------------------------------------------------------------------------- worker plumbing

const WORKER_URL = new URL('./fixtures/ring-worker.js', import.meta.url);

/** Spawns fixture workers; all are terminated when the body finishes (pass or fail). */
async function withWorkers(body: (spawn: <T>(data: object) => Promise<T>) => Promise<void>): Promise<void> {
  const workers: Worker[] = [];
  const spawn = <T>(data: object): Promise<T> => {
    const w = new Worker(WORKER_URL, { workerData: data });
    workers.push(w);
    return new Promise<T>((resolve, reject) => {
      w.once('message', (m) => resolve(m as T));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`worker (${(data as { mode: string }).mode}) exited with ${code} before reporting`)));
    });
  };
  try {
    await body(spawn);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

interface ConsumeResult {
  received: number;
  errors: string[];
  stalls: number;
  drains: number;
  ms: number;
  empty: boolean;
}

const align8 = (n: number): number => (n + 7) & ~7;

// ----------------------------------------------------------------------------- ring: basics

test(
  'Ring.allocate validates capacity',
  timed(() => {
    assert.throws(() => Ring.allocate(1000), /power of two/);
    assert.throws(() => Ring.allocate(512), /power of two between 1024/);
    assert.throws(() => Ring.allocate(3 * 1024), /power of two/);
    const sab = Ring.allocate(1024);
    assert.is(sab.byteLength, RING_HEADER_BYTES + 1024);
    const r = new Ring(sab);
    assert.is(r.capacity, 1024);
    assert.is(r.maxFrame, 1024 / 2 - 8);
    assert.ok(r.isEmpty());
    assert.throws(() => new Ring(new SharedArrayBuffer(1000)), /power of two/);
  }),
);

test(
  'oversize frame is rejected with FrameTooLargeError and the ring stays usable',
  timed(async () => {
    const r = new Ring(Ring.allocate(4096));
    r.tryWrite(new Uint8Array([1, 2, 3]));
    let err: unknown;
    try {
      r.tryWrite(new Uint8Array(r.maxFrame + 1));
    } catch (e) {
      err = e;
    }
    assert.instance(err, FrameTooLargeError);
    assert.instance(err, RangeError);
    assert.match((err as Error).message, `${r.maxFrame + 1} bytes`);
    assert.match((err as Error).message, `${r.maxFrame} bytes`);
    assert.is((err as FrameTooLargeError).size, r.maxFrame + 1);
    const isTooLarge = (e: unknown): boolean => e instanceof FrameTooLargeError;
    assert.throws(() => r.tryWriteWith(1 << 20, () => {}), isTooLarge);
    assert.throws(() => void r.write(new Uint8Array(5000)), isTooLarge);
    assert.throws(() => r.tryWriteWith(-1, () => {}), /non-negative/);
    // Still usable: the earlier frame, then a frame of exactly maxFrame.
    const big = new Uint8Array(r.maxFrame).map((_, i) => i & 255);
    assert.ok(r.tryWrite(big) || (r.drain(() => {}), r.tryWrite(big)));
    const got: number[][] = [];
    r.drain((v) => got.push([v.length, v[0] ?? -1, v[v.length - 1] ?? -1]));
    assert.equal(got.at(-1), [r.maxFrame, 0, (r.maxFrame - 1) & 255]);
    assert.ok(r.isEmpty());
    // Channel writers reject at send time too, and stay usable.
    const inbox = new Inbox();
    const w = new ChannelWriter(inbox.channelSpec(1024));
    assert.throws(() => w.send({ blob: 'z'.repeat(600) }), (e: Error) => e instanceof FrameTooLargeError && /maximum frame size of 504/.test(e.message));
    assert.ok(w.send({ ok: 1 }));
    await null; // batched sends are published at the next microtask
    const msgs: unknown[] = [];
    inbox.drainNow((m) => msgs.push(m));
    assert.equal(msgs, [{ ok: 1 }]);
  }),
);

test(
  'property: random frames vs a model — every wrap alignment, exact fits, u32 counter wrap',
  timed(async () => {
    for (let round = 0; round < 24; round++) {
      await withSeed(BASE_SEED + round, (seed) => {
        const rnd = mulberry32(seed);
        const cap = 1024 << (round % 3); // 1, 2, 4 KiB
        const sab = Ring.allocate(cap);
        const ctl = new Int32Array(sab, 0, 32);
        // Start the free-running counters at awkward places: near 2^31, near 2^32, or random.
        const starts = [0x7fffffff - (rnd() % 4096), 0xffffffff - (rnd() % 4096), rnd()];
        const start = (starts[round % 3]! & ~7) | 0;
        ctl[0] = start; // HEAD
        ctl[16] = start; // TAIL
        const ring = new Ring(sab);
        const maxLen = ring.maxFrame;
        const model: number[] = []; // seqs in flight
        let used = 0;
        let nextSeq = 0;
        let nextRead = 0;
        const wrapAlign = new Set<number>();
        let exactFits = 0;
        const check = (data: Uint8Array, off: number, len: number): void => {
          if (off % 8 !== 0) throw new Error(`payload offset ${off} is not 8-byte aligned`);
          const e = checkFrame(data, off, len, seed, nextRead, maxLen);
          if (e) throw new Error(e);
          assert.is(model.shift(), nextRead);
          nextRead++;
        };
        for (let op = 0; op < 6000; op++) {
          if (rnd() % 3 !== 0) {
            const len = lengthFor(seed, nextSeq, maxLen);
            const head = ctl[0]!;
            const pos = head & (cap - 1);
            const total = align8(FRAME_HEADER_BYTES + len);
            const toEnd = cap - pos;
            const need = total <= toEnd ? total : toEnd + total;
            const ok = ring.tryWriteWith(len, (dst, off) => fillFrame(dst, off, len, seed, nextSeq));
            assert.is(ok, need <= cap - used, `tryWrite predicted ${need <= cap - used} (need ${need}, used ${used})`);
            if (ok) {
              if (need !== total) wrapAlign.add(len % 8);
              if (total === toEnd) exactFits++;
              used += need;
              assert.is((ctl[0]! - ctl[16]!) >>> 0, used, 'HEAD-TAIL equals model fill level');
              model.push(nextSeq++);
            }
          } else {
            const max = 1 + (rnd() % 8);
            const before = model.length;
            const n = ring.drainRaw(check, max);
            assert.is(n, Math.min(max, before));
            used = (ctl[0]! - ctl[16]!) >>> 0;
            if (model.length === 0) assert.is(used, 0);
          }
        }
        ring.drainRaw(check);
        assert.is(model.length, 0);
        assert.ok(ring.isEmpty());
        assert.ok(nextSeq > 1000, `only ${nextSeq} frames written`);
        assert.is(wrapAlign.size, 8, `wraps seen for len%8 in {${[...wrapAlign]}}`);
        assert.ok(exactFits > 0, 'no frame ended exactly at the end of the data area');
      });
    }
  }),
);

test(
  'drain: in-place views, handler error consumes only its frame, re-entrancy rejected',
  timed(() => {
    const ring = new Ring(Ring.allocate(1024));
    for (let i = 0; i < 5; i++) assert.ok(ring.tryWrite(new Uint8Array([i, i, i])));
    let seen: number[] = [];
    assert.throws(
      () =>
        ring.drain((v) => {
          seen.push(v[0]!);
          if (v[0] === 1) throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(seen, [0, 1]);
    seen = [];
    assert.throws(() => ring.drain(() => ring.drain(() => {})), /re-entrant/);
    assert.equal(seen, []);
    ring.drain((v) => seen.push(v[0]!));
    assert.equal(seen, [3, 4]); // frame 2 was consumed by the re-entrancy attempt's outer handler
    // cork: frames invisible until uncork
    ring.cork();
    ring.tryWrite(new Uint8Array([9]));
    assert.ok(ring.isEmpty());
    ring.uncork();
    assert.not.ok(ring.isEmpty());
    assert.is(ring.drain(() => {}), 1);
  }),
);

test(
  'cork: publish at uncork, at capacity/8 bytes, and when the ring is full; corruption is detected',
  timed(() => {
    const ring = new Ring(Ring.allocate(1024));
    ring.cork();
    assert.ok(ring.tryWrite(new Uint8Array(40))); // 48 bytes < 1024/8
    assert.ok(ring.isEmpty(), 'corked frame must not be visible yet');
    assert.ok(ring.tryWrite(new Uint8Array(100))); // 48 + 112 >= 128: auto-publish
    assert.not.ok(ring.isEmpty());
    assert.is(ring.drain(() => {}), 2);
    let written = 0;
    while (ring.tryWrite(new Uint8Array(8))) written++; // 16 bytes each, below the threshold per frame
    assert.is(written, 1024 / 16);
    // the failed write published everything so the consumer can make room
    assert.is(ring.usedBytes(), 1024);
    assert.is(ring.drain(() => {}), written);
    ring.uncork();
    // corruption: smash a header's check word
    ring.tryWrite(new Uint8Array([1, 2, 3]));
    const words = new Uint32Array(ring.sab, RING_HEADER_BYTES);
    const pos = (new Int32Array(ring.sab)[16]! & 1023) >>> 2;
    words[pos + 1] = 12345;
    assert.throws(() => ring.drain(() => {}), /Ring corrupted/);
  }),
);

// ----------------------------------------------------------------------------- ring: two threads

test(
  'two threads: 200k frames main → worker (Atomics.wait consumer), 8 KiB ring',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x1111, (seed) =>
      withWorkers(async (spawn) => {
        const count = 200_000;
        const maxLen = 2000;
        const ringSab = Ring.allocate(8192);
        const ring = new Ring(ringSab);
        const done = spawn<ConsumeResult>({ mode: 'consume-frames', ringSab, seed, count, maxLen, wait: 'sync' });
        let blocked = 0;
        for (let seq = 0; seq < count; seq++) {
          const len = lengthFor(seed, seq, maxLen);
          const fill = (dst: Uint8Array, off: number): void => fillFrame(dst, off, len, seed, seq);
          if (!ring.tryWriteWith(len, fill)) {
            blocked++;
            await ring.writeWith(len, fill);
          }
        }
        const r = await done;
        assert.equal(r.errors, []);
        assert.is(r.received, count);
        assert.is(r.stalls, 0, 'consumer timed out waiting while frames were due (lost wake-up)');
        assert.ok(r.empty && ring.isEmpty());
        assert.ok(blocked > 0, 'producer never hit a full ring');
      }),
    ),
  ),
);

test(
  'two threads: 200k frames worker → main (waitAsync consumer on the main thread), 4 KiB ring',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x2222, (seed) =>
      withWorkers(async (spawn) => {
        const count = 200_000;
        const maxLen = 1500;
        const ringSab = Ring.allocate(4096);
        const ring = new Ring(ringSab);
        const produced = spawn<{ sent: number; full: number }>({ mode: 'produce-frames', ringSab, seed, count, maxLen });
        let seq = 0;
        const errors: string[] = [];
        const check = (data: Uint8Array, off: number, len: number): void => {
          const e = checkFrame(data, off, len, seed, seq, maxLen);
          if (e && errors.length < 10) errors.push(e);
          seq++;
        };
        let sleeps = 0;
        while (seq < count) {
          const seen = ring.doorbell.snapshot();
          if (ring.drainRaw(check) === 0) {
            sleeps++;
            const rung = await ring.doorbell.waitAsync(seen, 10_000);
            assert.ok(rung || !ring.isEmpty(), 'consumer slept 10 s with frames due (lost wake-up)');
          }
        }
        const p = await produced;
        assert.equal(errors, []);
        assert.is(seq, count);
        assert.is(p.sent, count);
        assert.ok(ring.isEmpty());
        assert.ok(sleeps > 0);
      }),
    ),
  ),
);

test(
  'two threads: 100k frames into a worker waitAsync consumer through an external shared doorbell',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x3333, (seed) =>
      withWorkers(async (spawn) => {
        const count = 100_000;
        const maxLen = 300;
        const doorbellSab = Doorbell.allocate();
        const ringSab = Ring.allocate(2048);
        const ring = new Ring(ringSab, new Doorbell(doorbellSab));
        const done = spawn<ConsumeResult>({ mode: 'consume-frames', ringSab, doorbellSab, seed, count, maxLen, wait: 'async' });
        for (let seq = 0; seq < count; seq++) {
          const len = lengthFor(seed, seq, maxLen);
          const fill = (dst: Uint8Array, off: number): void => fillFrame(dst, off, len, seed, seq);
          if (!ring.tryWriteWith(len, fill)) await ring.writeWith(len, fill);
        }
        const r = await done;
        assert.equal(r.errors, []);
        assert.is(r.received, count);
        assert.is(r.stalls, 0);
      }),
    ),
  ),
);

test(
  'backpressure: fast producer, slowed consumer; write() waits and resolves in order when space frees',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x4444, (seed) =>
      withWorkers(async (spawn) => {
        const count = 3000; // phase 2 queues > 1024 writes: exercises backlog compaction
        const maxLen = 200;
        const ringSab = Ring.allocate(1024);
        const ring = new Ring(ringSab);
        // Consumer takes at most 4 frames per drain and sleeps 1 ms after each batch.
        const done = spawn<ConsumeResult>({ mode: 'consume-frames', ringSab, seed, count, maxLen, wait: 'sync', slowEvery: 4, slowMs: 1 });
        const t0 = performance.now();
        let pendingSeen = 0;
        const half = count / 2;
        // Phase 1: awaited writes.
        for (let seq = 0; seq < half; seq++) {
          const len = lengthFor(seed, seq, maxLen);
          const p = ring.writeWith(len, (dst, off) => fillFrame(dst, off, len, seed, seq));
          if (ring.queuedWrites > 0) {
            pendingSeen++;
            // It is waiting because the ring really is too full for it (need <= toEnd + total < cap).
            assert.ok(ring.usedBytes() > 0);
          }
          await p;
        }
        // Phase 2: fire-and-forget writes; they must complete in call order.
        const order: number[] = [];
        const ps: Promise<void>[] = [];
        for (let seq = half; seq < count; seq++) {
          const len = lengthFor(seed, seq, maxLen);
          ps.push(ring.writeWith(len, (dst, off) => fillFrame(dst, off, len, seed, seq)).then(() => void order.push(seq)));
        }
        assert.ok(ring.queuedWrites > half / 2, `expected most phase-2 writes queued, got ${ring.queuedWrites}`);
        assert.not.ok(ring.tryWrite(new Uint8Array(1)), 'tryWrite must not jump the write() queue');
        await Promise.all(ps);
        assert.equal(order, Array.from({ length: half }, (_, i) => half + i));
        const r = await done;
        const ms = performance.now() - t0;
        assert.equal(r.errors, []);
        assert.is(r.received, count);
        assert.ok(pendingSeen > 50, `only ${pendingSeen} writes had to wait`);
        assert.ok(ms > (count / 4) * 0.5, `producer finished in ${ms.toFixed(0)} ms: not throttled by the consumer`);
      }),
    ),
  ),
);

// ----------------------------------------------------------------------------- slab

test(
  'slab: geometry, views share memory, limits',
  timed(() => {
    assert.throws(() => SlabPool.allocate({ slotSize: 0, slots: 4 }), /slotSize/);
    assert.throws(() => SlabPool.allocate({ slotSize: 64, slots: 0 }), /slots/);
    assert.throws(() => new SlabPool(new SharedArrayBuffer(256)), /not created by SlabPool/);
    const pool = new SlabPool(SlabPool.allocate({ slotSize: 1000, slots: 37 }));
    assert.is(pool.slotSize, 1024);
    assert.is(pool.slots, 37);
    const seen = new Set<number>();
    for (let i = 0; i < 37; i++) seen.add(pool.alloc());
    assert.is(seen.size, 37);
    assert.ok([...seen].every((s) => s >= 0 && s < 37));
    assert.is(pool.alloc(), -1);
    assert.is(pool.inUse(), 37);
    const v = pool.view(5, 16);
    v.set([1, 2, 3]);
    assert.is(pool.buffer(5, 16)[2], 3);
    assert.ok(pool.buffer(5).buffer === pool.sab);
    assert.is(pool.view(6, 1)[0], 0);
    pool.view(6)[pool.slotSize - 1] = 7; // last byte of slot 6 is not slot 7's first
    assert.is(pool.view(7, 1)[0], 0);
    assert.throws(() => pool.view(0, 1025), /length 1025/);
    assert.throws(() => pool.view(37, 1), /slot 37/);
    for (const s of seen) pool.free(s);
    assert.is(pool.inUse(), 0);
  }),
);

test(
  'slab: exhaustion → -1, allocAsync resolves after another thread frees; double free throws',
  timed(() =>
    withWorkers(async (spawn) => {
      const slabSab = SlabPool.allocate({ slotSize: 4096, slots: 4 });
      const pool = new SlabPool(slabSab);
      const slots = [pool.alloc(), pool.alloc(), pool.alloc(), pool.alloc()];
      assert.equal([...slots].sort(), [0, 1, 2, 3]);
      assert.is(pool.alloc(), -1);
      assert.is(await pool.allocAsync(20), -1, 'allocAsync with timeout gives -1 while exhausted');
      let resolved = false;
      const p = pool.allocAsync().then((s) => {
        resolved = true;
        return s;
      });
      await new Promise((r) => setTimeout(r, 30));
      assert.not.ok(resolved, 'allocAsync resolved while the pool was exhausted');
      const freed = spawn<{ freed: number }>({ mode: 'slab-free-later', slabSab, slot: slots[2]!, delayMs: 30 });
      const got = await p;
      assert.is(got, slots[2]);
      assert.is((await freed).freed, slots[2]);
      pool.free(slots[0]!);
      assert.throws(() => pool.free(slots[0]!), /double free/);
      assert.throws(() => pool.free(99), /slot 99/);
      for (const s of [got, slots[1]!, slots[3]!]) pool.free(s);
      assert.is(pool.inUse(), 0);
    }),
  ),
);

test(
  'slab: concurrent alloc/free churn from 2 workers + main never hands a slot out twice',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x5555, (seed) =>
      withWorkers(async (spawn) => {
        const slots = 8;
        const slabSab = SlabPool.allocate({ slotSize: 64, slots });
        const ownersSab = new SharedArrayBuffer(4 * slots);
        const iterations = 300_000;
        type R = { dups: number; allocs: number; exhausted: number };
        const a = spawn<R>({ mode: 'slab-churn', slabSab, ownersSab, id: 1, iterations, seed });
        const b = spawn<R>({ mode: 'slab-churn', slabSab, ownersSab, id: 2, iterations, seed: seed + 1 });
        // Main thread churns in chunks until both workers report.
        const pool = new SlabPool(slabSab);
        const owners = new Int32Array(ownersSab);
        let finished = 0;
        void Promise.allSettled([a, b]).then(() => (finished = 1));
        let mainDups = 0;
        let mainAllocs = 0;
        while (!finished) {
          for (let i = 0; i < 2000; i++) {
            const s = pool.alloc();
            if (s < 0) continue;
            mainAllocs++;
            if (Atomics.compareExchange(owners, s, 0, 3) !== 0) mainDups++;
            if (Atomics.compareExchange(owners, s, 3, 0) !== 3) mainDups++;
            pool.free(s);
          }
          await new Promise((r) => setImmediate(r));
        }
        const [ra, rb] = [await a, await b];
        assert.is(ra.dups + rb.dups + mainDups, 0, 'a slot was owned by two threads at once');
        assert.ok(ra.allocs > 10_000 && rb.allocs > 10_000 && mainAllocs > 0);
        assert.is(pool.inUse(), 0);
        for (let s = 0; s < slots; s++) assert.not.ok(pool.isAllocated(s));
      }),
    ),
  ),
);

// ----------------------------------------------------------------------------- channel / inbox

test(
  'channel (single thread): shared doorbell adoption, overflow queue keeps FIFO, flushed()',
  timed(async () => {
    const doorbellSab = Doorbell.allocate();
    const specA = Channel.create(1024, doorbellSab);
    const specB = Channel.create(1024, doorbellSab);
    const inbox = new Inbox();
    inbox.attach(specA);
    inbox.attach(specB);
    assert.throws(() => inbox.attach(specA), /already attached/);
    assert.throws(() => inbox.attach(Channel.create(1024)), /different doorbell/);
    const wa = new ChannelWriter(specA);
    const wb = new ChannelWriter(specB);
    let queued = 0;
    for (let i = 0; i < 200; i++) {
      if (!wa.send({ ch: 'a', i, pad: 'p'.repeat(i % 50) })) queued++;
      wb.send({ ch: 'b', i });
    }
    assert.ok(queued > 100, `expected the 1 KiB ring to overflow, queued ${queued}`);
    assert.is(wa.queued, queued);
    const got: Record<string, number[]> = { a: [], b: [] };
    const h = (m: unknown): void => {
      const { ch, i } = m as { ch: string; i: number };
      got[ch]!.push(i);
    };
    let rounds = 0;
    while (got.a!.length < 200 || got.b!.length < 200) {
      inbox.drainNow(h);
      await new Promise((r) => setImmediate(r)); // lets the writers' flush pumps run
      assert.ok(++rounds < 10_000, 'channel did not flush');
    }
    await wa.flushed();
    await wb.flushed();
    assert.is(wa.queued, 0);
    const seq = Array.from({ length: 200 }, (_, i) => i);
    assert.equal(got.a, seq);
    assert.equal(got.b, seq);
    // values survive the ring slot being reused (copyBuffers)
    wa.send({ bin: new Uint8Array([1, 2, 3]) });
    const kept: unknown[] = [];
    assert.is(inbox.drainNow((m) => kept.push(m)), 0, 'batched: not yet published');
    wa.publish();
    assert.is(inbox.drainNow((m) => kept.push(m)), 1);
    wa.send({ bin: new Uint8Array([9, 9, 9]) });
    wa.publish();
    inbox.drainNow(() => {});
    assert.equal([...(kept[0] as { bin: Uint8Array }).bin], [1, 2, 3]);
  }),
);

test(
  'Inbox: two worker producers, two channels sharing one doorbell, every message in per-channel order',
  withTimeout(60_000, () =>
    withSeed(BASE_SEED ^ 0x6666, (seed) =>
      withWorkers(async (spawn) => {
        const count = 50_000;
        const inbox = new Inbox();
        const specs = [inbox.channelSpec(16 * 1024), inbox.channelSpec(16 * 1024)];
        assert.is(inbox.channels, 2);
        type R = { sent: number; queued: number; left: number };
        const next = [0, 0];
        const errors: string[] = [];
        let resolveAll!: () => void;
        const all = new Promise<void>((r) => (resolveAll = r));
        const loop = inbox.start((m) => {
          const msg = m as { ch: number; seq: number; s: string; bin: Uint8Array };
          const want = next[msg.ch]!;
          if (msg.seq !== want && errors.length < 10) errors.push(`ch ${msg.ch}: got seq ${msg.seq}, expected ${want}`);
          if (!msg.s.endsWith(String(msg.seq)) || msg.bin.some((x) => x !== (msg.seq & 255))) {
            if (errors.length < 10) errors.push(`ch ${msg.ch} seq ${msg.seq}: bad content`);
          }
          next[msg.ch] = msg.seq + 1;
          if (next[0] === count && next[1] === count) resolveAll();
        });
        assert.ok(inbox.isRunning);
        const results = await Promise.all([
          spawn<R>({ mode: 'channel-produce', spec: specs[0], ch: 0, count, seed }),
          spawn<R>({ mode: 'channel-produce', spec: specs[1], ch: 1, count, seed: seed + 1 }),
        ]);
        await all;
        await inbox.stop();
        await loop;
        assert.not.ok(inbox.isRunning);
        assert.equal(errors, []);
        assert.equal(next, [count, count]);
        for (const r of results) assert.is(r.left, 0);
        console.log(`    inbox: locally queued sends ${results.map((r) => r.queued).join(', ')} of ${count} each`);
      }),
    ),
  ),
);

test(
  'Inbox: handler error rejects start(); stop() on an idle inbox returns',
  timed(async () => {
    const inbox = new Inbox();
    const w = new ChannelWriter(inbox.channelSpec(1024));
    const loop = inbox.start((m) => {
      if ((m as { bad?: boolean }).bad) throw new Error('handler failed');
    });
    w.send({ ok: true });
    w.send({ bad: true });
    let err: unknown;
    await loop.catch((e) => (err = e));
    assert.match(String(err), /handler failed/);
    assert.not.ok(inbox.isRunning);
    const idle = new Inbox();
    const w2 = new ChannelWriter(idle.channelSpec(1024));
    const l2 = idle.start(() => {});
    await new Promise((r) => setTimeout(r, 5));
    await idle.stop();
    await l2;
    // stop() not awaited, then an immediate restart: exactly one loop delivers, in order
    const got: number[] = [];
    const l3 = idle.start((m) => got.push((m as { i: number }).i));
    const stopping = idle.stop();
    const l4 = idle.start((m) => got.push((m as { i: number }).i));
    for (let i = 0; i < 100; i++) w2.send({ i });
    await stopping;
    await l3;
    while (got.length < 100) await new Promise((r) => setTimeout(r, 1));
    await idle.stop();
    await l4;
    assert.equal(got, Array.from({ length: 100 }, (_, i) => i));
  }),
);

test.run();

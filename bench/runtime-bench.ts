// Runtime transport benchmark: SAB ring (+ slab for bulk objects) vs postMessage, main → worker.
// Run: npx tsc -p . && node dist/bench/runtime-bench.js
// Prints one JSON line per case: {"case","transport","msgs_per_s","mib_per_s","p50_us","p99_us"}.
// One-way cases: throughput = messages delivered / (last delivery - first send); p50/p99 are the
// one-way delivery latencies of every 64th message, so they include queueing behind earlier
// messages (the producer runs flat out). The round-trip case measures each ping-pong alone.
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { Channel, ChannelWriter } from '../src/runtime/channel.js';
import { Ring } from '../src/runtime/ring.js';
import { OBJECT_MAX_BYTES, OBJECT_SLOT_SIZE, SlabPool } from '../src/runtime/slab.js';
import type { BenchJob } from './fixtures/bench-worker.js';

export interface BenchResult {
  case: string;
  transport: string;
  msgs_per_s: number;
  mib_per_s: number;
  p50_us: number;
  p99_us: number;
}

const WORKER_URL = new URL('./fixtures/bench-worker.js', import.meta.url);
const MiB = 1024 * 1024;
const SAMPLE_MASK = 63; // stamp every 64th one-way message
const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

// Env knobs: BENCH_SCALE=0.2 for a smoke run; BENCH_SPIN_US (ring consumers busy-poll this
// long before sleeping, default 0 = the Inbox default); BENCH_CORK=0 to publish every ring frame
// individually instead of batching HEAD updates (cork).
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SPIN_US = Number(process.env.BENCH_SPIN_US ?? 0);
const CORK = process.env.BENCH_CORK !== '0';
const scaled = (n: number): number => Math.max(10, Math.round(n * SCALE));

interface Spawned {
  worker: Worker;
  /** The final report (a message carrying latUs or done). */
  result: Promise<{ latUs?: number[] }>;
  /** Resolves on the next {ack} message (postMessage flow control). */
  nextAck: () => Promise<number>;
  acked: () => number;
}

async function spawn(job: BenchJob): Promise<Spawned> {
  const worker = new Worker(WORKER_URL, { workerData: job });
  let acked = 0;
  let ackWaiter: ((n: number) => void) | null = null;
  let resolveResult!: (m: { latUs?: number[] }) => void;
  let rejectResult!: (e: unknown) => void;
  const result = new Promise<{ latUs?: number[] }>((res, rej) => {
    resolveResult = res;
    rejectResult = rej;
  });
  worker.on('message', (m: { ack?: number; latUs?: number[] }) => {
    if (m && typeof m === 'object' && 'ack' in m && typeof m.ack === 'number' && !(m instanceof Uint8Array)) {
      acked = m.ack;
      const w = ackWaiter;
      ackWaiter = null;
      w?.(acked);
    } else if (!(m instanceof Uint8Array)) {
      resolveResult(m);
    }
  });
  result.catch(() => {}); // a worker that is terminated without reporting must not crash the run
  worker.once('error', rejectResult);
  worker.once('exit', (code) => rejectResult(new Error(`bench worker ${job.mode} exited with ${code}`)));
  await new Promise<void>((res) => worker.once('online', () => res()));
  return {
    worker,
    result,
    nextAck: () => new Promise<number>((res) => (ackWaiter = res)),
    acked: () => acked,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(name: string, transport: string, count: number, bytesPerMsg: number, seconds: number, latUs: number[]): BenchResult {
  const sorted = [...latUs].sort((a, b) => a - b);
  const r2 = (x: number): number => Math.round(x * 10) / 10;
  return {
    case: name,
    transport,
    msgs_per_s: Math.round(count / seconds),
    mib_per_s: r2((count * bytesPerMsg) / MiB / seconds),
    p50_us: r2(percentile(sorted, 50)),
    p99_us: r2(percentile(sorted, 99)),
  };
}

const stamp = new Float64Array(1);
const stampBytes = new Uint8Array(stamp.buffer);

// ------------------------------------------------------------------------------ ring transport

/** One-way: the producer copies a prepared payload into each frame (plus a timestamp when sampled). */
async function ringOneWay(name: string, size: number, count: number, capacity: number): Promise<BenchResult> {
  const ringSab = Ring.allocate(capacity);
  const ring = new Ring(ringSab);
  const w = await spawn({ mode: 'ring-sink', ringSab, count, spinUs: SPIN_US });
  const src = new Uint8Array(size).fill(1);
  src.fill(0, 0, 8);
  let i = 0;
  const fill = (dst: Uint8Array, off: number): void => {
    dst.set(src, off);
    if ((i & SAMPLE_MASK) === 0) {
      stamp[0] = nowUs();
      dst.set(stampBytes, off);
    }
  };
  const t0 = performance.now();
  // Corked: HEAD is published every capacity/8 bytes (and whenever the ring is full), not per frame.
  if (CORK) ring.cork();
  for (i = 0; i < count; i++) {
    if (!ring.tryWriteWith(size, fill)) await ring.writeWith(size, fill);
  }
  ring.uncork();
  const { latUs } = await w.result;
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  return summarize(name, 'ring', count, size, secs, latUs ?? []);
}

/** A typical 9-field request envelope (cf. notes §5), as actors will send it. */
function envelope(i: number): { id: number; op: string; epoch: number; oid: bigint; offset: number; length: number; flags: number; copies: number; from: string; t: number } {
  return {
    id: i,
    op: 'READ_OBJ',
    epoch: 42,
    oid: 9223372745524379649n + BigInt(i & 1023),
    offset: (i & 63) * 4096,
    length: 4096,
    flags: 1,
    copies: 3,
    from: 'sheep-1',
    t: (i & SAMPLE_MASK) === 0 ? nowUs() : 0,
  };
}

/** msgpack size of an envelope; used for mib_per_s of both envelope transports. */
const ENVELOPE_BYTES = 90;

/** Envelopes through ChannelWriter (msgpackr, batched publish) into a worker Inbox (async loop). */
async function channelEnvelopes(name: string, count: number): Promise<BenchResult> {
  const spec = Channel.create(256 * 1024);
  const writer = new ChannelWriter(spec);
  const w = await spawn({ mode: 'inbox-sink', spec, count, spinUs: SPIN_US });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (!writer.send(envelope(i))) await writer.flushed(); // backpressure: wait for the overflow queue
  }
  writer.publish();
  const { latUs } = await w.result;
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  return summarize(name, 'ring', count, ENVELOPE_BYTES, secs, latUs ?? []);
}

/** 4 MiB objects: payload copied into a slab slot, 16-byte descriptor {slot,len,stamp} through the ring. */
async function ringSlabObjects(name: string, count: number): Promise<BenchResult> {
  const ringSab = Ring.allocate(64 * 1024);
  const ring = new Ring(ringSab);
  const slabSab = SlabPool.allocate({ slotSize: OBJECT_SLOT_SIZE, slots: 8 });
  const pool = new SlabPool(slabSab);
  const w = await spawn({ mode: 'slab-sink', ringSab, slabSab, count, spinUs: SPIN_US });
  const src = new Uint8Array(OBJECT_MAX_BYTES).fill(7);
  const desc = new DataView(new ArrayBuffer(16));
  const descBytes = new Uint8Array(desc.buffer);
  const fill = (dst: Uint8Array, off: number): void => dst.set(descBytes, off);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    let slot = pool.alloc();
    if (slot < 0) slot = await pool.allocAsync();
    pool.view(slot, src.length).set(src);
    desc.setUint32(0, slot, true);
    desc.setUint32(4, src.length, true);
    desc.setFloat64(8, nowUs(), true);
    if (!ring.tryWriteWith(16, fill)) await ring.writeWith(16, fill);
  }
  const { latUs } = await w.result;
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  if (pool.inUse() !== 0) throw new Error(`slab leak: ${pool.inUse()} slots still in use`);
  return summarize(name, 'ring', count, OBJECT_MAX_BYTES, secs, latUs ?? []);
}

/** Ping-pong: 64 B request through one ring, echoed back through another; main waits with waitAsync. */
async function ringRoundTrip(name: string, count: number, spinUs: number): Promise<BenchResult> {
  const inSab = Ring.allocate(64 * 1024);
  const outSab = Ring.allocate(64 * 1024);
  const req = new Ring(inSab);
  const rep = new Ring(outSab);
  const w = await spawn({ mode: 'ring-echo', inSab, outSab, count, spinUs });
  const ping = new Uint8Array(64).fill(3);
  const lat: number[] = new Array(count);
  let got = 0;
  const onReply = (): void => {
    got++;
  };
  const bell = rep.doorbell;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const ts = performance.now();
    if (!req.tryWrite(ping)) throw new Error('request ring full');
    for (;;) {
      const seen = bell.snapshot();
      if (rep.drainRaw(onReply) > 0) break;
      await bell.waitAsync(seen, undefined, spinUs);
    }
    lat[i] = (performance.now() - ts) * 1000;
  }
  const secs = (performance.now() - t0) / 1000;
  await w.result;
  await w.worker.terminate();
  if (got !== count) throw new Error(`round trip: ${got} replies for ${count} requests`);
  return summarize(name, 'ring', count, 64, secs, lat);
}

// ------------------------------------------------------------------------------ postMessage

/**
 * One-way postMessage with credit-based flow control (the worker acks every `ackEvery`), so the
 * producer cannot queue unbounded memory. mode 'copy': structured clone of a Uint8Array;
 * 'transfer': a new ArrayBuffer is filled and transferred per message.
 */
async function pmOneWay(name: string, size: number, count: number, mode: 'copy' | 'transfer', window: number, ackEvery: number): Promise<BenchResult> {
  const w = await spawn({ mode: 'pm-sink', count, ackEvery });
  const src = new Uint8Array(size).fill(1);
  src.fill(0, 0, 8);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    while (i - w.acked() >= window) await w.nextAck();
    const sampled = (i & SAMPLE_MASK) === 0 || size >= MiB;
    if (mode === 'copy') {
      if (sampled) {
        stamp[0] = nowUs();
        src.set(stampBytes, 0);
      }
      w.worker.postMessage(src);
      if (sampled) src.fill(0, 0, 8);
    } else {
      const ab = new ArrayBuffer(size);
      const u8 = new Uint8Array(ab);
      u8.set(src);
      if (sampled) {
        stamp[0] = nowUs();
        u8.set(stampBytes, 0);
      }
      w.worker.postMessage(ab, [ab]);
    }
  }
  const { latUs } = await w.result;
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  return summarize(name, 'postMessage', count, size, secs, latUs ?? []);
}

/** Envelopes as structured-cloned objects (what postMessage does with plain objects). */
async function pmEnvelopes(name: string, count: number, window: number, ackEvery: number): Promise<BenchResult> {
  const w = await spawn({ mode: 'pm-sink', count, ackEvery });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    while (i - w.acked() >= window) await w.nextAck();
    w.worker.postMessage(envelope(i));
  }
  const { latUs } = await w.result;
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  return summarize(name, 'postMessage', count, ENVELOPE_BYTES, secs, latUs ?? []);
}

async function pmRoundTrip(name: string, count: number): Promise<BenchResult> {
  const w = await spawn({ mode: 'pm-echo', count });
  const ping = new Uint8Array(64).fill(3);
  const lat: number[] = new Array(count);
  let wake: (() => void) | null = null;
  const onMsg = (m: unknown): void => {
    if (m instanceof Uint8Array) {
      const f = wake;
      wake = null;
      f?.();
    }
  };
  w.worker.on('message', onMsg);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const ts = performance.now();
    const reply = new Promise<void>((res) => (wake = res));
    w.worker.postMessage(ping);
    await reply;
    lat[i] = (performance.now() - ts) * 1000;
  }
  const secs = (performance.now() - t0) / 1000;
  await w.worker.terminate();
  return summarize(name, 'postMessage', count, 64, secs, lat);
}

// ------------------------------------------------------------------------------ case table

/**
 * Transport-level cases, ring and postMessage side by side (same run, same box state).
 * `onResult` is called as each case finishes (the CLI prints it immediately).
 */
export async function runRingCases(onResult: (r: BenchResult) => void = () => {}): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const add = (r: BenchResult): void => {
    out.push(r);
    onResult(r);
  };
  // BENCH_ONLY=<substring> runs only the cases whose name contains it.
  const only = process.env.BENCH_ONLY;
  const want = (name: string): boolean => !only || name.includes(only);
  if (want('64B one-way')) add(await ringOneWay('64B one-way', 64, scaled(10_000_000), 256 * 1024));
  if (want('64B one-way')) add(await pmOneWay('64B one-way', 64, scaled(400_000), 'copy', 20_000, 1000));
  if (want('64KiB one-way')) add(await ringOneWay('64KiB one-way', 64 * 1024, scaled(150_000), 4 * MiB));
  if (want('64KiB one-way')) add(await pmOneWay('64KiB one-way', 64 * 1024, scaled(40_000), 'copy', 256, 32));
  if (want('4MiB object via slab')) add(await ringSlabObjects('4MiB object via slab', scaled(3000)));
  if (want('4MiB object via postMessage transfer')) add(await pmOneWay('4MiB object via postMessage transfer', OBJECT_MAX_BYTES, scaled(800), 'transfer', 8, 1));
  if (want('4MiB object via postMessage copy')) add(await pmOneWay('4MiB object via postMessage copy', OBJECT_MAX_BYTES, scaled(600), 'copy', 8, 1));
  if (want('request/response round trip')) add(await ringRoundTrip('request/response round trip', scaled(50_000), SPIN_US));
  if (want('request/response round trip')) add(await pmRoundTrip('request/response round trip', scaled(50_000)));
  // Both sides busy-poll 10 µs before sleeping (Inbox option spinUs): in steady ping-pong
  // neither thread sleeps, so no wake-up latency (measured p50 ~1 µs vs 15-55 µs).
  if (want('request/response round trip (spin 10us)')) add(await ringRoundTrip('request/response round trip (spin 10us)', scaled(200_000), 10));
  // Extra: what actors will actually send — msgpackr Channel + Inbox vs structured clone.
  if (want('9-field envelope one-way (Channel/msgpackr vs structured clone)')) add(await channelEnvelopes('9-field envelope one-way (Channel/msgpackr vs structured clone)', scaled(1_000_000)));
  if (want('9-field envelope one-way (Channel/msgpackr vs structured clone)')) add(await pmEnvelopes('9-field envelope one-way (Channel/msgpackr vs structured clone)', scaled(300_000), 20_000, 1000));
  return out;
}

// ============================================================================================
// EXTENSION POINT — actor-level cases.
// Add runners (e.g. "actor mailbox 64B", "VDI read 4MiB through object actor") to this list;
// each returns BenchResult rows with the same fields and the main entry prints them.
// ============================================================================================
export type CaseRunner = (onResult: (r: BenchResult) => void) => Promise<BenchResult[]>;
export const caseRunners: CaseRunner[] = [runRingCases];
export function registerCases(runner: CaseRunner): void {
  caseRunners.push(runner);
}

/** Runs every registered runner, printing one JSON line per result. */
export async function main(): Promise<BenchResult[]> {
  const all: BenchResult[] = [];
  process.stdout.on('error', () => process.exit(0)); // e.g. piped into `head`
  for (const run of caseRunners) all.push(...(await run((r) => console.log(JSON.stringify(r)))));
  return all;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { runActorCases } = await import('./actor-cases.js');
  registerCases(runActorCases);
  await main();
}

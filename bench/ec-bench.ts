// Erasure-coding throughput on 4 MiB objects (MiB of object data per second).
// Run: npx tsc -p . && node dist/bench/ec-bench.js [iterations]
// Prints one JSON line per case: {"case","codec","mib_per_s","ms_per_op"}.
//   encode            — encodeObject: split into d data strips + compute p parity strips
//   decode-intact     — decodeObject with every data strip present (interleave only)
//   decode-lost-data  — decodeObject with min(p, d) data strips lost (matrix inverse + rebuild)
//   rebuild-1         — reconstruct one lost data strip file (what recovery does); MiB/s of that
//                       strip file (object_size/d bytes), not of the object
//   pool-*            — the same through EcPool (2 threads, 8 objects in flight); pool-encode
//                       allocates fresh SAB outputs per job, pool-encode-into reuses caller SAB views
// The kernel (WebAssembly SIMD or JS) is printed first; SHEEP_EC_KERNEL=js forces the JS one.
import { createCodec, ecKernel, EcPool } from '../src/ec/index.js';

const MiB = 1 << 20;
const SIZE = 4 * MiB;
const iterations = Number(process.argv[2] ?? 30);

function randomish(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  const w = new Uint32Array(out.buffer);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return out;
}

/** `ops` operations of `bytesPerOp` bytes each took `ms` in total. */
function report(name: string, codec: string, bytesPerOp: number, ops: number, ms: number): void {
  console.log(JSON.stringify({ case: name, codec, mib_per_s: Math.round((bytesPerOp * ops) / MiB / (ms / 1000)), ms_per_op: +(ms / ops).toFixed(2) }));
}

function time(fn: () => void, n: number): number {
  for (let i = 0; i < 3; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  console.log(JSON.stringify({ kernel: ecKernel(), iterations }));
  const pool = new EcPool({ threads: 2, inlineLimit: 0 });
  for (const [d, p] of [
    [4, 2],
    [2, 1],
    [8, 3],
    [16, 4],
  ] as const) {
    const name = `${d}:${p}`;
    const codec = createCodec(d, p);
    const data = randomish(SIZE, d * 17 + p);
    const out = Array.from({ length: d + p }, () => new Uint8Array(SIZE / d));
    report('encode', name, SIZE, iterations, time(() => codec.encodeObject(data, out), iterations));
    const back = new Uint8Array(SIZE);
    report('decode-intact', name, SIZE, iterations, time(() => codec.decodeObject(out, back), iterations));
    const lost = Math.min(p, d);
    const partial = out.map((s, i) => (i < lost ? null : s));
    report('decode-lost-data', name, SIZE, iterations, time(() => codec.decodeObject(partial, back), iterations));
    const one = [new Uint8Array(SIZE / d)];
    const partial1 = out.map((s, i) => (i === 0 ? null : s));
    report('rebuild-1', name, SIZE / d, iterations, time(() => codec.reconstruct(partial1, [0], one), iterations));

    // pool: shared inputs, 8 objects in flight at a time
    const shared = new Uint8Array(new SharedArrayBuffer(SIZE));
    shared.set(data);
    const strips = await pool.encode(d, p, shared);
    const inFlight = 8;
    const rounds = Math.max(1, Math.floor(iterations / inFlight));
    await Promise.all(Array.from({ length: inFlight }, () => pool.encode(d, p, shared)));
    let t0 = performance.now();
    for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: inFlight }, () => pool.encode(d, p, shared)));
    report('pool-encode', name, SIZE, rounds * inFlight, performance.now() - t0);
    const outSets = Array.from({ length: inFlight }, () => {
      const sab = new SharedArrayBuffer(SIZE + p * (SIZE / d));
      return Array.from({ length: d + p }, (_, i) => new Uint8Array(sab, i * (SIZE / d), SIZE / d));
    });
    t0 = performance.now();
    for (let r = 0; r < rounds; r++) await Promise.all(outSets.map((o) => pool.encode(d, p, shared, o)));
    report('pool-encode-into', name, SIZE, rounds * inFlight, performance.now() - t0);
    const sharedPartial = strips.map((s, i) => (i < lost ? null : s));
    t0 = performance.now();
    for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: inFlight }, () => pool.decode(d, p, sharedPartial)));
    report('pool-decode-lost-data', name, SIZE, rounds * inFlight, performance.now() - t0);
  }
  await pool.close();
}

await main();

// Actor-level cases for npm run bench:runtime: event throughput of xstate actors on the home thread with
// and without recording (the recording cost), tells into shard workers through the rings, and the ask
// round trip to an actor on a worker.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActorSystem } from '../src/runtime/system.js';
import type { BenchResult } from './runtime-bench.js';

const KINDS = [new URL('./fixtures/bench-kinds.js', import.meta.url).href];
const ACTORS = 64;

async function homeThroughput(events: number, record?: string): Promise<number> {
  const sys = await ActorSystem.start({ workers: 0, kindModules: KINDS, record });
  try {
    const addrs = Array.from({ length: ACTORS }, (_, i) => ({ kind: 'bench-counter', id: `c${i}` }));
    for (const a of addrs) sys.spawn(a, {});
    const t0 = performance.now();
    for (let i = 0; i < events; i++) sys.tell(addrs[i % ACTORS]!, { type: 'INC', by: 1 });
    await sys.home.host.idle();
    const secs = (performance.now() - t0) / 1000;
    const total = await Promise.all(addrs.map((a) => sys.ask<number>(a, { type: 'GET' })));
    if (total.reduce((x, y) => x + y, 0) !== events) throw new Error('lost events');
    return events / secs;
  } finally {
    await sys.shutdown();
  }
}

export async function runActorCases(onResult: (r: BenchResult) => void = () => {}): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const push = (r: BenchResult) => {
    out.push(r);
    onResult(r);
  };
  const dir = mkdtempSync(join(tmpdir(), 'actor-bench-'));
  try {
    const N = Number(process.env.BENCH_ACTOR_EVENTS ?? 200_000);
    // Alternate plain and recorded runs; the machine is noisy, so report the median of the pairs.
    const pairs: Array<[number, number]> = [];
    for (let round = 0; round < 5; round++) pairs.push([await homeThroughput(N), await homeThroughput(N, join(dir, `r${round}.log`))]);
    pairs.sort((a, b) => a[1] / a[0] - b[1] / b[0]);
    const [plain, recorded] = pairs[2]!;
    push({ case: 'actor events, home thread, 64 actors', transport: 'direct', msgs_per_s: Math.round(plain), mib_per_s: 0, p50_us: 0, p99_us: 0 });
    push({ case: 'actor events recorded to the event log, home thread, 64 actors', transport: 'direct', msgs_per_s: Math.round(recorded), mib_per_s: 0, p50_us: 0, p99_us: 0 });
    console.log(JSON.stringify({ case: 'recording cost (median of 5 alternating pairs)', overhead_pct: +((1 - recorded / plain) * 100).toFixed(1), target_pct: 15 }));

    // tells into 2 shard workers through the rings, and ask round trips
    const sys = await ActorSystem.start({ workers: 2, kindModules: KINDS });
    try {
      const addrs = Array.from({ length: ACTORS }, (_, i) => ({ kind: 'bench-counter', id: `w${i}` }));
      for (const a of addrs) sys.spawn(a, {});
      const M = N;
      let t0 = performance.now();
      for (let i = 0; i < M; i++) sys.tell(addrs[i % ACTORS]!, { type: 'INC', by: 1 });
      const totals = await Promise.all(addrs.map((a) => sys.ask<number>(a, { type: 'GET' }, 60_000)));
      let secs = (performance.now() - t0) / 1000;
      if (totals.reduce((x, y) => x + y, 0) !== M) throw new Error('lost cross-thread events');
      push({ case: 'actor tells home → 2 shard workers (ring, msgpackr envelopes)', transport: 'ring', msgs_per_s: Math.round(M / secs), mib_per_s: 0, p50_us: 0, p99_us: 0 });
      const lat: number[] = [];
      t0 = performance.now();
      for (let i = 0; i < 5000; i++) {
        const s = performance.now();
        await sys.ask(addrs[i % ACTORS]!, { type: 'GET' });
        lat.push((performance.now() - s) * 1000);
      }
      secs = (performance.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      push({ case: 'actor ask round trip home ↔ shard worker', transport: 'ring', msgs_per_s: Math.round(5000 / secs), mib_per_s: 0, p50_us: +lat[2500]!.toFixed(1), p99_us: +lat[4950]!.toFixed(1) });
    } finally {
      await sys.shutdown();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

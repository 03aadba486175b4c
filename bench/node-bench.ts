// npm run bench: the reference workload of ../shared/notes/reference-numbers.md against a 3-process
// cluster (local driver, copies 3, synchronous writes): sequential 4 MiB object writes (each followed by
// the 4-byte inode index update, as QEMU's driver did) and reads at queue depth 1, then 4 KiB random
// writes and reads at queue depth 16, every byte verified. Prints one JSON line per case.
import { readFileSync } from 'node:fs';
import { SheepClient } from '../src/client/sheep-client.js';
import { Op, Res, SD_INODE_DATA_VDI_ID_OFFSET } from '../src/proto/constants.js';
import { vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { createVdi, format, LocalCluster, nameBuf, randomPortBase } from '../test/cluster-harness.js';
import { ecPolicy } from '../src/ec/policy.js';
import { removeDir, tempDir } from '../test/helpers.js';

const OBJ = 4 * 1024 * 1024;
const DEFAULT_VDI_BYTES = Number(process.env.BENCH_VDI_MIB ?? 256) * 1024 * 1024;
const DEFAULT_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

/** NEW_VDI with copy_policy d:p (nr_copies d+p), as `dog vdi create -c d:p` sends it. */
async function createEcVdi(c: SheepClient, name: string, size: bigint, d: number, p: number): Promise<number> {
  const r = await c.request({ opcode: Op.NEW_VDI, vdi: { vdiSize: size, copies: d + p, copyPolicy: ecPolicy(d, p) } }, nameBuf(name));
  if (r.result !== Res.SUCCESS) throw new Error(`creating ${d}:${p} VDI failed: 0x${r.result.toString(16)}`);
  return r.raw.readUInt32LE(24);
}
const QD = 16;

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/** Initial contents of object i: its 1024 blocks, each generated on its own so one can be checked alone. */
function objectPattern(i: number): Buffer {
  const b = Buffer.allocUnsafe(OBJ);
  for (let k = 0; k < OBJ / 4096; k++) pattern(i * (OBJ / 4096) + k, 4096, 1).copy(b, k * 4096);
  return b;
}

function pattern(idx: number, len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = (idx * 2654435761 + seed) >>> 0;
  for (let i = 0; i < len; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

export interface NodeBenchOptions {
  /** Sheep processes (default 3). */
  readonly nodes?: number;
  /** Erasure-code the VDI d:p instead of 3 copies. */
  readonly ec?: { readonly d: number; readonly p: number };
  /** Prefix of every case name (the default run has none, so its names stay as they were). */
  readonly label?: string;
  readonly vdiBytes?: number;
  readonly seconds?: number;
}

export async function runNodeBench(emitLine: (o: object) => void = (o) => process.stdout.write(`${JSON.stringify(o)}\n`), opts: NodeBenchOptions = {}): Promise<void> {
  const nodes = opts.nodes ?? 3;
  const VDI_BYTES = opts.vdiBytes ?? DEFAULT_VDI_BYTES;
  const SECONDS = opts.seconds ?? DEFAULT_SECONDS;
  const prefix = opts.label ? `${opts.label} ` : '';
  const dir = tempDir('sheep-bench-');
  const cluster = new LocalCluster(dir, randomPortBase());
  const lines: object[] = [];
  const emit = (o: object) => {
    const named = 'case' in o ? { ...o, case: `${prefix}${(o as { case: string }).case}` } : o;
    lines.push(o);
    emitLine(named);
  };
  try {
    await cluster.start(nodes);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const vid = opts.ec ? await createEcVdi(c, 'bench', BigInt(VDI_BYTES), opts.ec.d, opts.ec.p) : (await createVdi(c, 'bench', BigInt(VDI_BYTES))).vid;
    const pids = cluster.nodes.map((n) => n.child.pid!);
    const cpu0 = pids.map(cpuSeconds);
    const objects = VDI_BYTES / OBJ;
    const entry = Buffer.alloc(4);
    entry.writeUInt32LE(vid, 0);

    // sequential 4 MiB writes, QD1, each followed by the index update
    let lat: number[] = [];
    let t0 = performance.now();
    let busy = 0; // time spent in requests only: generating and checking patterns is the client's cost
    for (let i = 0; i < objects; i++) {
      const data = objectPattern(i);
      const s = performance.now();
      const r = await c.request({ opcode: Op.CREATE_AND_WRITE_OBJ, obj: { oid: vidToDataOid(vid, i) } }, data);
      if (r.result !== Res.SUCCESS) throw new Error(`write failed 0x${r.result.toString(16)}`);
      const u = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToVdiOid(vid), offset: SD_INODE_DATA_VDI_ID_OFFSET + 4 * i } }, entry);
      if (u.result !== Res.SUCCESS) throw new Error('index update failed');
      lat.push(performance.now() - s);
      busy += performance.now() - s;
    }
    let secs = busy / 1000;
    lat.sort((a, b) => a - b);
    emit({ case: 'seq write 4MiB QD1', mb_per_s: +((objects * OBJ) / 1e6 / secs).toFixed(1), p50_ms: +percentile(lat, 50).toFixed(2), p99_ms: +percentile(lat, 99).toFixed(2) });

    // sequential reads, verified
    lat = [];
    busy = 0;
    for (let i = 0; i < objects; i++) {
      const s = performance.now();
      const r = await c.request({ opcode: Op.READ_OBJ, dataLength: OBJ, obj: { oid: vidToDataOid(vid, i) } });
      lat.push(performance.now() - s);
      busy += performance.now() - s;
      if (r.result !== Res.SUCCESS || !r.data.equals(objectPattern(i))) throw new Error(`read of object ${i} returned wrong data`);
    }
    secs = busy / 1000;
    lat.sort((a, b) => a - b);
    emit({ case: 'seq read 4MiB QD1', mb_per_s: +((objects * OBJ) / 1e6 / secs).toFixed(1), p50_ms: +percentile(lat, 50).toFixed(2), p99_ms: +percentile(lat, 99).toFixed(2) });

    // random 4 KiB at QD16; a shadow of what each block should contain, verified on read
    const blocks = VDI_BYTES / 4096;
    const written = new Map<number, number>();
    let seed = 12345;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    for (const mode of ['write', 'read'] as const) {
      lat = [];
      let ops = 0;
      const end = performance.now() + SECONDS * 1000;
      t0 = performance.now();
      let gen = 100;
      const worker = async () => {
        while (performance.now() < end) {
          const blk = Math.floor(rand() * blocks);
          const idx = Math.floor((blk * 4096) / OBJ);
          const off = (blk * 4096) % OBJ;
          const s = performance.now();
          if (mode === 'write') {
            const g = gen++;
            const r = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToDataOid(vid, idx), offset: off } }, pattern(blk, 4096, g));
            if (r.result !== Res.SUCCESS) throw new Error('random write failed');
            written.set(blk, g);
          } else {
            const r = await c.request({ opcode: Op.READ_OBJ, dataLength: 4096, obj: { oid: vidToDataOid(vid, idx), offset: off } });
            const g = written.get(blk);
            const expect = pattern(blk, 4096, g ?? 1);
            if (r.result !== Res.SUCCESS || !r.data.equals(expect)) throw new Error(`random read of block ${blk} returned wrong data`);
          }
          lat.push(performance.now() - s);
          ops++;
        }
      };
      // One block is never written by two workers at once in a way that matters: the last write wins
      // and `written` records completion order, which is the order the store applied them per block
      // only if they do not overlap — so keep writers on disjoint block sets.
      if (mode === 'write') {
        const all = Array.from({ length: QD }, (_, w) => async () => {
          while (performance.now() < end) {
            const blk = Math.floor(rand() * (blocks / QD)) * QD + w;
            const idx = Math.floor((blk * 4096) / OBJ);
            const off = (blk * 4096) % OBJ;
            const g = gen++;
            const s = performance.now();
            const r = await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToDataOid(vid, idx), offset: off } }, pattern(blk, 4096, g));
            if (r.result !== Res.SUCCESS) throw new Error('random write failed');
            written.set(blk, g);
            lat.push(performance.now() - s);
            ops++;
          }
        });
        await Promise.all(all.map((f) => f()));
      } else {
        await Promise.all(Array.from({ length: QD }, worker));
      }
      secs = (performance.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      emit({ case: `random ${mode} 4KiB QD${QD}`, iops: Math.round(ops / secs), p50_ms: +percentile(lat, 50).toFixed(2), p99_ms: +percentile(lat, 99).toFixed(2) });
    }
    const cpu = pids.map((p, i) => cpuSeconds(p) - cpu0[i]!);
    emit({ case: `sheep process CPU seconds (${nodes} nodes, whole run)`, cpu_s: +cpu.reduce((a, b) => a + b, 0).toFixed(2), per_node: cpu.map((x) => +x.toFixed(2)) });
    if (!opts.label) emit({
      case: 'ratio to original Sheepdog 1.0 (midpoints of reference-numbers.md)',
      seq_write: +((lines[0] as { mb_per_s: number }).mb_per_s / 155).toFixed(2),
      seq_read: +((lines[1] as { mb_per_s: number }).mb_per_s / 540).toFixed(2),
      rand_write: +((lines[2] as { iops: number }).iops / 2650).toFixed(2),
      rand_read: +((lines[3] as { iops: number }).iops / 18500).toFixed(2),
    });
    c.close();
  } finally {
    await cluster.stop();
    removeDir(dir);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runNodeBench();

// Part of npm run bench: VDIs through NBD next to an nbdkit file export, same machine, same run.
// 3 sheep processes (local driver, copies 3, synchronous writes), NBD served by node 0.
// Cases: qemu-img convert of BENCH_NBD_MIB (default 1024) MiB into and out of the export (and nbdcopy out
// to null:), each side's best of two runs, and fio 4 KiB
// random read / write at queue depth 16 (BENCH_SECONDS each).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForPort } from '../test/cluster-harness.js';
import { removeDir, tempDir } from '../test/helpers.js';

const MIB = Number(process.env.BENCH_NBD_MIB ?? 1024);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

function fio(uri: string, rw: 'randread' | 'randwrite'): { iops: number; p50_us: number; p99_us: number } {
  const r = spawnSync(
    'fio',
    ['--name=b', '--ioengine=nbd', `--uri=${uri}`, `--rw=${rw}`, '--bs=4k', '--iodepth=16', `--runtime=${SECONDS}`, '--time_based', '--ramp_time=1', `--size=${MIB}M`, '--output-format=json'],
    { encoding: 'utf8', timeout: (SECONDS + 60) * 1000 },
  );
  if (r.status !== 0) throw new Error(`fio failed: ${r.stderr}`);
  const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
  const side = rw === 'randread' ? job.read : job.write;
  const pct = side.clat_ns.percentile ?? {};
  return { iops: Math.round(side.iops), p50_us: Math.round((pct['50.000000'] ?? 0) / 1000), p99_us: Math.round((pct['99.000000'] ?? 0) / 1000) };
}

export async function runNbdBench(emit: (o: object) => void): Promise<void> {
  const missing = ['qemu-img', 'nbdcopy', 'nbdkit', 'fio'].filter((t) => !have(t));
  if (missing.length) {
    emit({ case: 'nbd bench skipped', missing, install: 'apt-get install -y qemu-utils libnbd-bin nbdkit fio' });
    return;
  }
  const dir = tempDir('sheep-nbench-');
  const base = randomPortBase();
  const nbdPort = base + 60;
  const kitPort = base + 61;
  const cluster = new LocalCluster(dir, base);
  let kit: ChildProcess | undefined;
  try {
    // source image: random data, with some zero runs as real images have
    const src = join(dir, 'src.raw');
    const fd = openSync(src, 'w');
    const chunk = Buffer.alloc(4 << 20);
    for (let i = 0; i < MIB / 4; i++) {
      if (i % 8 === 7) chunk.fill(0);
      else randomFillSync(chunk);
      writeSync(fd, chunk);
    }
    closeSync(fd);

    await cluster.startNode(0, ['--nbd', `127.0.0.1:${nbdPort}`]);
    await cluster.startNode(1);
    await cluster.startNode(2);
    const c = await SheepClient.connect('127.0.0.1', base);
    await format(c, 3);
    await createVdi(c, 'bench', BigInt(MIB) << 20n);
    c.close();
    await waitForPort(nbdPort);
    const ours = `nbd://127.0.0.1:${nbdPort}/bench`;

    // nbdkit serving a fully written file of the same size, the reference
    const disk = join(dir, 'disk.raw');
    spawnSync('cp', [src, disk]);
    kit = spawn('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(kitPort), 'file', disk], { stdio: 'ignore' });
    await waitForPort(kitPort);
    const theirs = `nbd://127.0.0.1:${kitPort}`;

    const rows: Record<string, { ours: number; nbdkit: number; oursFirst: number }> = {};
    const mb = (MIB * 1048576) / 1e6;
    const outFile = join(dir, 'out.raw');
    const dropOut = () => rmSync(outFile, { force: true });
    // Each case runs ours, nbdkit, nbdkit, ours and keeps each side's best: neither side always goes
    // first; each run starts after a sync. The untimed warm-up pays this VM's first touch of page-cache pages for the output file
    // (seconds per GiB), which would otherwise fall on whichever side ran first.
    timed('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', theirs, outFile]);
    dropOut();
    const pair = (name: string, args: (uri: string) => [string, string[]], after: () => void = () => undefined) => {
      const t = { ours: Infinity, nbdkit: Infinity };
      let first = 0;
      for (const side of ['ours', 'nbdkit', 'nbdkit', 'ours'] as const) {
        const [cmd, a] = args(side === 'ours' ? ours : theirs);
        // The previous run's dirty pages (an output file, or its deletion) are written back first: that
        // writeback would compete with whichever side reads the disk next (ours; nbdkit reads its cache).
        spawnSync('sync');
        const took = timed(cmd, a);
        first ||= took;
        t[side] = Math.min(t[side], took);
        after();
      }
      rows[name] = { ours: mb / t.ours, nbdkit: mb / t.nbdkit, oursFirst: mb / first };
    };
    pair('qemu-img convert into the export, MB/s', (uri) => ['qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, uri]]);
    pair('qemu-img convert out of the export to a file, MB/s', (uri) => ['qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, outFile]], dropOut);
    pair('nbdcopy out of the export to null:, MB/s', (uri) => ['nbdcopy', [uri, 'null:']]);
    for (const [name, o] of Object.entries(rows)) emit({ case: name, sheep_actors: +o.ours.toFixed(1), nbdkit_file: +o.nbdkit.toFixed(1), ratio: +(o.ours / o.nbdkit).toFixed(2), sheep_actors_first_run: +o.oursFirst.toFixed(1) });
    for (const rw of ['randread', 'randwrite'] as const) {
      const a = fio(ours, rw);
      const b = fio(theirs, rw);
      emit({ case: `fio ${rw} 4KiB QD16`, sheep_actors_iops: a.iops, nbdkit_file_iops: b.iops, ratio: +(a.iops / b.iops).toFixed(2), sheep_actors_p50_us: a.p50_us, sheep_actors_p99_us: a.p99_us });
    }
  } finally {
    kit?.kill('SIGTERM');
    await cluster.stop();
    removeDir(dir);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runNbdBench((o) => process.stdout.write(`${JSON.stringify(o)}\n`));

// npm run bench: the node's wire-protocol workload, recovery, and NBD, each printing JSON lines.
import { runNodeBench } from './node-bench.js';
import { runRecoveryBench } from './recovery-bench.js';
import { runNbdBench } from './nbd-bench.js';

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const only = process.env.BENCH_ONLY?.split(',');
if (!only || only.includes('node')) await runNodeBench(emit);
// Erasure coding beside replication on the same 6-node cluster size (smaller VDI, shorter random phases).
if (!only || only.includes('ec')) {
  const small = { nodes: 6, vdiBytes: 128 << 20, seconds: 5 };
  await runNodeBench(emit, { ...small, label: 'copies 3, 6 nodes:' });
  await runNodeBench(emit, { ...small, label: 'ec 4:2, 6 nodes:', ec: { d: 4, p: 2 } });
}
if (!only || only.includes('recovery')) await runRecoveryBench(emit);
if (!only || only.includes('nbd')) await runNbdBench(emit);

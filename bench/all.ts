// npm run bench: the node's wire-protocol workload, recovery, and NBD, each printing JSON lines.
import { runNodeBench } from './node-bench.js';
import { runRecoveryBench } from './recovery-bench.js';
import { runNbdBench } from './nbd-bench.js';

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const only = process.env.BENCH_ONLY?.split(',');
if (!only || only.includes('node')) await runNodeBench(emit);
if (!only || only.includes('recovery')) await runRecoveryBench(emit);
if (!only || only.includes('nbd')) await runNbdBench(emit);

// Replays a recorded simulation: re-runs its parameters and checks, step by step, that the same things
// happen at the same simulated times, and that it ends with the same verdict and state digest.
import { readSimLog } from './sim-log.js';
import { Divergence, runSimulation, type SimResult } from './run.js';

export interface SimReplayResult {
  readonly steps: number;
  readonly line: string;
  readonly result: SimResult;
}

/** Throws LogCorruptedError for a damaged log, Divergence when the run differs from the record. */
export async function replaySimulation(path: string, logPath?: string): Promise<SimReplayResult> {
  const log = readSimLog(path);
  const result = await runSimulation(log.params, {
    logPath,
    onStep: (n, t, what) => {
      const want = log.steps[n - 1];
      if (!want) throw new Divergence(`step ${n} (t=${t} ms, "${what}") is not in the record, which ends after ${log.steps.length} steps`);
      if (want.t !== t || want.what !== what) {
        throw new Divergence(`step ${n} differs: recorded "${want.what}" at t=${want.t} ms, replayed "${what}" at t=${t} ms`);
      }
    },
  });
  if (result.steps !== log.steps.length) throw new Divergence(`the replay ended after ${result.steps} steps, the record has ${log.steps.length}`);
  if (result.verdict !== log.end.verdict) throw new Divergence(`verdict ${result.verdict}, recorded ${log.end.verdict}`);
  if (result.digest !== log.end.digest) throw new Divergence(`final state digest ${result.digest}, recorded ${log.end.digest}`);
  return { steps: result.steps, line: log.end.line, result };
}

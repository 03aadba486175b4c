// `sheep-actors sim`: deterministic simulation runs (one seed, or a range of seeds), and the replay of a
// recorded one.
import { LogCorruptedError } from '../runtime/event-log.js';
import { intArg, UsageError } from './args.js';
import { FAULT_KINDS, parseFaults } from '../sim/faults.js';
import { replaySimulation } from '../sim/replay.js';
import { Divergence, runSimulation, type SimParams, type SimResult } from '../sim/run.js';


export interface SimArgs {
  params: SimParams;
  /** Run seeds first..last (each with the other parameters). */
  seeds?: { first: number; last: number };
  record?: string;
  log?: string;
  logLevel: number;
  quiet: boolean;
}

export function parseSimArgs(argv: string[]): SimArgs {
  let seed = 1;
  let nodes = 5;
  let copies = 3;
  let ops = 300;
  let clients = 4;
  let faults = [...FAULT_KINDS];
  let bug: string | undefined;
  const out: Omit<SimArgs, 'params'> = { logLevel: 6, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => argv[++i];
    switch (arg) {
      case '--seed': seed = intArg('--seed', next(), 0, Number.MAX_SAFE_INTEGER); break;
      case '--seeds': {
        const v = next();
        const m = v === undefined ? null : /^(\d+)(?:-|\.\.)(\d+)$/.exec(v);
        if (!m || Number(m[1]) > Number(m[2])) throw new UsageError(`invalid --seeds value '${v ?? ''}': expected FIRST-LAST`);
        out.seeds = { first: Number(m[1]), last: Number(m[2]) };
        break;
      }
      case '--nodes': nodes = intArg('--nodes', next(), 1, 64); break;
      case '--copies': copies = intArg('--copies', next(), 1, 31); break;
      case '--ops': ops = intArg('--ops', next(), 0, 10_000_000); break;
      case '--clients': clients = intArg('--clients', next(), 1, 64); break;
      case '--faults': {
        const v = next();
        if (v === undefined) throw new UsageError('option --faults requires a value');
        try {
          faults = parseFaults(v);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        break;
      }
      case '--record': out.record = next(); if (!out.record) throw new UsageError('option --record requires a file'); break;
      case '--log': out.log = next(); if (!out.log) throw new UsageError('option --log requires a file'); break;
      case '--log-level': out.logLevel = intArg('--log-level', next(), 0, 7); break;
      case '--bug': bug = next(); if (bug !== 'lose-write') throw new UsageError(`unknown --bug '${bug ?? ''}' (known: lose-write)`); break;
      case '-q': case '--quiet': out.quiet = true; break;
      default: throw new UsageError(`unknown sim option '${arg}'`);
    }
  }
  if (copies > nodes) throw new UsageError(`--copies ${copies} is more than --nodes ${nodes}`);
  if (out.seeds && out.record) throw new UsageError('--record takes one --seed, not a --seeds range');
  return { ...out, params: { seed, nodes, copies, ops, faults, clients, bug } };
}

function speedLine(r: SimResult): string {
  const sim = r.simMs / 1000;
  const wall = r.wallMs / 1000;
  const s = r.stats;
  return `sim: ${sim.toFixed(3)} simulated s in ${wall.toFixed(2)} wall s (${(sim / Math.max(wall, 1e-9)).toFixed(1)} simulated s per wall s); ops ${s.opsAcked} acknowledged, ${s.opsUnavailable} unavailable, ${s.readsChecked} reads checked; ${s.faults} faults; ${s.messages} messages (${s.dropped} lost)`;
}

export async function runSim(argv: string[]): Promise<number> {
  const a = parseSimArgs(argv);
  const seeds = a.seeds ? Array.from({ length: a.seeds.last - a.seeds.first + 1 }, (_, i) => a.seeds!.first + i) : [a.params.seed];
  let failed = 0;
  let simMs = 0;
  let wallMs = 0;
  for (const seed of seeds) {
    const r = await runSimulation({ ...a.params, seed }, { record: a.record, logPath: a.log, logLevel: a.logLevel });
    simMs += r.simMs;
    wallMs += r.wallMs;
    if (!a.quiet) process.stderr.write(`${speedLine(r)}\n`);
    process.stdout.write(`${r.line}\n`);
    if (r.verdict !== 'PASS') failed++;
  }
  if (seeds.length > 1) {
    process.stdout.write(`${seeds.length - failed} passed, ${failed} failed (${(simMs / 1000).toFixed(1)} simulated s in ${(wallMs / 1000).toFixed(1)} wall s)\n`);
  }
  return failed > 0 ? 1 : 0;
}

/** `sheep-actors replay FILE` for a simulation log: 0 reproduced, 1 diverged, 2 damaged log. */
export async function runSimReplay(file: string, logPath?: string): Promise<number> {
  try {
    const r = await replaySimulation(file, logPath);
    process.stdout.write(`${r.line}\n`);
    process.stdout.write(`replay ok: ${r.steps} steps identical, verdict ${r.result.verdict}, digest ${r.result.digest}\n`);
    return 0;
  } catch (e) {
    if (e instanceof LogCorruptedError) {
      process.stderr.write(`${e.message.replace(/^event log/, 'simulation log')}\n`);
      return 2;
    }
    if (e instanceof Divergence) {
      process.stderr.write(`replay diverged: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

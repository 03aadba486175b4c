// One simulation run: build the world from a seed, format, run the clients while faults are injected,
// stop the faults, wait for recovery, then check the end-state invariants, delete everything and check
// nothing leaked. The run loop is the only thing that moves time: it lets the (single-threaded) world
// settle, then fires the next timer. Every step is logged; replay re-runs the parameters and compares.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ClusterStatus } from '../proto/constants.js';
import { isDataObj } from '../proto/oid.js';
import { encodeSdNodes, type SdNode } from '../proto/structs.js';
import { FaultInjector, type FaultKind } from './faults.js';
import { Rng } from './rng.js';
import { Scheduler } from './scheduler.js';
import { writeSimLog, type SimRecord } from './sim-log.js';
import { InvariantViolation, Workload } from './workload.js';
import { World, type SimNode } from './world.js';

export interface SimParams {
  readonly seed: number;
  readonly nodes: number;
  readonly copies: number;
  readonly ops: number;
  readonly faults: FaultKind[];
  readonly clients: number;
  /** Checker self-test: a broken disk that acknowledges writes it drops ('lose-write'). */
  readonly bug?: string;
}

export interface SimResult {
  readonly verdict: 'PASS' | 'FAIL';
  readonly violation?: { invariant: string; detail: string };
  readonly simMs: number;
  readonly wallMs: number;
  readonly steps: number;
  readonly digest: string;
  /** The same seed always prints the same line. */
  readonly line: string;
  readonly logPath: string;
  readonly stats: Record<string, number>;
}

export interface RunOptions {
  /** Write the recorded simulation here (for sheep-actors replay). */
  readonly record?: string;
  /** Text log (sheep logs and steps); default /tmp/sheep-sim-<seed>.log. */
  readonly logPath?: string;
  /** Replay: called for each step as it happens; a thrown error stops the run as a divergence. */
  readonly onStep?: (n: number, t: number, what: string) => void;
  /** Sheep log level in the text log (6 info, 7 debug). */
  readonly logLevel?: number;
  /** Simulated time after which the run is a liveness failure (default one hour). */
  readonly maxSimMs?: number;
  /** Debugging: look at the world after the run, before it is torn down. */
  readonly inspect?: (world: World) => void;
}

const DISK_CAPACITY = 1 << 30;
/** A run that is not done after this much simulated time is stuck (a liveness failure). */
const MAX_SIM_MS = 3_600_000;
const RECOVERY_TIMEOUT_MS = 300_000;

const SIM_TRACE = process.env.SHEEP_SIM_TRACE === '1';

export class Divergence extends Error {}

export async function runSimulation(params: SimParams, opts: RunOptions = {}): Promise<SimResult> {
  validate(params);
  const wallStart = performance.now();
  const sched = new Scheduler();
  const rng = new Rng(params.seed);
  const records: SimRecord[] = [{ k: 'params', params }];
  const logPath = opts.logPath ?? `/tmp/sheep-sim-${params.seed}.log`;
  let steps = 0;
  let violation: InvariantViolation | null = null;
  let divergence: Error | null = null;
  const fail = (v: InvariantViolation) => void (violation ??= v);

  // eslint-disable-next-line prefer-const
  let world: World;
  const step = (what: string) => {
    steps++;
    const t = Math.round(sched.now() * 1000) / 1000;
    records.push({ k: 'step', n: steps, t, what });
    world?.log(`[t=${(t / 1000).toFixed(3)}s] step ${steps}: ${what}`);
    try {
      opts.onStep?.(steps, t, what);
    } catch (err) {
      divergence ??= err as Error;
    }
    if (world) {
      const v = epochDisagreement(world);
      if (v) fail(v);
    }
  };
  world = new World(sched, rng.fork(), { nodes: params.nodes, diskCapacity: DISK_CAPACITY, latencyMs: [0.05, 1.5], dropRate: 0.002, logLevel: opts.logLevel ?? 6 }, step);
  if (params.bug === 'lose-write') world.nodes[0]!.disk.loseWrites = true;
  const workload = new Workload(world, sched, rng.fork(), step);
  const faults = new FaultInjector(world, sched, rng.fork(), params.faults, Math.max(1, params.copies - 1), step, DISK_CAPACITY);

  let finished = false;
  const scenario = async () => {
    for (const n of world.nodes) world.requestStart(n);
    await workload.sleep(200);
    await workload.formatCluster(params.copies);
    await waitFor(workload, () => world.up().every((n) => n.current!.sheep.status === ClusterStatus.OK), 60_000, 'the cluster did not start');
    faults.start();
    const budget = { left: params.ops };
    await Promise.all(Array.from({ length: params.clients }, (_, i) => workload.client(i, budget)));
    if (workload.violation) return fail(workload.violation);
    faults.stop();
    await waitForRecovery(world, workload);
    step(`recovered: epoch ${world.up()[0]!.current!.sheep.epoch}, ${world.up().length} nodes`);
    await workload.verifyAll();
    const placementViolation = await checkReplicas(world);
    if (placementViolation) return fail(placementViolation);
    const epochs = epochHistoryMismatch(world);
    if (epochs) return fail(epochs);
    await workload.deleteAll(leftoverVids(world, workload));
    // Whatever is still live (a delete that found its name moved on, a create whose answer was lost).
    for (let round = 0; round < 3; round++) {
      const live = liveVids(world);
      if (live.length === 0) break;
      await workload.deleteAll(live);
    }
    await waitForRecovery(world, workload);
    const leak = leakedObjects(world);
    if (leak) return fail(leak);
    step('all invariants hold');
  };
  void scenario()
    .catch((err) => fail(err instanceof InvariantViolation ? err : new InvariantViolation('operation failed', (err as Error).stack ?? String(err))))
    .finally(() => (finished = true));

  while (!finished && !violation && !divergence) {
    await new Promise<void>((r) => setImmediate(r));
    if (finished || violation || divergence) break;
    if (workload.violation) {
      fail(workload.violation);
      break;
    }
    if (world.hasPendingStarts()) {
      await world.performStarts();
      continue;
    }
    if (!sched.fireNext()) {
      fail(new InvariantViolation('liveness', 'nothing left to run but the scenario has not finished (deadlock)'));
      break;
    }
    if (SIM_TRACE && sched.fired % 1000 === 0) process.stderr.write(`[sim] t=${(sched.now() / 1000).toFixed(3)}s timers=${sched.fired} pending=${sched.pending} steps=${steps}\n`);
    if (sched.now() > (opts.maxSimMs ?? MAX_SIM_MS)) fail(new InvariantViolation('liveness', `not finished after ${(opts.maxSimMs ?? MAX_SIM_MS) / 1000} simulated s`));
  }
  if (divergence) throw divergence;
  const simMs = sched.now();
  const digest = stateDigest(world, records);
  const v = violation as InvariantViolation | null;
  const verdict = v ? 'FAIL' : 'PASS';
  const faultsText = params.faults.length ? params.faults.join(',') : 'none';
  const line = v
    ? `sim seed=${params.seed} nodes=${params.nodes} copies=${params.copies} ops=${params.ops} faults=${faultsText}: FAIL at ${(simMs / 1000).toFixed(3)} simulated s: ${v.invariant} (${v.message.slice(v.invariant.length + 2)}) digest=${digest} log=${logPath}`
    : `sim seed=${params.seed} nodes=${params.nodes} copies=${params.copies} ops=${params.ops} faults=${faultsText}: PASS, ${steps} steps in ${(simMs / 1000).toFixed(3)} simulated s, digest=${digest}`;
  records.push({ k: 'end', verdict, digest, line });
  world.log(line);
  writeFileSync(logPath, world.logLines.join('\n') + '\n');
  if (opts.record) writeSimLog(opts.record, records);
  opts.inspect?.(world);
  await world.shutdown();
  return {
    verdict,
    violation: v ? { invariant: v.invariant, detail: v.message } : undefined,
    simMs,
    wallMs: performance.now() - wallStart,
    steps,
    digest,
    line,
    logPath,
    stats: {
      opsStarted: workload.started,
      opsAcked: workload.acked,
      opsUnavailable: workload.unavailable,
      readsChecked: workload.readsChecked,
      faults: faults.injected,
      messages: world.net.messages,
      dropped: world.net.dropped,
      timers: sched.fired,
    },
  };
}

function validate(p: SimParams): void {
  if (!Number.isSafeInteger(p.seed) || p.seed < 0) throw new Error(`--seed must be a non-negative integer, got ${p.seed}`);
  if (!Number.isInteger(p.nodes) || p.nodes < 1 || p.nodes > 64) throw new Error(`--nodes must be 1..64, got ${p.nodes}`);
  if (!Number.isInteger(p.copies) || p.copies < 1 || p.copies > p.nodes) throw new Error(`--copies must be 1..nodes (${p.nodes}), got ${p.copies}`);
  if (!Number.isInteger(p.ops) || p.ops < 0) throw new Error(`--ops must be a non-negative integer, got ${p.ops}`);
  if (!Number.isInteger(p.clients) || p.clients < 1 || p.clients > 64) throw new Error(`--clients must be 1..64, got ${p.clients}`);
  if (p.bug !== undefined && p.bug !== 'lose-write') throw new Error(`unknown --bug '${p.bug}' (known: lose-write)`);
}

async function waitFor(w: Workload, cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  for (let waited = 0; !cond(); waited += 100) {
    if (waited > timeoutMs) throw new InvariantViolation('liveness', `${what} within ${timeoutMs / 1000} simulated s`);
    await w.sleep(100);
  }
}

/** Every node up, running, at one epoch, recovery finished, and that stays so for a while. */
async function waitForRecovery(world: World, w: Workload): Promise<void> {
  const settled = () => {
    const up = world.up();
    if (up.length !== world.nodes.length) return false;
    const e = up[0]!.current!.sheep.epoch;
    return up.every((n) => {
      const s = n.current!.sheep;
      return s.status === ClusterStatus.OK && s.epoch === e && !s.recovery.active && s.members.length === world.nodes.length;
    });
  };
  for (let stable = 0; stable < 20; ) {
    await waitFor(w, settled, RECOVERY_TIMEOUT_MS, 'recovery did not finish');
    stable = settled() ? stable + 1 : 0;
    await w.sleep(100);
  }
}

/**
 * Epoch histories never disagree: any epoch two running nodes both know has the same member list, and
 * running nodes at the same epoch place objects on the same members.
 */
function epochDisagreement(world: World): InvariantViolation | null {
  const seen = new Map<number, { key: string; by: string }>();
  const current = new Map<number, { key: string; by: string }>();
  for (const n of world.up()) {
    const sheep = n.current!.sheep;
    if (sheep.status === ClusterStatus.OK && sheep.ring && !sheep.joining) {
      const key = nodesKey(sheep.members);
      const other = current.get(sheep.epoch);
      if (!other) current.set(sheep.epoch, { key, by: n.id });
      else if (other.key !== key) return new InvariantViolation('all nodes agree on the epoch history', `at epoch ${sheep.epoch} ${other.by} and ${n.id} have different members`);
    }
    for (const [e, v] of n.current!.sheep.epochs) {
      const key = nodesKey(v.nodes);
      const other = seen.get(e);
      if (!other) seen.set(e, { key, by: n.id });
      else if (other.key !== key) return new InvariantViolation('all nodes agree on the epoch history', `epoch ${e} differs between ${other.by} and ${n.id}`);
    }
  }
  return null;
}

/** At the end every node has the whole, identical history. */
function epochHistoryMismatch(world: World): InvariantViolation | null {
  const histories = world.nodes.map((n) => ({ id: n.id, h: [...n.current!.sheep.epochs].sort((a, b) => a[0] - b[0]).map(([e, v]) => `${e}:${nodesKey(v.nodes)}`).join(';') }));
  for (const x of histories) if (x.h !== histories[0]!.h) return new InvariantViolation('all nodes agree on the epoch history', `${x.id} and ${histories[0]!.id} have different epoch histories`);
  return null;
}

function nodesKey(nodes: readonly SdNode[]): string {
  const b = Buffer.alloc(nodes.length * 80);
  encodeSdNodes(nodes, b, 0);
  return createHash('sha1').update(b).digest('hex');
}

/** Object bytes with trailing zeros dropped: a sparse file and a fully written one compare equal. */
function normalized(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

/** For the report: where two copies first differ, and how far the difference reaches. */
function firstDifference(a: Buffer, b: Buffer): string {
  const n = Math.max(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  let j = n - 1;
  while (j > i && a[j] === b[j]) j--;
  return `bytes ${i}..${j}`;
}

/** After recovery every object is on exactly its placement's nodes, byte-identical. */
async function checkReplicas(world: World): Promise<InvariantViolation | null> {
  const sheep = world.nodes[0]!.current!.sheep;
  const holders = new Map<bigint, SimNode[]>();
  for (const n of world.nodes) for (const oid of n.disk.objects.keys()) holders.set(oid, [...(holders.get(oid) ?? []), n]);
  const byId = new Map(world.nodes.map((n) => [n.id, n]));
  for (const [oid, have] of [...holders].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const want = sheep.placement(oid, sheep.copiesOf(oid)).map((n) => `${n.nid.addr}:${n.nid.port}`);
    const got = have.map((n) => n.id);
    const oidHex = oid.toString(16).padStart(16, '0');
    if (want.length !== got.length || want.some((id) => !got.includes(id))) {
      return new InvariantViolation('every object has exactly its placement\'s replicas', `${oidHex} is on [${got.join(' ')}], placement says [${want.join(' ')}]`);
    }
    const first = normalized(byId.get(want[0]!)!.disk.objects.get(oid)!.data);
    for (const id of want.slice(1)) {
      const other = normalized(byId.get(id)!.disk.objects.get(oid)!.data);
      if (!other.equals(first)) {
        return new InvariantViolation('replicas are byte-identical', `${oidHex} differs between ${want[0]} and ${id} (${firstDifference(first, other)})`);
      }
    }
  }
  return null;
}

/** VDIs the cluster has that the clients lost track of (a create whose answer never came). */
function leftoverVids(world: World, w: Workload): number[] {
  const known = new Set([...w.models.values()].map((m) => m.vid));
  const sheep = world.nodes[0]!.current!.sheep;
  return [...sheep.vdis.values()].filter((v) => !v.deleted && !known.has(v.vid)).map((v) => v.vid);
}

/** Every VDI the cluster has not deleted. */
function liveVids(world: World): number[] {
  const sheep = world.nodes[0]!.current!.sheep;
  return [...sheep.vdis.values()].filter((v) => !v.deleted).map((v) => v.vid);
}

function leakedObjects(world: World): InvariantViolation | null {
  for (const n of world.nodes) {
    const data = [...n.disk.objects.keys()].filter(isDataObj);
    if (data.length > 0) return new InvariantViolation('no data object leaked after deletes', `${n.id} still holds ${data.length} data objects (first ${data[0]!.toString(16).padStart(16, '0')})`);
  }
  return null;
}

/** A digest of every disk (objects, stale copies, epoch files, config) and the step log. */
function stateDigest(world: World, records: readonly SimRecord[]): string {
  const h = createHash('sha256');
  for (const n of world.nodes) {
    h.update(`node ${n.id}\n`);
    for (const oid of [...n.disk.objects.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      h.update(oid.toString(16));
      h.update(normalized(n.disk.objects.get(oid)!.data));
    }
    for (const k of [...n.disk.stale.keys()].sort()) h.update(`stale ${k}`);
    for (const [e, b] of [...n.disk.epochFiles].sort((a, b) => a[0] - b[0])) h.update(`epoch ${e}`).update(b);
    if (n.disk.config) h.update(n.disk.config);
  }
  for (const r of records) if (r.k === 'step') h.update(`${r.n} ${r.t} ${r.what}\n`);
  return h.digest('hex').slice(0, 16);
}

// Deterministic replay of a recorded event log on one thread with a virtual clock. Every recorded
// input is fed to a fresh copy of its actor in recorded order; the state after each input, each timer
// firing, each crash and the final per-shard snapshot digests must match what was recorded.
// Effects are not executed: their results were recorded as inputs.
import { createActor, type AnyActorRef, type AnyEventObject } from 'xstate';
import { actorKind } from './actor-kind.js';
import { parseAddressKey } from './address.js';
import { snapshotDigest, stateSignature } from './actor-host.js';
import { VirtualClock } from './clock.js';
import { readEventLog, type LogRecord } from './event-log.js';

export interface Divergence {
  readonly index: number;
  readonly actor: string;
  readonly what: string;
  readonly expected: string;
  readonly actual: string;
}

export interface ReplayResult {
  readonly records: number;
  readonly actors: number;
  readonly inputs: number;
  readonly digestsChecked: number;
  readonly divergence?: Divergence;
}

interface ReplayActor {
  ref: AnyActorRef;
  clock: VirtualClock;
  shard: number;
  failed: boolean;
}

function describeRecord(r: LogRecord): string {
  switch (r.k) {
    case 'in':
      return `event ${String((r.ev as AnyEventObject)?.type)}`;
    case 'timer':
      return `timer #${r.id}`;
    default:
      return r.k;
  }
}

export function replayRecords(records: readonly LogRecord[]): ReplayResult {
  const actors = new Map<string, ReplayActor>();
  let inputs = 0;
  let digestsChecked = 0;
  let spawned = 0;
  const diverge = (index: number, actor: string, what: string, expected: string, actual: string): ReplayResult => {
    for (const a of actors.values()) a.ref.stop();
    return { records: records.length, actors: spawned, inputs, digestsChecked, divergence: { index, actor, what, expected, actual } };
  };

  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.k === 'digest') {
      const onShard = [...actors.entries()].filter(([, a]) => a.shard === r.s && !a.failed).map(([k, a]) => [k, a.ref] as [string, AnyActorRef]);
      const actual = snapshotDigest(onShard);
      digestsChecked++;
      if (actual !== r.d || onShard.length !== r.n) return diverge(i, `shard ${r.s}`, 'final snapshot digest', `${r.d} (${r.n} actors)`, `${actual} (${onShard.length} actors)`);
      continue;
    }
    const key = r.a;
    let actor = actors.get(key);
    if (r.k === 'spawn') {
      if (actor && !actor.failed) return diverge(i, key, 'spawn', 'no live actor at this address', 'a live actor');
      const clock = new VirtualClock(r.t);
      const ref = createActor(actorKind(parseAddressKey(key).kind).logic, { input: r.input, clock, id: key });
      const entry: ReplayActor = { ref, clock, shard: r.s, failed: false };
      ref.subscribe({ error: () => (entry.failed = true) });
      ref.start();
      actors.set(key, entry);
      spawned++;
      continue;
    }
    if (!actor) return diverge(i, key, describeRecord(r), 'a live actor', 'no actor');
    switch (r.k) {
      case 'in': {
        actor.clock.set(Math.max(actor.clock.now(), r.t));
        actor.ref.send(r.ev as AnyEventObject);
        inputs++;
        const st = stateSignature(actor.ref);
        if (st !== r.st) return diverge(i, key, describeRecord(r), r.st, st);
        break;
      }
      case 'timer': {
        actor.clock.set(Math.max(actor.clock.now(), r.t));
        if (!actor.clock.fire(r.id)) return diverge(i, key, describeRecord(r), `timer #${r.id} pending`, 'no such timer');
        inputs++;
        const st = stateSignature(actor.ref);
        if (st !== r.st) return diverge(i, key, describeRecord(r), r.st, st);
        break;
      }
      case 'crash':
        if (!actor.failed) return diverge(i, key, 'crash', `a failure (${r.err})`, `no failure (${stateSignature(actor.ref)})`);
        break;
      case 'stop':
        actor.ref.stop();
        actors.delete(key);
        break;
    }
  }
  for (const a of actors.values()) a.ref.stop();
  return { records: records.length, actors: spawned, inputs, digestsChecked };
}

/** Reads (throws LogCorruptedError on a damaged file) and replays a log. */
export function replayLog(path: string): ReplayResult {
  return replayRecords(readEventLog(path));
}

export function formatDivergence(d: Divergence): string {
  return `replay diverged at record #${d.index} (${d.actor}, ${d.what}): expected ${d.expected}, got ${d.actual}`;
}

// One actor per VDI per node: owns the VDI's lifecycle (working → snapshot → deleted) and its lock.
// Every node feeds its VDI actors the same totally ordered cluster events, so all nodes agree on lock
// owners and snapshot state. Pure: no time, randomness or I/O; answers through `reply` effects.
import { assign, emit, setup } from 'xstate';
import { registerActorKind } from '../../runtime/actor-kind.js';

export interface VdiInput {
  readonly vid: number;
  readonly name: string;
  readonly copies: number;
  readonly copyPolicy: number;
  readonly blockSizeShift: number;
  readonly parentVid: number;
  readonly snapshot: boolean;
}

export interface VdiSummary {
  readonly vid: number;
  readonly name: string;
  readonly copies: number;
  readonly copyPolicy: number;
  readonly blockSizeShift: number;
  readonly parentVid: number;
  readonly snapshot: boolean;
  readonly deleted: boolean;
  /** 1 unlocked, 2 locked, 3 shared (Sheepdog's lock_state values). */
  readonly lockState: number;
  readonly lockOwner: string | null;
  readonly participants: readonly string[];
}

export type VdiEvent =
  | { type: 'LOCK'; owner: string; shared: boolean; $ask?: number }
  | { type: 'UNLOCK'; owner: string; $ask?: number }
  | { type: 'NODE_LEFT'; node: string; $ask?: number }
  | { type: 'SNAPSHOTTED'; $ask?: number }
  | { type: 'COPIES_CHANGED'; copies: number; copyPolicy: number; $ask?: number }
  | { type: 'DELETED'; $ask?: number }
  | { type: 'GET'; $ask?: number };

interface VdiContext extends Omit<VdiSummary, 'lockState' | 'deleted'> {
  readonly lockOwner: string | null;
  readonly participants: readonly string[];
}

const LOCK_STATE = { unlocked: 1, locked: 2, shared: 3 } as const;

function summary(context: VdiContext, state: 'unlocked' | 'locked' | 'shared' | 'deleted'): VdiSummary {
  const lockState = state === 'locked' ? LOCK_STATE.locked : state === 'shared' ? LOCK_STATE.shared : LOCK_STATE.unlocked;
  return { ...context, deleted: state === 'deleted', lockState };
}

type LockStateName = 'unlocked' | 'locked' | 'shared' | 'deleted';
type ReplyParams = { ok: boolean; state: LockStateName };
const r = (ok: boolean, state: LockStateName) => ({ type: 'reply' as const, params: { ok, state } });

export const vdiMachine = setup({
  types: {} as { context: VdiContext; events: VdiEvent; input: VdiInput },
  actions: {
    // Answers an ask with the VDI's summary after this transition (ignored for plain tells).
    reply: emit(({ context, event }, params: ReplyParams) => ({
      type: 'reply',
      ask: event.$ask,
      value: { ok: params.ok, vdi: summary(context, params.state) },
    })),
  },
  guards: {
    sharedRequest: ({ event }) => event.type === 'LOCK' && event.shared,
    ownerLeft: ({ context, event }) => event.type === 'NODE_LEFT' && context.lockOwner === event.node,
    lastParticipantGoes: ({ context, event }) => {
      const who = event.type === 'UNLOCK' ? event.owner : event.type === 'NODE_LEFT' ? event.node : '';
      return context.participants.filter((p) => p !== who).length === 0;
    },
  },
}).createMachine({
  id: 'vdi',
  context: ({ input }) => ({
    vid: input.vid,
    name: input.name,
    copies: input.copies,
    copyPolicy: input.copyPolicy,
    blockSizeShift: input.blockSizeShift,
    parentVid: input.parentVid,
    snapshot: input.snapshot,
    lockOwner: null,
    participants: [],
  }),
  initial: 'unlocked',
  states: {
    unlocked: {
      on: {
        GET: { actions: r(true, 'unlocked') },
        SNAPSHOTTED: { actions: [assign({ snapshot: true }), r(true, 'unlocked')] },
        COPIES_CHANGED: { actions: [assign({ copies: ({ event }) => event.copies, copyPolicy: ({ event }) => event.copyPolicy }), r(true, 'unlocked')] },
        LOCK: [
          { guard: 'sharedRequest', target: 'shared', actions: [assign({ participants: ({ event }) => [event.owner] }), r(true, 'shared')] },
          { target: 'locked', actions: [assign({ lockOwner: ({ event }) => event.owner }), r(true, 'locked')] },
        ],
        // RELEASE_VDI always succeeds, even on an unlocked VDI.
        UNLOCK: { actions: r(true, 'unlocked') },
        NODE_LEFT: { actions: r(true, 'unlocked') },
        DELETED: { target: 'deleted', actions: r(true, 'deleted') },
      },
    },
    locked: {
      on: {
        GET: { actions: r(true, 'locked') },
        SNAPSHOTTED: { actions: [assign({ snapshot: true }), r(true, 'locked')] },
        COPIES_CHANGED: { actions: [assign({ copies: ({ event }) => event.copies, copyPolicy: ({ event }) => event.copyPolicy }), r(true, 'locked')] },
        LOCK: { actions: r(false, 'locked') },
        UNLOCK: { target: 'unlocked', actions: [assign({ lockOwner: null }), r(true, 'unlocked')] },
        NODE_LEFT: [
          { guard: 'ownerLeft', target: 'unlocked', actions: [assign({ lockOwner: null }), r(true, 'unlocked')] },
          { actions: r(true, 'locked') },
        ],
        DELETED: { target: 'deleted', actions: [assign({ lockOwner: null }), r(true, 'deleted')] },
      },
    },
    shared: {
      on: {
        GET: { actions: r(true, 'shared') },
        SNAPSHOTTED: { actions: [assign({ snapshot: true }), r(true, 'shared')] },
        COPIES_CHANGED: { actions: [assign({ copies: ({ event }) => event.copies, copyPolicy: ({ event }) => event.copyPolicy }), r(true, 'shared')] },
        LOCK: [
          {
            guard: 'sharedRequest',
            actions: [assign({ participants: ({ context, event }) => (context.participants.includes(event.owner) ? context.participants : [...context.participants, event.owner]) }), r(true, 'shared')],
          },
          { actions: r(false, 'shared') },
        ],
        UNLOCK: [
          { guard: 'lastParticipantGoes', target: 'unlocked', actions: [assign({ participants: [] }), r(true, 'unlocked')] },
          { actions: [assign({ participants: ({ context, event }) => context.participants.filter((p) => p !== event.owner) }), r(true, 'shared')] },
        ],
        NODE_LEFT: [
          { guard: 'lastParticipantGoes', target: 'unlocked', actions: [assign({ participants: [] }), r(true, 'unlocked')] },
          { actions: [assign({ participants: ({ context, event }) => context.participants.filter((p) => p !== event.node) }), r(true, 'shared')] },
        ],
        DELETED: { target: 'deleted', actions: [assign({ participants: [] }), r(true, 'deleted')] },
      },
    },
    deleted: {
      on: {
        GET: { actions: r(true, 'deleted') },
        LOCK: { actions: r(false, 'deleted') },
        UNLOCK: { actions: r(true, 'deleted') },
        NODE_LEFT: { actions: r(true, 'deleted') },
        SNAPSHOTTED: { actions: r(true, 'deleted') },
        COPIES_CHANGED: { actions: r(true, 'deleted') },
        DELETED: { actions: r(true, 'deleted') },
      },
    },
  },
});

export const VDI_KIND = 'vdi';
registerActorKind({ kind: VDI_KIND, logic: vdiMachine, placement: 'sharded', supervision: { strategy: 'restart', maxRestarts: 3 } });

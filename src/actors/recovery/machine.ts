// One recovery job per node per epoch change. It owns the job's lifecycle and progress, and asks the
// node's recovery service (effects) to list what this node must hold, then to pull what is missing.
// A newer epoch cancels the job; recovery can be paused (`dog cluster recover disable`) and resumed.
// Pure: progress arrives as events; throttling parameters arrive in the input and in SET_THROTTLE.
import { assign, emit, setup } from 'xstate';
import { registerActorKind } from '../../runtime/actor-kind.js';

export interface RecoveryInput {
  readonly node: string;
  readonly epoch: number;
  readonly maxInFlight: number;
  readonly paused: boolean;
}

export interface RecoveryContext {
  readonly node: string;
  readonly epoch: number;
  total: number;
  done: number;
  failed: number;
  maxInFlight: number;
  paused: boolean;
}

export type RecoveryEvent =
  | { type: 'recovery.prepare.done'; total: number }
  | { type: 'recovery.prepare.error'; error: string }
  | { type: 'recovery.progress'; done: number; failed: number }
  | { type: 'recovery.run.done'; done: number; failed: number }
  | { type: 'recovery.run.error'; error: string }
  | { type: 'recovery.finish.done' }
  | { type: 'recovery.finish.error'; error: string }
  | { type: 'CANCEL' }
  | { type: 'PAUSE' }
  | { type: 'RESUME' }
  | { type: 'SET_THROTTLE'; maxInFlight: number }
  | { type: 'GET'; $ask?: number };

/** STAT_RECOVERY's state field: 0 preparing the list, 1 recovering objects, 2 notifying completion. */
export const RECOVERY_PHASE = { preparing: 0, recovering: 1, finishing: 2 } as const;

export const recoveryMachine = setup({
  types: {} as { context: RecoveryContext; events: RecoveryEvent; input: RecoveryInput },
  actions: {
    report: emit(({ context, event }, params: { phase: string }) => ({
      type: 'reply',
      ask: (event as { $ask?: number }).$ask,
      value: { phase: params.phase, epoch: context.epoch, total: context.total, done: context.done, failed: context.failed, paused: context.paused },
    })),
    startRun: emit(({ context }) => ({ type: 'recovery.run', epoch: context.epoch, maxInFlight: context.maxInFlight })),
    stopRun: emit(({ context }) => ({ type: 'recovery.stop', epoch: context.epoch })),
  },
  guards: {
    notPaused: ({ context }) => !context.paused,
  },
}).createMachine({
  id: 'recovery',
  context: ({ input }) => ({ node: input.node, epoch: input.epoch, total: 0, done: 0, failed: 0, maxInFlight: input.maxInFlight, paused: input.paused }),
  initial: 'preparing',
  on: {
    CANCEL: { target: '.cancelled', actions: 'stopRun' },
    SET_THROTTLE: { actions: assign({ maxInFlight: ({ event }) => Math.max(1, event.maxInFlight) }) },
  },
  states: {
    preparing: {
      entry: emit(({ context }) => ({ type: 'recovery.prepare', epoch: context.epoch })),
      on: {
        GET: { actions: { type: 'report', params: { phase: 'preparing' } } },
        'recovery.prepare.done': [
          { guard: ({ event }) => event.total === 0, target: 'finishing', actions: assign({ total: 0 }) },
          { target: 'recovering', actions: assign({ total: ({ event }) => event.total }) },
        ],
        // A failed listing is retried by the service with the next epoch; treat the job as finished-with-errors.
        'recovery.prepare.error': { target: 'finishing', actions: assign({ failed: 1 }) },
        PAUSE: { actions: assign({ paused: true }) },
        RESUME: { actions: assign({ paused: false }) },
      },
    },
    recovering: {
      initial: 'decide',
      on: {
        GET: { actions: { type: 'report', params: { phase: 'recovering' } } },
        'recovery.progress': { actions: assign({ done: ({ event }) => event.done, failed: ({ event }) => event.failed }) },
        'recovery.run.done': { target: 'finishing', actions: assign({ done: ({ event }) => event.done, failed: ({ event }) => event.failed }) },
        'recovery.run.error': { target: 'finishing', actions: assign({ failed: ({ context }) => context.failed + 1 }) },
      },
      states: {
        decide: { always: [{ guard: 'notPaused', target: 'running' }, { target: 'paused' }] },
        running: {
          entry: 'startRun',
          on: { PAUSE: { target: 'paused', actions: [assign({ paused: true }), 'stopRun'] } },
        },
        paused: {
          on: { RESUME: { target: 'running', actions: assign({ paused: false }) } },
        },
      },
    },
    finishing: {
      entry: emit(({ context }) => ({ type: 'recovery.finish', epoch: context.epoch })),
      on: {
        GET: { actions: { type: 'report', params: { phase: 'finishing' } } },
        'recovery.finish.done': 'done',
        'recovery.finish.error': 'done',
      },
    },
    done: {
      on: { GET: { actions: { type: 'report', params: { phase: 'done' } } }, CANCEL: {} },
    },
    cancelled: {
      on: { GET: { actions: { type: 'report', params: { phase: 'cancelled' } } }, CANCEL: {} },
    },
  },
});

export const RECOVERY_KIND = 'recovery';
// Home placement: its services are the node's store and peer connections on the home thread.
registerActorKind({ kind: RECOVERY_KIND, logic: recoveryMachine, placement: 'home', supervision: { strategy: 'restart', maxRestarts: 3 } });

// The registry of actor kinds. Every thread that hosts actors imports the modules that register the
// kinds it may host, so a kind name in an envelope is enough to create the actor anywhere.
import type { AnyStateMachine } from 'xstate';

export type SupervisionStrategy = 'restart' | 'stop';

export interface ActorKindSpec {
  /** The address kind, e.g. "vdi" or "recovery". */
  readonly kind: string;
  /** A pure xstate machine: effects only through `emit`, time only through `after` delays. */
  readonly logic: AnyStateMachine;
  /** Where the actor lives: "home" = the thread that owns the system's services; "sharded" = hashed over workers. */
  readonly placement?: 'home' | 'sharded';
  /** What the host does when the actor fails. Restarts are counted, not timed, so replay reproduces them. */
  readonly supervision?: { readonly strategy: SupervisionStrategy; readonly maxRestarts?: number };
}

const kinds = new Map<string, ActorKindSpec>();

export function registerActorKind(spec: ActorKindSpec): void {
  const existing = kinds.get(spec.kind);
  if (existing && existing.logic !== spec.logic) throw new Error(`actor kind "${spec.kind}" is already registered with other logic`);
  kinds.set(spec.kind, spec);
}

export function actorKind(kind: string): ActorKindSpec {
  const spec = kinds.get(kind);
  if (!spec) throw new Error(`unknown actor kind "${kind}" (is its module in the system's kindModules?)`);
  return spec;
}

export function hasActorKind(kind: string): boolean {
  return kinds.has(kind);
}

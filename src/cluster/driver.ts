// The one small interface every membership driver implements (as in Sheepdog's cluster drivers):
// join, leave, notify, block, unblock. Events are delivered to every member in one total order.

/** A member as the drivers see it: its identity and its opaque node record (an encoded sd_node). */
export interface Member {
  /** "addr:port", unique in the cluster. */
  readonly id: string;
  /** Encoded sd_node (80 bytes). */
  readonly node: Uint8Array;
}

export type ClusterEvent =
  | { readonly type: 'join'; readonly member: Member; readonly members: readonly Member[] }
  | { readonly type: 'leave'; readonly member: Member; readonly members: readonly Member[] }
  | { readonly type: 'notify'; readonly from: string; readonly msg: Uint8Array }
  /** Only to the node whose block() was granted: it may now run its cluster operation's work. */
  | { readonly type: 'block-granted'; readonly ticket: number };

export interface ClusterDriver {
  readonly name: string;
  /** Joins and starts delivering events (including this node's own join) to `onEvent`, in order. */
  join(self: Member, onEvent: (ev: ClusterEvent) => void): Promise<void>;
  leave(): Promise<void>;
  /** Totally ordered broadcast to every member, this node included. */
  notify(msg: Uint8Array): void;
  /** Asks for the cluster-wide lock; a `block-granted` event with the returned ticket answers. */
  block(): number;
  /** Releases the lock and broadcasts `msg` (ordered) in the same step. */
  unblock(msg: Uint8Array): void;
}

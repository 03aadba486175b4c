// The sequencer behind the in-process and local drivers: keeps the member list, gives every event one
// global order, and runs the cluster-wide block (a FIFO lock). Transport-agnostic: a member is a sink.
import type { ClusterEvent, Member } from './driver.js';

export interface HubSink {
  deliver(ev: ClusterEvent): void;
}

interface Blocker {
  readonly memberId: string;
  readonly ticket: number;
}

export class Hub {
  private readonly members: Array<{ member: Member; sink: HubSink }> = [];
  private readonly queue: Blocker[] = [];

  get size(): number {
    return this.members.length;
  }

  memberIds(): string[] {
    return this.members.map((m) => m.member.id);
  }

  join(member: Member, sink: HubSink): void {
    if (this.members.some((m) => m.member.id === member.id)) throw new Error(`a node ${member.id} is already a member`);
    this.members.push({ member, sink });
    this.broadcast({ type: 'join', member, members: this.members.map((m) => m.member) });
  }

  leave(memberId: string): void {
    const i = this.members.findIndex((m) => m.member.id === memberId);
    if (i < 0) return;
    const [gone] = this.members.splice(i, 1);
    // A departed node's block requests die with it; if it held the lock, the next waiter gets it.
    const held = this.queue[0]?.memberId === memberId;
    for (let k = this.queue.length - 1; k >= 0; k--) if (this.queue[k]!.memberId === memberId) this.queue.splice(k, 1);
    this.broadcast({ type: 'leave', member: gone!.member, members: this.members.map((m) => m.member) });
    if (held) this.grantHead();
  }

  notify(from: string, msg: Uint8Array): void {
    if (!this.isMember(from)) return;
    this.broadcast({ type: 'notify', from, msg });
  }

  block(memberId: string, ticket: number): void {
    if (!this.isMember(memberId)) return;
    this.queue.push({ memberId, ticket });
    if (this.queue.length === 1) this.grantHead();
  }

  unblock(memberId: string, msg: Uint8Array): void {
    if (this.queue[0]?.memberId !== memberId) throw new Error(`node ${memberId} unblocked without holding the block`);
    this.queue.shift();
    this.broadcast({ type: 'notify', from: memberId, msg });
    this.grantHead();
  }

  private isMember(id: string): boolean {
    return this.members.some((m) => m.member.id === id);
  }

  private grantHead(): void {
    const head = this.queue[0];
    if (!head) return;
    this.members.find((m) => m.member.id === head.memberId)?.sink.deliver({ type: 'block-granted', ticket: head.ticket });
  }

  private broadcast(ev: ClusterEvent): void {
    for (const m of this.members) m.sink.deliver(ev);
  }
}

// In-process driver: several sheep in one process share one Hub (sheep-actors cluster, tests, simulation).
// Events are delivered asynchronously (microtask) and in order, as over a network.
import type { ClusterDriver, ClusterEvent, Member } from './driver.js';
import { Hub } from './hub.js';

export class InProcessDriver implements ClusterDriver {
  readonly name = 'in-process';
  private self: Member | null = null;
  private nextTicket = 1;
  private readonly pending: ClusterEvent[] = [];
  private onEvent: ((ev: ClusterEvent) => void) | null = null;
  private scheduled = false;

  constructor(private readonly hub: Hub) {}

  async join(self: Member, onEvent: (ev: ClusterEvent) => void): Promise<void> {
    this.self = self;
    this.onEvent = onEvent;
    this.hub.join(self, { deliver: (ev) => this.enqueue(ev) });
  }

  async leave(): Promise<void> {
    if (!this.self) return;
    this.hub.leave(this.self.id);
    this.self = null;
    this.onEvent = null;
  }

  notify(msg: Uint8Array): void {
    this.hub.notify(this.requireSelf(), msg);
  }

  block(): number {
    const ticket = this.nextTicket++;
    this.hub.block(this.requireSelf(), ticket);
    return ticket;
  }

  unblock(msg: Uint8Array): void {
    this.hub.unblock(this.requireSelf(), msg);
  }

  private requireSelf(): string {
    if (!this.self) throw new Error('in-process driver: not joined');
    return this.self.id;
  }

  private enqueue(ev: ClusterEvent): void {
    this.pending.push(ev);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const batch = this.pending.splice(0);
      for (const e of batch) this.onEvent?.(e);
    });
  }
}

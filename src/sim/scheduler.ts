// Simulated time: a virtual clock with a timer heap. Nothing moves until the simulator fires the next
// timer; timers due at the same time fire in the order they were set, so a run is a pure function of
// its seed.
import type { Clock } from '../runtime/clock.js';
import type { NodeClock } from '../node/env.js';

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
  /** The incarnation that set it: a crashed node's timers never fire. */
  readonly owner: Liveness | null;
}

export interface Liveness {
  readonly alive: boolean;
}

/** Simulated wall-clock origin (2026-01-01T00:00:00Z): epoch times and ctimes are reproducible too. */
export const SIM_WALL_ORIGIN_MS = 1_767_225_600_000;

export class Scheduler implements Clock {
  private time = 0;
  private nextId = 1;
  private heap: Timer[] = [];
  private readonly cancelled = new Set<number>();
  fired = 0;

  now(): number {
    return this.time;
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number): number {
    return this.schedule(fn as () => void, ms, null);
  }

  clearTimeout(id: unknown): void {
    if (typeof id === 'number') this.cancelled.add(id);
  }

  schedule(fn: () => void, ms: number, owner: Liveness | null): number {
    if (!(ms >= 0)) ms = 0;
    const t: Timer = { id: this.nextId++, due: this.time + ms, fn, owner };
    this.push(t);
    return t.id;
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Due time of the next live timer, or undefined when nothing is scheduled. */
  peekDue(): number | undefined {
    this.dropDead();
    return this.heap[0]?.due;
  }

  /** Fires the earliest timer (advancing time to it). False when there is none. */
  fireNext(): boolean {
    this.dropDead();
    const t = this.pop();
    if (!t) return false;
    this.time = Math.max(this.time, t.due);
    this.fired++;
    t.fn();
    return true;
  }

  private dropDead(): void {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (this.cancelled.has(top.id)) this.cancelled.delete(top.id);
      else if (top.owner && !top.owner.alive) {
        /* a crashed incarnation's timer */
      } else return;
      this.pop();
    }
  }

  private less(a: Timer, b: Timer): boolean {
    return a.due < b.due || (a.due === b.due && a.id < b.id);
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Timer | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * One node incarnation's view of simulated time: both the sheep's NodeClock and the actors' Clock.
 * When the incarnation crashes its pending timers and sleeps never fire, as in a dead process.
 */
export class IncarnationClock implements NodeClock, Clock, Liveness {
  alive = true;

  constructor(private readonly sched: Scheduler) {}

  now(): number {
    return this.sched.now();
  }

  wallMs(): number {
    return SIM_WALL_ORIGIN_MS + Math.floor(this.sched.now());
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.sched.schedule(resolve, ms, this));
  }

  defer(fn: () => void): void {
    this.sched.schedule(fn, 0, this);
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number): number {
    return this.sched.schedule(fn as () => void, ms, this);
  }

  clearTimeout(id: unknown): void {
    this.sched.clearTimeout(id);
  }
}

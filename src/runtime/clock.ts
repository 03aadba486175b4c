// Time as an injected service. Machines never read time themselves: xstate's `after` delays are
// driven through a Clock, and replay swaps in a VirtualClock so timer firings are reproduced exactly.

export type TimerId = number;

/** The subset xstate needs (its `clock` option) plus a reading of the current time. */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, ms: number): TimerId;
  clearTimeout(id: unknown): void;
}

/** Wall-clock service: milliseconds since this clock was created (monotonic). */
export class RealClock implements Clock {
  private readonly origin = performance.now();
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();

  now(): number {
    return performance.now() - this.origin;
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number): TimerId {
    const id = this.nextId++;
    const handle = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    this.timers.set(id, handle);
    return id;
  }

  clearTimeout(id: unknown): void {
    const handle = this.timers.get(id as number);
    if (handle) {
      clearTimeout(handle);
      this.timers.delete(id as number);
    }
  }

  /** Cancels every pending timer (shutdown). */
  clearAll(): void {
    for (const h of this.timers.values()) clearTimeout(h);
    this.timers.clear();
  }
}

interface PendingTimer {
  id: number;
  due: number;
  fn: () => void;
}

/** A clock that only moves when told to: for replay and simulation. Timers fire in (due, id) order. */
export class VirtualClock implements Clock {
  private time = 0;
  private nextId = 1;
  private readonly pending = new Map<number, PendingTimer>();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number): TimerId {
    const id = this.nextId++;
    this.pending.set(id, { id, due: this.time + Math.max(0, ms), fn: fn as () => void });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.pending.delete(id as number);
  }

  /** Moves time forward without firing anything (replay sets the recorded time before each input). */
  set(t: number): void {
    if (t < this.time) throw new Error(`virtual clock cannot go back from ${this.time} to ${t}`);
    this.time = t;
  }

  has(id: number): boolean {
    return this.pending.has(id);
  }

  /** Fires one specific timer (replay knows which one fired from the log). */
  fire(id: number): boolean {
    const timer = this.pending.get(id);
    if (!timer) return false;
    this.pending.delete(id);
    if (timer.due > this.time) this.time = timer.due;
    timer.fn();
    return true;
  }

  /** Earliest pending due time, or undefined. */
  nextDue(): number | undefined {
    let best: number | undefined;
    for (const t of this.pending.values()) if (best === undefined || t.due < best) best = t.due;
    return best;
  }

  /** Advances to `t`, firing every timer due on the way in (due, id) order. Returns how many fired. */
  advanceTo(t: number): number {
    let fired = 0;
    for (;;) {
      let next: PendingTimer | undefined;
      for (const timer of this.pending.values()) {
        if (timer.due <= t && (!next || timer.due < next.due || (timer.due === next.due && timer.id < next.id))) next = timer;
      }
      if (!next) break;
      this.pending.delete(next.id);
      this.time = Math.max(this.time, next.due);
      next.fn();
      fired++;
    }
    if (t > this.time) this.time = t;
    return fired;
  }
}

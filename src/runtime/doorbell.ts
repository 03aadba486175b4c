// Doorbell: a tiny shared wake-up primitive so ONE consumer can sleep on SEVERAL rings.
//
// Layout (Int32 words at `byteOffset` inside a SharedArrayBuffer):
//   [0] COUNTER  - bumped (Atomics.add) by every producer after it publishes data.
//   [1] SLEEPERS - number of consumers currently inside a wait; each waiter increments it
//                  before waiting and decrements it after (ONLY the waiter touches its own mark).
//   [2] TAG      - random identity set by Doorbell.allocate(), so two threads can tell whether
//                  their (separately cloned) SharedArrayBuffer objects are the same doorbell.
//
// Protocol (why no wake-up is lost):
//   producer: publish data (Atomics.store HEAD) -> Atomics.add(COUNTER) -> if SLEEPERS > 0 notify.
//   consumer: seen = snapshot() -> drain every ring -> if nothing: waitAsync(seen).
//             waitAsync: SLEEPERS += 1 -> Atomics.wait[Async](COUNTER, seen) -> SLEEPERS -= 1.
//   All of these are seq-cst atomics, so in the single total order either
//   (a) the producer's add precedes the consumer's snapshot -> the drain sees the data (HEAD was
//       stored before the add), or
//   (b) the add follows the snapshot -> COUNTER != seen, and either the wait's own value check
//       sees it ("not-equal", no sleep) or the producer's load of SLEEPERS sees the consumer's
//       increment (which precedes the wait check) and it notifies.
//   The notify is elided only when SLEEPERS == 0, which in case (b) means the increment comes
//   after the producer's load, hence the wait's value check comes after the add: no sleep.
//   Trap avoided: a notifier never clears the sleeping mark (it could erase a newer mark and the
//   consumer would sleep forever); using a counter also keeps multiple waiters safe.

const COUNTER = 0;
const SLEEPERS = 1;
const TAG = 2;

/** Bytes a doorbell occupies (rounded up to a cache line so it does not share one with data). */
export const DOORBELL_BYTES = 64;

export class Doorbell {
  /** A fresh SharedArrayBuffer holding one doorbell at offset 0. */
  static allocate(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(DOORBELL_BYTES);
    new Int32Array(sab)[TAG] = 1 + Math.floor(Math.random() * 0x7ffffffe);
    return sab;
  }

  readonly sab: SharedArrayBuffer;
  readonly byteOffset: number;
  private readonly i32: Int32Array;

  constructor(sab: SharedArrayBuffer, byteOffset = 0) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('Doorbell: expected a SharedArrayBuffer');
    if (byteOffset % 4 !== 0 || byteOffset < 0 || byteOffset + 12 > sab.byteLength) {
      throw new RangeError(`Doorbell: byteOffset ${byteOffset} invalid for a ${sab.byteLength}-byte buffer`);
    }
    this.sab = sab;
    this.byteOffset = byteOffset;
    this.i32 = new Int32Array(sab, byteOffset, 3);
  }

  /** Identity tag (0 for doorbells not made by Doorbell.allocate(), e.g. a ring's built-in one). */
  get tag(): number {
    return Atomics.load(this.i32, TAG);
  }

  /** True if both objects address the same shared doorbell (works across threads). */
  sameAs(other: Doorbell): boolean {
    if (this.sab === other.sab) return this.byteOffset === other.byteOffset;
    const t = this.tag;
    return t !== 0 && t === other.tag;
  }

  /** Producer side: announce new data. Notifies only if a consumer is (about to be) asleep. */
  ring(): void {
    Atomics.add(this.i32, COUNTER, 1);
    if (Atomics.load(this.i32, SLEEPERS) !== 0) Atomics.notify(this.i32, COUNTER);
  }

  /** Unconditional ring + notify (used to kick a waiter out, e.g. on stop()). */
  wake(): void {
    Atomics.add(this.i32, COUNTER, 1);
    Atomics.notify(this.i32, COUNTER);
  }

  /** Consumer side: take this BEFORE draining; pass it to waitAsync/waitSync afterwards. */
  snapshot(): number {
    return Atomics.load(this.i32, COUNTER);
  }

  /** True when someone rang since `seen` was taken. */
  changedSince(seen: number): boolean {
    return Atomics.load(this.i32, COUNTER) !== seen;
  }

  /**
   * Busy-poll for up to `maxUs` microseconds; true as soon as the counter differs from `seen`.
   * Why: a thread wake-up (futex, or an event-loop task for waitAsync) costs tens of µs, while
   * the reply to a request often arrives within a few µs; a short spin before sleeping cuts
   * round-trip latency and spares producers the notify syscall. It burns CPU, so keep it short.
   */
  spin(seen: number, maxUs: number): boolean {
    const i32 = this.i32;
    if (Atomics.load(i32, COUNTER) !== seen) return true;
    if (!(maxUs > 0)) return false;
    const deadline = performance.now() + maxUs / 1000;
    for (;;) {
      for (let k = 0; k < 64; k++) if (Atomics.load(i32, COUNTER) !== seen) return true;
      if (performance.now() >= deadline) return false;
    }
  }

  /**
   * Consumer side: resolve once the counter differs from `seen` (or after timeoutMs).
   * Resolves true if rung, false on timeout. `spinUs` > 0 busy-polls that long first (see spin()).
   * NOTE: a pending Atomics.waitAsync does NOT keep a Node event loop alive — hold a ref'd
   * handle (see holdEventLoop) while waiting.
   */
  async waitAsync(seen: number, timeoutMs?: number, spinUs = 0): Promise<boolean> {
    if (spinUs > 0 && this.spin(seen, spinUs)) return true;
    const i32 = this.i32;
    Atomics.add(i32, SLEEPERS, 1);
    try {
      const r = Atomics.waitAsync(i32, COUNTER, seen, timeoutMs ?? Infinity);
      const v = r.async ? await r.value : r.value;
      return v !== 'timed-out';
    } finally {
      Atomics.sub(i32, SLEEPERS, 1); // only the waiter removes its own mark
    }
  }

  /**
   * Blocking variant (Atomics.wait). Meant for worker threads: it freezes the calling thread,
   * so never use it on a thread that must serve its event loop. Returns true if rung.
   * `spinUs` > 0 busy-polls that long first.
   */
  waitSync(seen: number, timeoutMs?: number, spinUs = 0): boolean {
    if (spinUs > 0 && this.spin(seen, spinUs)) return true;
    const i32 = this.i32;
    Atomics.add(i32, SLEEPERS, 1);
    try {
      return Atomics.wait(i32, COUNTER, seen, timeoutMs ?? Infinity) !== 'timed-out';
    } finally {
      Atomics.sub(i32, SLEEPERS, 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Event-loop keep-alive. Atomics.waitAsync promises are not libuv handles, so a thread whose only
// pending work is such a wait would exit. One shared ref'd interval is held while anyone waits.

let holders = 0;
let keepAliveTimer: NodeJS.Timeout | undefined;
const noop = (): void => {};

/** Keep the current thread's event loop alive until the returned release function is called. */
export function holdEventLoop(): () => void {
  if (holders++ === 0) keepAliveTimer = setInterval(noop, 1 << 30);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0 && keepAliveTimer !== undefined) {
      clearInterval(keepAliveTimer);
      keepAliveTimer = undefined;
    }
  };
}

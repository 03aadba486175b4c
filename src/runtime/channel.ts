// Typed one-directional message channel between two threads: a Ring carrying msgpackr frames.
//
// Producer: `new ChannelWriter(spec).send(msg)`; consumer: an Inbox that attaches one or more
// channels which all ring ONE doorbell, so the consumer sleeps on a single Atomics wait for all
// of them. Specs are plain objects of SharedArrayBuffers, so they pass through postMessage.
//
// Typical wiring (consumer-owned doorbell):
//   consumer thread:  const inbox = new Inbox(); const spec = inbox.channelSpec(1 << 20);
//                     postMessage(spec) to the producer; inbox.start(msg => ...)
//   producer thread:  const w = new ChannelWriter(spec); w.send({ op: 'READ', oid });
// or producer-created: Channel.create(cap, sharedDoorbellSab) for each channel, then the consumer
// does `new Inbox()` + attach(spec) for each (the Inbox adopts the first spec's doorbell).

import { Packr, Unpackr } from 'msgpackr';
import { Doorbell, holdEventLoop } from './doorbell.js';
import { FrameTooLargeError, Ring } from './ring.js';

/**
 * Structured-cloneable description of one channel. `T` is a compile-time tag only (never
 * present at runtime) so a spec made for `ChannelWriter<Req>` cannot be handed to a writer of
 * another message type by mistake. msgpackr (useRecords:false) round-trips plain data: objects,
 * arrays, strings, numbers, bigint (> 2^53 as BigInt), Uint8Array (decoded as a Buffer copy),
 * Map (decoded as a plain object), undefined/null; not class instances or functions.
 */
export interface ChannelSpec<T = unknown> {
  /** Phantom message type (always undefined). */
  readonly __message?: T;
  ringSab: SharedArrayBuffer;
  doorbellSab: SharedArrayBuffer;
  /** Byte offset of the doorbell inside doorbellSab (default 0). */
  doorbellOffset?: number;
}

// One encoder/decoder per thread (module instance). pack() returns a view into a REUSED internal
// buffer, so its bytes are copied into the ring (or a private copy) before the next pack().
// copyBuffers: decoded binary fields must not alias the ring slot, which is reused once TAIL moves.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });

/**
 * Encode exactly as a ChannelWriter does (exposed for tests/benchmarks). The result is a view
 * into msgpackr's reused buffer: copy it before the next encode on this thread.
 */
export function encodeMessage(msg: unknown): Uint8Array {
  return packr.pack(msg);
}

export class Channel {
  /** Create a channel's shared memory. Pass the same doorbellSab to several channels to share one doorbell. */
  static create<T = unknown>(capacityBytes: number, doorbellSab: SharedArrayBuffer = Doorbell.allocate()): ChannelSpec<T> {
    return { ringSab: Ring.allocate(capacityBytes), doorbellSab, doorbellOffset: 0 };
  }
}

const doorbellOf = (spec: ChannelSpec<unknown>): Doorbell => new Doorbell(spec.doorbellSab, spec.doorbellOffset ?? 0);

export class ChannelWriter<T = unknown> {
  readonly ring: Ring;
  readonly maxFrame: number;
  private current: Uint8Array | null = null;
  private lastQueued: Promise<void> | null = null;
  private queuedCount = 0;
  // Allocated once: copies `current` into the ring (avoids a closure per send).
  private readonly fillCurrent = (dst: Uint8Array, offset: number): void => {
    dst.set(this.current!, offset);
  };

  private readonly batch: boolean;
  private readonly uncork = (): void => this.ring.uncork();

  /**
   * `batch` (default true): messages sent within one synchronous run are published together at
   * the next microtask (or earlier, every capacity/8 bytes or when the ring fills) — one HEAD
   * store + doorbell per burst instead of per message. Set false for publish-per-send.
   */
  constructor(spec: ChannelSpec<T>, opts: { batch?: boolean } = {}) {
    this.ring = new Ring(spec.ringSab, doorbellOf(spec));
    this.maxFrame = this.ring.maxFrame;
    this.batch = opts.batch ?? true;
  }

  /**
   * Send one message. True if it went straight into the ring; false if the ring was full (or
   * earlier messages are still queued) and it was queued locally — it is then written
   * automatically, in FIFO order, as the consumer frees space. Throws FrameTooLargeError if the
   * encoded message exceeds maxFrame (nothing is queued in that case).
   */
  send(msg: T): boolean {
    const bytes = packr.pack(msg);
    if (bytes.length > this.maxFrame) throw new FrameTooLargeError(bytes.length, this.maxFrame, this.ring.capacity);
    if (this.batch && !this.ring.isCorked) {
      this.ring.cork();
      queueMicrotask(this.uncork);
    }
    this.current = bytes;
    try {
      // tryWriteWith refuses while earlier queued writes are pending, which keeps FIFO order.
      if (this.ring.tryWriteWith(bytes.length, this.fillCurrent)) return true;
    } finally {
      this.current = null;
    }
    const copy = new Uint8Array(bytes); // a real copy (Buffer#slice would alias the reused packr buffer)
    this.queuedCount++;
    const p = this.ring.write(copy).finally(() => {
      this.queuedCount--;
      if (this.lastQueued === p) this.lastQueued = null;
    });
    this.lastQueued = p;
    return false;
  }

  /** Publish batched messages now instead of at the next microtask (no-op if none pending). */
  publish(): void {
    if (this.ring.isCorked) this.ring.uncork();
  }

  /** Resolves once every locally queued message is in the ring (immediately if none). */
  flushed(): Promise<void> {
    return this.lastQueued ?? Promise.resolve();
  }

  /** Messages waiting in the local overflow queue. */
  get queued(): number {
    return this.queuedCount;
  }
}

export interface InboxStartOptions {
  /** Max frames taken from one channel before moving to the next (fairness). Default 4096. */
  batchPerChannel?: number;
  /** Yield to the event loop (setImmediate) at least this often while busy. Default 2 ms. */
  yieldEveryMs?: number;
  /**
   * Busy-poll this many µs before sleeping when idle (default 0). 20-50 µs roughly halves
   * request/response latency but burns that much CPU per idle period; use on latency-critical
   * inboxes only, and never when threads outnumber cores.
   */
  spinUs?: number;
}

export class Inbox {
  private doorbellSab: SharedArrayBuffer | null;
  private bell: Doorbell | null;
  private readonly rings: Ring[] = [];
  private running = false;
  private generation = 0; // a loop exits once start()/stop() moved on, even if restarted quickly
  private loopDone: Promise<void> | null = null;
  private handler: ((msg: unknown) => void) | null = null;
  // Decode from a per-frame subarray. Measured: unpack(wholeRing, {start, end}) looks
  // allocation-free but is ~14x slower on a SharedArrayBuffer (0.11 vs 1.5 M msg/s), apparently
  // because msgpackr's native string extraction then works on the whole buffer.
  private readonly onFrame = (data: Uint8Array, offset: number, length: number): void => {
    const msg = unpackr.unpack(data.subarray(offset, offset + length));
    this.handler!(msg);
  };

  /** Optionally bind to an existing doorbell; otherwise one is created (channelSpec) or adopted (first attach). */
  constructor(doorbellSab?: SharedArrayBuffer) {
    this.doorbellSab = doorbellSab ?? null;
    this.bell = doorbellSab ? new Doorbell(doorbellSab) : null;
  }

  /** The doorbell every attached channel rings (created on demand). */
  get doorbell(): Doorbell {
    if (!this.bell) {
      this.doorbellSab = Doorbell.allocate();
      this.bell = new Doorbell(this.doorbellSab);
    }
    return this.bell;
  }

  /** Create a channel bound to this inbox's doorbell, attach it, and return the spec for the producer. */
  channelSpec<T = unknown>(capacityBytes: number): ChannelSpec<T> {
    const bell = this.doorbell;
    const spec: ChannelSpec<T> = { ringSab: Ring.allocate(capacityBytes), doorbellSab: bell.sab, doorbellOffset: bell.byteOffset };
    this.attach(spec);
    return spec;
  }

  /** Consume a channel. All attached channels must share this inbox's doorbell. */
  attach(spec: ChannelSpec<unknown>): void {
    const theirs = doorbellOf(spec);
    if (!this.bell) {
      this.bell = theirs;
      this.doorbellSab = spec.doorbellSab;
    } else if (!this.bell.sameAs(theirs)) {
      throw new Error(
        'Inbox.attach: channel rings a different doorbell than this inbox; create it with inbox.channelSpec() ' +
          'or Channel.create(capacity, <the inbox doorbell SAB>)',
      );
    }
    if (this.rings.some((r) => r.sab === spec.ringSab)) throw new Error('Inbox.attach: channel already attached');
    this.rings.push(new Ring(spec.ringSab, this.bell));
  }

  get channels(): number {
    return this.rings.length;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /**
   * Synchronously deliver every message available now (up to maxPerChannel per channel), in
   * per-channel FIFO order. Returns the number delivered. Handler errors propagate (that message
   * is consumed).
   */
  drainNow(handler: (msg: unknown) => void, maxPerChannel = Infinity): number {
    const prev = this.handler;
    this.handler = handler;
    let n = 0;
    try {
      for (const ring of this.rings) n += ring.drainRaw(this.onFrame, maxPerChannel);
    } finally {
      this.handler = prev;
    }
    return n;
  }

  /**
   * Run an async drain loop: deliver messages as they arrive, sleeping on the doorbell
   * (Atomics.waitAsync) when idle. Keeps this thread's event loop alive while started.
   * The returned promise resolves after stop(), or rejects if the handler throws (the loop ends).
   */
  start(handler: (msg: unknown) => void, opts: InboxStartOptions = {}): Promise<void> {
    if (this.running) throw new Error('Inbox.start: already started');
    const bell = this.doorbell;
    this.running = true;
    const gen = ++this.generation;
    const release = holdEventLoop();
    const done = this.loop(gen, bell, handler, opts.batchPerChannel ?? 4096, opts.yieldEveryMs ?? 2, opts.spinUs ?? 0).finally(() => {
      if (this.generation === gen) this.running = false;
      release();
    });
    this.loopDone = done;
    return done;
  }

  /** Stop the loop (after the current batch). Resolves when it has exited. */
  async stop(): Promise<void> {
    const done = this.loopDone;
    if (!done) return;
    this.running = false;
    this.generation++;
    this.bell?.wake(); // kick the pending waitAsync
    try {
      await done;
    } catch {
      // the error was reported through start()'s promise
    } finally {
      if (this.loopDone === done) this.loopDone = null;
    }
  }

  private async loop(gen: number, bell: Doorbell, handler: (msg: unknown) => void, batch: number, yieldEveryMs: number, spinUs: number): Promise<void> {
    let lastYield = performance.now();
    while (this.generation === gen) {
      const seen = bell.snapshot(); // BEFORE draining: anything published later changes it
      const n = this.drainNow(handler, batch);
      if (this.generation !== gen) break;
      if (n === 0 && !bell.spin(seen, spinUs)) {
        await bell.waitAsync(seen); // a real sleep: resumes from a task, so it also yields
        lastYield = performance.now();
      } else if (performance.now() - lastYield >= yieldEveryMs) {
        // A busy stream would otherwise run on microtasks forever and starve timers/messages.
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  }
}

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

/** Structured-cloneable description of one channel. */
export interface ChannelSpec {
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

/** Encode exactly as a ChannelWriter does (exposed for tests/benchmarks). */
export function encodeMessage(msg: unknown): Uint8Array {
  return packr.pack(msg);
}

export class Channel {
  /** Create a channel's shared memory. Pass the same doorbellSab to several channels to share one doorbell. */
  static create(capacityBytes: number, doorbellSab: SharedArrayBuffer = Doorbell.allocate()): ChannelSpec {
    return { ringSab: Ring.allocate(capacityBytes), doorbellSab, doorbellOffset: 0 };
  }
}

const doorbellOf = (spec: ChannelSpec): Doorbell => new Doorbell(spec.doorbellSab, spec.doorbellOffset ?? 0);

export class ChannelWriter {
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
  constructor(spec: ChannelSpec, opts: { batch?: boolean } = {}) {
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
  send(msg: unknown): boolean {
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
  private loopDone: Promise<void> | null = null;
  private handler: ((msg: unknown) => void) | null = null;
  private readonly range = { start: 0, end: 0 }; // reused unpack options: no per-frame allocation
  private readonly onFrame = (data: Uint8Array, offset: number, length: number): void => {
    this.range.start = offset;
    this.range.end = offset + length;
    const msg = unpackr.unpack(data, this.range);
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
  channelSpec(capacityBytes: number): ChannelSpec {
    const bell = this.doorbell;
    const spec: ChannelSpec = { ringSab: Ring.allocate(capacityBytes), doorbellSab: bell.sab, doorbellOffset: bell.byteOffset };
    this.attach(spec);
    return spec;
  }

  /** Consume a channel. All attached channels must share this inbox's doorbell. */
  attach(spec: ChannelSpec): void {
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
    const release = holdEventLoop();
    const done = this.loop(bell, handler, opts.batchPerChannel ?? 4096, opts.yieldEveryMs ?? 2, opts.spinUs ?? 0).finally(() => {
      this.running = false;
      release();
    });
    this.loopDone = done;
    return done;
  }

  /** Stop the loop (after the current batch). Resolves when it has exited. */
  async stop(): Promise<void> {
    if (!this.loopDone) return;
    this.running = false;
    this.bell?.wake(); // kick the pending waitAsync
    try {
      await this.loopDone;
    } catch {
      // the error was reported through start()'s promise
    } finally {
      this.loopDone = null;
    }
  }

  private async loop(bell: Doorbell, handler: (msg: unknown) => void, batch: number, yieldEveryMs: number, spinUs: number): Promise<void> {
    let lastYield = performance.now();
    while (this.running) {
      const seen = bell.snapshot(); // BEFORE draining: anything published later changes it
      const n = this.drainNow(handler, batch);
      if (!this.running) break;
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

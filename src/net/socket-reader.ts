// Socket receive without a fresh buffer per read. Left alone, Node allocates a 64 KiB buffer for every
// read of a socket; at hundreds of MB/s that garbage made V8 run a major GC about ten times a second in
// every sheep (a third of all CPU during an NBD copy, perf + --trace-gc). Here reads land in one reused
// staging buffer, or straight into a destination the protocol reader names (the unfilled tail of a
// payload, so large payloads are not copied in user space at all).
//
// net.connect() takes this as its public `onread` option. Sockets accepted by a net.Server cannot be
// given one, so the slots Node's Socket constructor fills from `onread` are filled here, found by their
// symbol descriptions. Where they are missing (another Node version), 'data' events are used instead.
import type { Socket } from 'node:net';
import type { ByteQueue } from './byte-queue.js';

export interface SocketSink {
  /**
   * Bytes received. A `transient` chunk is only valid during this call (it is the shared staging
   * buffer): keep nothing that refers to it (ByteQueue.pushTransient + keep() copy what is left).
   */
  bytes(chunk: Buffer, transient: boolean): void;
  /** Where the next bytes should land directly, or null for the staging buffer. */
  direct?(): Buffer | null;
  /** `n` bytes landed at the start of the buffer direct() returned. */
  landed?(n: number): void;
}

/** One staging buffer per thread: callbacks run one at a time and copy what they keep before returning. */
const STAGING_BYTES = 64 * 1024;
let staging: Buffer | null = null;
function stagingBuffer(): Buffer {
  staging ??= Buffer.allocUnsafe(STAGING_BYTES);
  return staging;
}

/** Smallest direct destination worth a read of its own (below it, bytes go through the staging buffer). */
export const MIN_DIRECT_READ = 16 * 1024;

interface UserBufferSlots {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

function userBufferSlots(socket: Socket): UserBufferSlots | null {
  const find = (d: string) => Object.getOwnPropertySymbols(socket).find((s) => s.description === d);
  const kBuffer = find('kBuffer');
  const kBufferCb = find('kBufferCb');
  const kBufferGen = find('kBufferGen');
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } })._handle;
  if (!kBuffer || !kBufferCb || !kBufferGen || typeof handle?.useUserBuffer !== 'function') return null;
  return { kBuffer, kBufferCb, kBufferGen };
}

export const socketReaderStats = { reusedSockets: 0, fallbackSockets: 0, directBytes: 0, stagedBytes: 0 };

/**
 * Feeds a socket's bytes to `sink`. Call it before the socket has read anything (in the server's
 * connection callback, or before connecting). Returns true when reads use reused buffers.
 */
export function readSocket(socket: Socket, sink: SocketSink): boolean {
  const slots = process.env.SHEEP_SOCKET_READS === 'node' ? null : userBufferSlots(socket);
  if (!slots) {
    socketReaderStats.fallbackSockets++;
    socket.on('data', (chunk: Buffer) => sink.bytes(chunk, false));
    return false;
  }
  socketReaderStats.reusedSockets++;
  let target: Buffer | null = null;
  const next = (): Buffer => {
    target = sink.direct?.() ?? null;
    if (target && target.length >= MIN_DIRECT_READ) return target;
    target = null;
    return stagingBuffer();
  };
  const slot = socket as unknown as Record<symbol, unknown>;
  const first = next();
  slot[slots.kBuffer] = first;
  slot[slots.kBufferGen] = next;
  slot[slots.kBufferCb] = (n: number, buf: Buffer): void => {
    if (target !== null && buf.buffer === target.buffer && buf.byteOffset === target.byteOffset) {
      socketReaderStats.directBytes += n;
      sink.landed!(n);
    } else {
      socketReaderStats.stagedBytes += n;
      sink.bytes(buf.subarray(0, n), true);
    }
  };
  (socket as unknown as { _handle: { useUserBuffer(b: Buffer): void } })._handle.useUserBuffer(first);
  return true;
}

/** A payload being received into its own buffer: from the queue, or directly by the kernel. */
export class Incoming {
  filled = 0;
  constructor(readonly buf: Buffer) {}

  /** Moves queued bytes in; true once the buffer is full. */
  fillFrom(q: ByteQueue): boolean {
    this.filled += q.fill(this.buf, this.filled);
    return this.filled === this.buf.length;
  }
}

/**
 * readSocket for a framed protocol: bytes are queued on `q` and `parse` consumes what it can; while
 * `body()` names a payload being received and nothing else is queued, the kernel reads straight into
 * it. While `accept()` is false, bytes are dropped (a connection on its way out).
 */
export function readFramed(socket: Socket, q: ByteQueue, parse: () => void, body: () => Incoming | null, accept: () => boolean = () => true): boolean {
  return readSocket(socket, {
    bytes(chunk, transient) {
      if (!accept()) return;
      if (transient) q.pushTransient(chunk);
      else q.push(chunk);
      try {
        parse();
      } finally {
        q.keep();
      }
    },
    direct() {
      const b = body();
      return b && q.length === 0 && accept() ? b.buf.subarray(b.filled) : null;
    },
    landed(n) {
      body()!.filled += n;
      parse();
    },
  });
}

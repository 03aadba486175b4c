// A simulated disk: the objects, stale copies, config and epoch files of one node, kept in memory across
// that node's crashes and restarts. Every operation takes simulated time and takes effect when it
// completes, so a crash loses exactly the operations that were still in flight (never an acknowledged
// one). Faults: EIO (every operation fails and the node leaves), full (creates fail with NO_SPACE), slow.
import { StoreError } from '../store/object-store.js';
import type { Store } from '../store/store.js';
import type { NodeMeta } from '../node/env.js';
import { decodeConfig, decodeUnverified, encodeConfig, encodeUnverified, type NodeConfig } from '../node/cluster-state.js';
import { decodeSdNodes, encodeSdNodes, type SdNode } from '../proto/structs.js';
import type { Rng } from './rng.js';
import type { IncarnationClock } from './scheduler.js';

interface SimObject {
  /** The object's full size (the file is sparse in production). */
  size: number;
  /** Written bytes from offset 0; the rest reads as zeros. */
  data: Buffer;
}

export interface DiskFaults {
  eio: boolean;
  /** Bytes of object data this disk can hold; creates beyond it fail with NO_SPACE. */
  capacity: number;
  /** Extra milliseconds per operation. */
  slowMs: number;
}

export class SimDisk {
  readonly objects = new Map<bigint, SimObject>();
  /** `${oid}.${epoch}` → bytes, like obj/.stale/<oid>.<epoch>. */
  readonly stale = new Map<string, { oid: bigint; epoch: number; data: Buffer }>();
  config: Buffer | null = null;
  readonly epochFiles = new Map<number, Buffer>();
  /** DIR/unverified (survives crashes, like the rest of the disk). */
  unverified = '';
  readonly faults: DiskFaults;
  /** Debug trace of object creations, removals and moves (the text log at level 7). */
  trace: ((what: string) => void) | null = null;
  /** Test of the checker itself (--bug lose-write): writes are acknowledged but dropped. */
  loseWrites = false;

  constructor(
    readonly name: string,
    private readonly rng: Rng,
    capacity: number,
  ) {
    this.faults = { eio: false, capacity, slowMs: 0 };
  }

  usedBytes(): number {
    let n = 0;
    for (const o of this.objects.values()) n += o.data.length;
    return n;
  }

  /** Simulated latency of one operation. */
  latency(): number {
    return 0.02 + this.rng.float() * 0.2 + this.faults.slowMs * (0.5 + this.rng.float());
  }

  /** The Store and NodeMeta of one incarnation of the node (stale once it crashes). */
  attach(clock: IncarnationClock): { store: Store; meta: NodeMeta } {
    return { store: new SimStore(this, clock), meta: new SimMeta(this, clock) };
  }
}

const ZEROS = new Uint8Array(64 * 1024);

/** Length of `b` without its trailing zero bytes (compared a chunk at a time, natively). */
export function trimmedLength(b: Uint8Array): number {
  let end = b.length;
  while (end > 0) {
    const n = Math.min(ZEROS.length, end);
    if (Buffer.compare(b.subarray(end - n, end), ZEROS.subarray(0, n)) !== 0) break;
    end -= n;
  }
  while (end > 0 && b[end - 1] === 0) end--;
  return end;
}

/** A private copy of `b` without its trailing zeros, for a new object (they read back as zeros anyway). */
function copyOf(b: Uint8Array): Buffer {
  return Buffer.from(b.subarray(0, trimmedLength(b)));
}

function hex(oid: bigint): string {
  return oid.toString(16).padStart(16, '0');
}

/** Runs `fn` when the operation completes in simulated time; a dead incarnation's operation never does. */
function complete<T>(disk: SimDisk, clock: IncarnationClock, fn: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    clock.setTimeout(() => {
      try {
        resolve(fn());
      } catch (err) {
        reject(err);
      }
    }, disk.latency());
  });
}

class SimStore implements Store {
  onEio: ((err: StoreError) => void) | null = null;

  constructor(
    private readonly disk: SimDisk,
    private readonly clock: IncarnationClock,
  ) {}

  private op<T>(name: string, fn: () => T): Promise<T> {
    return complete(this.disk, this.clock, () => {
      if (this.disk.faults.eio) {
        const err = Object.assign(new StoreError('EIO', `${name}: input/output error (simulated)`), { fsCode: 'EIO' });
        this.onEio?.(err);
        throw err;
      }
      return fn();
    });
  }

  async init(): Promise<void> {}

  setLayout(_layout: string): void {}

  exists(oid: bigint): Promise<boolean> {
    return this.op('exists', () => this.disk.objects.has(oid));
  }

  create(oid: bigint, objectSize: number, data: Uint8Array, offset: number): Promise<void> {
    const bytes = copyOf(data);
    return this.op('create', () => {
      if (offset + bytes.length > objectSize) throw new StoreError('INVALID', `write of ${bytes.length} at ${offset} exceeds object size ${objectSize}`);
      const old = this.disk.objects.get(oid)?.data.length ?? 0;
      if (this.disk.usedBytes() - old + offset + bytes.length > this.disk.faults.capacity) throw new StoreError('NO_SPACE', `create ${hex(oid)}: no space left on device`);
      if (this.disk.loseWrites) return;
      this.disk.trace?.(`create ${hex(oid)}`);
      const buf = Buffer.alloc(bytes.length > 0 ? offset + bytes.length : 0);
      bytes.copy(buf, offset);
      this.disk.objects.set(oid, { size: objectSize, data: buf });
    });
  }

  /** The simulated disk has no volatile cache: every write is durable when it completes. */
  flush(): Promise<void> {
    return this.op('flush', () => undefined);
  }

  write(oid: bigint, data: Uint8Array, offset: number): Promise<void> {
    const bytes = Buffer.from(data); // not trimmed: zeros written over data are data
    return this.op('write', () => {
      const o = this.disk.objects.get(oid);
      if (!o) throw new StoreError('NO_OBJ', `write ${hex(oid)}: no such object`);
      if (offset + bytes.length > o.size) throw new StoreError('INVALID', `write past the end of ${hex(oid)}`);
      if (this.disk.loseWrites) return;
      this.disk.trace?.(`write ${hex(oid)} +${offset} x${bytes.length}`);
      const end = offset + bytes.length;
      if (end > o.data.length) {
        if (this.disk.usedBytes() + end - o.data.length > this.disk.faults.capacity) throw new StoreError('NO_SPACE', `write ${hex(oid)}: no space left on device`);
        const grown = Buffer.alloc(end);
        o.data.copy(grown);
        o.data = grown;
      }
      bytes.copy(o.data, offset);
    });
  }

  read(oid: bigint, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.op('read', () => {
      const o = this.disk.objects.get(oid);
      if (!o) throw new StoreError('NO_OBJ', `read ${hex(oid)}: no such object`);
      // A fresh zeroed buffer comes from calloc (untouched pages cost nothing): only a caller's is cleared.
      const out = into ?? Buffer.alloc(length);
      const n = offset < o.data.length ? o.data.copy(out, 0, offset, Math.min(o.data.length, offset + length)) : 0;
      if (into) out.fill(0, n, length);
      return out;
    });
  }

  size(oid: bigint): Promise<number> {
    return this.op('size', () => {
      const o = this.disk.objects.get(oid);
      if (!o) throw new StoreError('NO_OBJ', `stat ${hex(oid)}: no such object`);
      return o.size;
    });
  }

  remove(oid: bigint): Promise<void> {
    return this.op('remove', () => {
      if (!this.disk.objects.delete(oid)) throw new StoreError('NO_OBJ', `remove ${hex(oid)}: no such object`);
      this.disk.trace?.(`remove ${hex(oid)}`);
    });
  }

  moveToStale(oid: bigint, epoch: number): Promise<void> {
    return this.op('moveToStale', () => {
      const o = this.disk.objects.get(oid);
      if (!o) throw new StoreError('NO_OBJ', `stale ${hex(oid)}: no such object`);
      this.disk.objects.delete(oid);
      this.disk.trace?.(`stale ${hex(oid)}.${epoch}`);
      this.disk.stale.set(`${hex(oid)}.${epoch}`, { oid, epoch, data: o.data });
    });
  }

  readStale(oid: bigint, length: number): Promise<{ data: Buffer; epoch: number }> {
    return this.op('readStale', () => {
      let best: { epoch: number; data: Buffer } | undefined;
      for (const s of this.disk.stale.values()) if (s.oid === oid && (!best || s.epoch > best.epoch)) best = s;
      if (!best) throw new StoreError('NO_OBJ', `stale ${hex(oid)}: no such object`);
      const out = Buffer.alloc(length);
      best.data.copy(out, 0, 0, Math.min(length, best.data.length));
      return { data: out, epoch: best.epoch };
    });
  }

  listStale(): Promise<bigint[]> {
    return this.op('listStale', () => [...new Set([...this.disk.stale.values()].map((s) => s.oid))]);
  }

  list(): Promise<bigint[]> {
    return this.op('list', () => [...this.disk.objects.keys()]);
  }

  wipe(): Promise<void> {
    return this.op('wipe', () => {
      this.disk.objects.clear();
      this.disk.stale.clear();
    });
  }

  usedBytes(): Promise<bigint> {
    return this.op('usedBytes', () => BigInt(this.disk.usedBytes()));
  }

  freeBytes(): Promise<bigint> {
    return this.op('freeBytes', () => BigInt(Math.max(0, this.disk.faults.capacity - this.disk.usedBytes())));
  }

  async close(): Promise<void> {}
}

class SimMeta implements NodeMeta {
  constructor(
    private readonly disk: SimDisk,
    private readonly clock: IncarnationClock,
  ) {}

  readConfig(): Promise<NodeConfig | null> {
    return complete(this.disk, this.clock, () => (this.disk.config ? decodeConfig(this.disk.config) : null));
  }

  writeConfig(c: NodeConfig): Promise<void> {
    const bytes = encodeConfig(c);
    return complete(this.disk, this.clock, () => void (this.disk.config = bytes));
  }

  writeEpochFile(epoch: number, nodes: readonly SdNode[], time: bigint): Promise<void> {
    const body = Buffer.alloc(nodes.length * 80 + 8);
    encodeSdNodes(nodes, body, 0);
    body.writeBigUInt64LE(time, nodes.length * 80);
    return complete(this.disk, this.clock, () => void this.disk.epochFiles.set(epoch, body));
  }

  readUnverified(): Promise<Map<bigint, number>> {
    return complete(this.disk, this.clock, () => decodeUnverified(this.disk.unverified));
  }

  writeUnverified(copies: ReadonlyMap<bigint, number>): Promise<void> {
    const text = encodeUnverified(copies);
    return complete(this.disk, this.clock, () => void (this.disk.unverified = text));
  }

  readEpochFiles(): Promise<Map<number, { nodes: SdNode[]; time: bigint }>> {
    return complete(this.disk, this.clock, () => {
      const out = new Map<number, { nodes: SdNode[]; time: bigint }>();
      for (const [e, b] of [...this.disk.epochFiles].sort((x, y) => x[0] - y[0])) {
        const n = (b.length - 8) / 80;
        out.set(e, { nodes: decodeSdNodes(b, n, 0), time: b.readBigUInt64LE(n * 80) });
      }
      return out;
    });
  }
}

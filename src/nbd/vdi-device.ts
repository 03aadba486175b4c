// A VDI opened the way QEMU's sheepdog driver (block/sheepdog.c, QEMU <= 5.2) opened it, over any
// SheepTransport: LOCK_VDI, then one READ_OBJ of the inode's header + data_vdi_id (4,198,968 bytes)
// kept in memory. Reads resolve objects through the cached index; writes create objects on first
// write, copy-on-write objects still owned by another VDI (a snapshot), and then record the new owner
// in the inode (the client, not the server, maintains data_vdi_id). A write refused with READONLY means
// a snapshot was taken while we were open: reload the inode (new working vid) and redo the write as COW.
// Layout and rules: /work/shared/sheepdog-protocol.md sections 5 and 11.
import { Flag, Op, Res, SD_INODE_DATA_INDEX, SD_INODE_DATA_VDI_ID_OFFSET, SD_INODE_HEADER_SIZE, SD_INODE_QEMU_SIZE, SD_DEFAULT_BLOCK_SIZE_SHIFT, SD_VDI_BITMAP_SIZE, StorePolicy, resultString } from '../proto/constants.js';
import { decodeInodeHeader, InodeOff, type InodeHeader } from '../proto/structs.js';
import { vidToDataOid, vidToVdiOid } from '../proto/oid.js';
import type { SheepTransport } from '../client/transport.js';
import type { SheepResponse } from '../client/sheep-client.js';
import { Errno, State } from './protocol.js';
import { sharedPayloads } from '../net/payload-pool.js';
import assert from 'node:assert/strict';

/** An export name: `NAME`, `NAME:SNAPID` (all digits) or `NAME:TAG`, as QEMU's legacy sheepdog: syntax. */
export interface ExportSpec {
  readonly name: string;
  readonly tag: string;
  readonly snapid: number;
  /** true when a snapshot was selected (tag or snapid): the export is read-only. */
  readonly snapshot: boolean;
}

export function parseExportName(exportName: string): ExportSpec {
  const colon = exportName.lastIndexOf(':');
  if (colon <= 0) return { name: exportName, tag: '', snapid: 0, snapshot: false };
  const name = exportName.slice(0, colon);
  const sel = exportName.slice(colon + 1);
  if (sel === '') return { name, tag: '', snapid: 0, snapshot: false };
  if (/^\d+$/.test(sel) && Number(sel) > 0 && Number(sel) <= 0xffffffff) return { name, tag: '', snapid: Number(sel), snapshot: true };
  return { name, tag: sel, snapid: 0, snapshot: true };
}

/** An I/O failure with the NBD errno to report and the Sheepdog result behind it (if any). */
export class VdiDeviceError extends Error {
  constructor(
    readonly errno: number,
    message: string,
    readonly result?: number,
  ) {
    super(message);
    this.name = 'VdiDeviceError';
  }
}

export function resultToErrno(result: number): number {
  switch (result) {
    case Res.NO_SPACE:
    case Res.FULL_VDI:
      return Errno.ENOSPC;
    case Res.READONLY:
      return Errno.EPERM;
    case Res.INVALID_PARMS:
      return Errno.EINVAL;
    case Res.NO_MEM:
      return Errno.ENOMEM;
    case Res.SHUTDOWN:
    case Res.KILLED:
      return Errno.ESHUTDOWN;
    default:
      return Errno.EIO;
  }
}

function fail(result: number, what: string): never {
  throw new VdiDeviceError(resultToErrno(result), `${what}: ${resultString(result)}`, result);
}

function nameTag(name: string, tag = ''): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 256, 'utf8');
  b.write(tag, 256, 256, 'utf8');
  return b;
}

/** What INFO / LIST need to know about an export without opening (locking) it. */
export interface VdiProbe {
  readonly vid: number;
  readonly size: bigint;
  readonly readOnly: boolean;
  readonly header: InodeHeader;
}

/**
 * GET_VDI_INFO (or LOCK_VDI) of an export. A name with a ':' that selects no snapshot of any VDI
 * (NO_VDI) is retried as a plain VDI name, so VDIs whose names contain ':' stay reachable.
 */
async function lookup(t: SheepTransport, exportName: string, lock: boolean): Promise<{ rsp: SheepResponse; spec: ExportSpec }> {
  const ask = (spec: ExportSpec) => t.request({ opcode: lock ? Op.LOCK_VDI : Op.GET_VDI_INFO, vdi: { snapid: spec.snapid, type: 0 } }, nameTag(spec.name, spec.tag));
  const spec = parseExportName(exportName);
  if (!spec.name) throw new VdiDeviceError(Errno.EINVAL, 'empty export name', Res.NO_VDI);
  const rsp = await ask(spec);
  if (rsp.result === Res.NO_VDI && spec.snapshot) {
    const plain: ExportSpec = { name: exportName, tag: '', snapid: 0, snapshot: false };
    const again = await ask(plain);
    if (again.result === Res.SUCCESS) return { rsp: again, spec: plain };
  }
  return { rsp, spec };
}

/** Looks an export up (GET_VDI_INFO + inode header), without locking it. */
export async function probeExport(t: SheepTransport, exportName: string): Promise<VdiProbe> {
  const { rsp: r, spec } = await lookup(t, exportName, false);
  if (r.result !== Res.SUCCESS) fail(r.result, `looking up ${exportName}`);
  const vid = r.raw.readUInt32LE(24);
  const h = await t.request({ opcode: Op.READ_OBJ, dataLength: SD_INODE_HEADER_SIZE, obj: { oid: vidToVdiOid(vid) } });
  if (h.result !== Res.SUCCESS) fail(h.result, `reading inode of ${exportName}`);
  const header = decodeInodeHeader(h.data);
  return { vid, size: header.vdiSize, readOnly: spec.snapshot || header.snapCtime !== 0n, header };
}

export interface ExportEntry {
  readonly name: string;
  readonly vid: number;
  readonly size: bigint;
  readonly snapshot: boolean;
}

/**
 * Every VDI as an export name: working VDIs by name, snapshots as NAME:SNAPID (READ_VDIS, then the
 * header of each in-use vid, as `dog vdi list` does).
 */
export async function listExports(t: SheepTransport, includeSnapshots = true): Promise<ExportEntry[]> {
  const bm = await t.request({ opcode: Op.READ_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
  if (bm.result !== Res.SUCCESS) fail(bm.result, 'reading the VDI bitmap');
  const vids: number[] = [];
  const bits = bm.data;
  for (let byte = 0; byte < bits.length; byte++) {
    const v = bits[byte]!;
    if (v === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (v & (1 << bit)) vids.push(byte * 8 + bit);
  }
  const out: Array<ExportEntry & { order: number }> = [];
  const BATCH = 32;
  for (let i = 0; i < vids.length; i += BATCH) {
    await Promise.all(
      vids.slice(i, i + BATCH).map(async (vid) => {
        const h = await t.request({ opcode: Op.READ_OBJ, dataLength: InodeOff.btreeCounter + 4, obj: { oid: vidToVdiOid(vid) } });
        if (h.result !== Res.SUCCESS) return;
        const hdr = decodeInodeHeader(h.data);
        if (!hdr.name) return; // deleted
        const snapshot = hdr.snapCtime !== 0n;
        if (snapshot && !includeSnapshots) return;
        out.push({ name: snapshot ? `${hdr.name}:${hdr.snapId}` : hdr.name, vid, size: hdr.vdiSize, snapshot, order: vid });
      }),
    );
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.order - b.order));
  return out.map(({ order: _o, ...e }) => e);
}

interface Piece {
  /** object index */
  idx: number;
  /** offset inside the object */
  inObj: number;
  len: number;
  /** offset of this piece inside the request */
  pos: number;
}

const MAX_RETRIES = 8;
/** How long a write that found its VDI turned into a snapshot waits for the new working VDI to appear. */
const RELOAD_WAIT_MS = 10_000;
const RELOAD_POLL_MS = 20;

/**
 * Write-back window of an open VDI: bytes of writes acknowledged before every replica has them. 32 MiB
 * keeps a client that writes one 2 MiB request at a time (qemu-img convert) streaming at disk speed.
 */
export const DEFAULT_WRITE_BACK_BYTES = 32 << 20;
export const MAX_WRITE_BACK_BYTES = 1 << 30;

interface PendingRange {
  readonly start: number;
  readonly end: number;
  /** resolves (never rejects) once the request has completed or failed */
  readonly settled: Promise<void>;
}

const noop = (): void => undefined;

/** One open VDI, shared by every NBD connection to the same export. */
export class VdiDevice {
  /** The working (or, for snapshot exports, the selected) VDI id; changes when a live snapshot is noticed. */
  vid = 0;
  /** the vid LOCK_VDI locked at open; RELEASE_VDI goes to it even after a reload moved `vid` on */
  private lockedVid = 0;
  header!: InodeHeader;
  /** cached data_vdi_id[] */
  private index = new Uint32Array(0);
  /** bumped on every inode reload; work begun under an older generation is redone */
  private generation = 0;
  private reloading: Promise<void> | null = null;
  /** per object index: held while an object is created / deallocated and its index entry updated */
  private readonly locks = new Map<number, Promise<void>>();
  /**
   * Writes, trims and zeroes not yet completed (any connection), in arrival order. A request touching
   * the range of an earlier one starts only once that one has completed, so an early-acknowledged
   * write is never overtaken by a later write, and reads see it. FLUSH waits for all of them.
   */
  private readonly pending = new Set<PendingRange>();
  /** bytes of writes acknowledged before they completed (the write-back window in use) */
  private writeBackBytes = 0;
  private readonly roomWaiters: Array<() => void> = [];
  /**
   * Failures of writes acknowledged early, by their sequence number: each reported once, by the first
   * FLUSH begun after the write, as a disk reports a failed write-back. While any is unreported, writes
   * are acknowledged only once complete.
   */
  private readonly deferredErrors: Array<{ seq: number; error: Error }> = [];
  /** writes acknowledged early so far; a FLUSH reports failures of those begun before it only */
  private earlySeq = 0;
  /**
   * Writes go out with Flag.WRITEBACK: the replicas may keep them in their page cache until FLUSH, as a
   * disk with a volatile write cache (NBD_FLAG_SEND_FLUSH) may. `unflushed`: some were sent since the
   * last cluster flush.
   */
  private unflushed = false;
  private zeroBuf: Buffer | null = null;
  private closed = false;
  readonly stats = { reads: 0, writes: 0, earlyAcks: 0, creates: 0, cows: 0, indexWrites: 0, reloads: 0 };

  private constructor(
    private readonly t: SheepTransport,
    readonly exportName: string,
    readonly spec: ExportSpec,
    private readonly log: (level: 'info' | 'warn' | 'error' | 'debug', msg: string) => void,
    /** most bytes of writes acknowledged before completing; 0 acknowledges every write once complete */
    readonly writeBackLimit: number,
  ) {
    assert(Number.isSafeInteger(writeBackLimit) && writeBackLimit >= 0 && writeBackLimit <= MAX_WRITE_BACK_BYTES, `write-back window ${writeBackLimit} out of range`);
  }

  /** LOCK_VDI + inode read, as QEMU's sd_open. */
  static async open(
    t: SheepTransport,
    exportName: string,
    log: (level: 'info' | 'warn' | 'error' | 'debug', msg: string) => void = () => undefined,
    writeBackLimit = DEFAULT_WRITE_BACK_BYTES,
  ): Promise<VdiDevice> {
    const { rsp: r, spec } = await lookup(t, exportName, true);
    const d = new VdiDevice(t, exportName, spec, log, writeBackLimit);
    if (r.result !== Res.SUCCESS) fail(r.result, `opening ${exportName}`);
    const vid = r.raw.readUInt32LE(24);
    d.lockedVid = vid;
    try {
      await d.loadInode(vid);
    } catch (e) {
      await d.release(vid).catch(() => undefined);
      throw e;
    }
    if (d.header.storePolicy === StorePolicy.HYPER) {
      await d.release(vid).catch(() => undefined);
      throw new VdiDeviceError(Errno.ENOTSUP, `${exportName} is a hyper volume (B-tree index), which the QEMU driver did not support`);
    }
    log('info', `nbd: opened ${exportName} (vid ${vid.toString(16)}, ${d.size} bytes, ${d.objectSize}-byte objects${d.readOnly ? ', read-only' : ''})`);
    return d;
  }

  get size(): number {
    return Number(this.header.vdiSize);
  }

  get readOnly(): boolean {
    return this.spec.snapshot || this.header.snapCtime !== 0n;
  }

  get objectSize(): number {
    return 2 ** (this.header.blockSizeShift || SD_DEFAULT_BLOCK_SIZE_SHIFT);
  }

  /** Index entry of object `idx` (0 = unallocated); for tests and block status. */
  entry(idx: number): number {
    return this.index[idx] ?? 0;
  }

  private async loadInode(vid: number): Promise<void> {
    const r = await this.t.request({ opcode: Op.READ_OBJ, dataLength: SD_INODE_QEMU_SIZE, obj: { oid: vidToVdiOid(vid) } });
    if (r.result !== Res.SUCCESS) fail(r.result, `reading inode ${vid.toString(16)}`);
    const header = decodeInodeHeader(r.data);
    const bss = header.blockSizeShift || SD_DEFAULT_BLOCK_SIZE_SHIFT;
    const n = Math.min(SD_INODE_DATA_INDEX, Math.ceil(Number(header.vdiSize) / 2 ** bss));
    const index = new Uint32Array(n);
    const d = r.data;
    for (let i = 0; i < n; i++) index[i] = d.readUInt32LE(SD_INODE_DATA_VDI_ID_OFFSET + 4 * i);
    this.header = header;
    this.index = index;
    this.vid = vid;
    this.generation++;
  }

  /** A write found our vid read-only (a snapshot was taken): find the new working VDI and re-read it. */
  private reload(failedVid: number): Promise<void> {
    if (this.vid !== failedVid) return Promise.resolve();
    if (this.reloading) return this.reloading;
    this.reloading = (async () => {
      // A snapshot marks the old inode before its successor is registered: wait for the successor.
      let vid = failedVid;
      for (let waited = 0; ; waited += RELOAD_POLL_MS) {
        const r = await this.t.request({ opcode: Op.GET_VDI_INFO, vdi: { snapid: 0 } }, nameTag(this.spec.name));
        // NO_VDI: the old one is marked, the new one not there yet (or the VDI is gone, once we give up)
        if (r.result !== Res.SUCCESS && (r.result !== Res.NO_VDI || waited >= RELOAD_WAIT_MS)) fail(r.result, `reloading ${this.spec.name}`);
        vid = r.result === Res.SUCCESS ? r.raw.readUInt32LE(24) : failedVid;
        if (vid !== failedVid) break;
        // The snapshot failed and was undone: our VDI is writable again; refresh its index and go on.
        if (r.result === Res.SUCCESS && !(await this.isSnapshotInode(failedVid))) break;
        if (waited >= RELOAD_WAIT_MS) throw new VdiDeviceError(Errno.EPERM, `${this.spec.name} (vid ${vid.toString(16)}) is read-only`, Res.READONLY);
        await new Promise((r) => setTimeout(r, RELOAD_POLL_MS));
      }
      await this.loadInode(vid);
      this.stats.reloads++;
      if (vid === failedVid) this.log('warn', `nbd: ${this.exportName}: a snapshot of vid ${vid.toString(16)} failed and was undone; continuing on it`);
      else this.log('info', `nbd: ${this.exportName}: a snapshot was taken; continuing on vid ${vid.toString(16)} (was ${failedVid.toString(16)})`);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async lock(idx: number): Promise<() => void> {
    for (;;) {
      const held = this.locks.get(idx);
      if (!held) break;
      await held;
    }
    let release!: () => void;
    this.locks.set(
      idx,
      new Promise<void>((r) => (release = r)),
    );
    return () => {
      this.locks.delete(idx);
      release();
    };
  }

  /** Locks several object indexes in ascending order (so two requests can never deadlock). */
  private async lockAll(idxs: number[]): Promise<() => void> {
    const sorted = [...new Set(idxs)].sort((a, b) => a - b);
    const releases: Array<() => void> = [];
    try {
      for (const i of sorted) releases.push(await this.lock(i));
    } catch (e) {
      for (const r of releases) r();
      throw e;
    }
    return () => {
      for (const r of releases) r();
    };
  }

  private split(offset: number, length: number): Piece[] {
    const os = this.objectSize;
    const out: Piece[] = [];
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const idx = Math.floor(pos / os);
      const inObj = pos - idx * os;
      const len = Math.min(os - inObj, length - done);
      out.push({ idx, inObj, len, pos: done });
      done += len;
    }
    return out;
  }

  private checkRange(offset: number, length: number, write: boolean): void {
    if (this.closed) throw new VdiDeviceError(Errno.ESHUTDOWN, `${this.exportName} is closed`);
    if (offset < 0 || length < 0 || offset + length > this.size) throw new VdiDeviceError(write ? Errno.ENOSPC : Errno.EINVAL, `range ${offset}+${length} is beyond the end of ${this.exportName} (${this.size} bytes)`);
    if (write && this.readOnly) throw new VdiDeviceError(Errno.EPERM, `${this.exportName} is a read-only snapshot`);
  }

  /** Promise of the completion of every pending request overlapping [offset, offset+length), if any. */
  private overlapping(offset: number, length: number): Promise<unknown> | undefined {
    const end = offset + length;
    let deps: Array<Promise<void>> | undefined;
    for (const r of this.pending) if (r.start < end && offset < r.end) (deps ??= []).push(r.settled);
    return deps && (deps.length === 1 ? deps[0] : Promise.all(deps));
  }

  /** Runs a mutating request once every earlier overlapping one has completed; FLUSH waits for it. */
  private ordered(offset: number, length: number, run: () => Promise<void>): Promise<void> {
    const before = this.overlapping(offset, length);
    const p = before ? before.then(run) : run();
    const range: PendingRange = { start: offset, end: offset + length, settled: p.then(noop, noop) };
    this.pending.add(range);
    void range.settled.then(() => this.pending.delete(range));
    return p;
  }

  private zeros(len: number): Buffer {
    if (!this.zeroBuf || this.zeroBuf.length < len) this.zeroBuf = Buffer.alloc(Math.max(len, this.objectSize));
    return this.zeroBuf.subarray(0, len);
  }

  // ---- reads ------------------------------------------------------------------------------------

  /** Reads `length` bytes at `offset`; unallocated objects read as zeros. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.checkRange(offset, length, false);
    this.stats.reads++;
    const before = this.overlapping(offset, length);
    if (before) await before; // an acknowledged write still on its way: read what it wrote
    const pieces = this.split(offset, length);
    if (pieces.length === 1) return this.readPiece(pieces[0]!);
    const out = Buffer.allocUnsafe(length);
    await Promise.all(
      pieces.map(async (p) => {
        const b = await this.readPiece(p);
        b.copy(out, p.pos, 0, p.len);
        sharedPayloads.release(b); // a pooled buffer of an O_DIRECT read: no longer referenced
      }),
    );
    return out;
  }

  private async readPiece(p: Piece): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const owner = this.index[p.idx]!;
      if (owner === 0) return Buffer.alloc(p.len);
      const oid = vidToDataOid(owner, p.idx);
      const r = await this.t.request({ opcode: Op.READ_OBJ, dataLength: p.len, obj: { oid, offset: p.inObj, copies: this.header.nrCopies } });
      if (r.result === Res.SUCCESS) {
        if (r.data.length >= p.len) return r.data.length === p.len ? r.data : r.data.subarray(0, p.len);
        const b = Buffer.alloc(p.len);
        r.data.copy(b);
        return b;
      }
      // The object went away under us (a concurrent trim reclaimed it, or a reload moved the index): re-resolve.
      if (r.result === Res.NO_OBJ && this.index[p.idx] !== owner && attempt < MAX_RETRIES) continue;
      fail(r.result, `reading object ${oid.toString(16)}`);
    }
  }

  // ---- writes -----------------------------------------------------------------------------------

  /**
   * Writes `data` at `offset`. Without `writeBack` this resolves once every replica has the data. With
   * it, it may resolve as soon as the write has been started, while the window has room: a volatile
   * write cache, as NBD allows (the client's FLUSH waits for it; reads and later writes of the range
   * are ordered after it). `onSettled` runs once the write has completed or failed and `data` is no
   * longer referenced.
   */
  write(offset: number, data: Uint8Array, opts: { writeBack?: boolean; onSettled?: () => void } = {}): Promise<void> {
    try {
      this.checkRange(offset, data.length, true);
    } catch (e) {
      opts.onSettled?.();
      return Promise.reject(e);
    }
    this.stats.writes++;
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const done = this.ordered(offset, data.length, () => this.writePieces(this.split(offset, data.length), (p) => buf.subarray(p.pos, p.pos + p.len)));
    if (opts.onSettled) void done.then(opts.onSettled, opts.onSettled);
    const early = opts.writeBack === true && this.deferredErrors.length === 0 && data.length <= this.writeBackLimit;
    return early ? this.acknowledgeEarly(done, data.length) : done;
  }

  /**
   * Resolves once the window has room for a write in progress (it then counts against the window until
   * complete), or with the write's own outcome if it completes first.
   */
  private async acknowledgeEarly(done: Promise<void>, length: number): Promise<void> {
    let settled = false;
    const finished = done.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    while (this.writeBackBytes + length > this.writeBackLimit) {
      await Promise.race([finished, new Promise<void>((wake) => this.roomWaiters.push(wake))]);
      if (settled) return done;
    }
    this.writeBackBytes += length;
    this.stats.earlyAcks++;
    const seq = ++this.earlySeq;
    void done
      .catch((e: unknown) => {
        this.log('error', `nbd: ${this.exportName}: an acknowledged write failed; the next flush reports it: ${(e as Error)?.message ?? e}`);
        this.deferredErrors.push({ seq, error: e instanceof Error ? e : new VdiDeviceError(Errno.EIO, String(e)) });
      })
      .finally(() => {
        this.writeBackBytes -= length;
        assert(this.writeBackBytes >= 0, 'write-back window accounting went negative');
        for (const wake of this.roomWaiters.splice(0)) wake();
      });
  }

  /**
   * Zeroes a range. `mayDeallocate` (TRIM, or WRITE_ZEROES without NO_HOLE): objects covered entirely
   * get their index entry cleared (the server reclaims them), partly covered allocated objects get
   * zeros written, unallocated ones are left alone. Without it (NO_HOLE) zeros are written everywhere.
   */
  zero(offset: number, length: number, mayDeallocate: boolean): Promise<void> {
    try {
      this.checkRange(offset, length, true);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.ordered(offset, length, () => this.zeroPieces(this.split(offset, length), mayDeallocate));
  }

  private async zeroPieces(pieces: Piece[], mayDeallocate: boolean): Promise<void> {
    const zero = (p: Piece) => this.zeros(p.len);
    if (!mayDeallocate) return this.writePieces(pieces, zero);
    const os = this.objectSize;
    const whole: Piece[] = [];
    const partial: Piece[] = [];
    for (const p of pieces) {
      const objEnd = Math.min(os, this.size - p.idx * os);
      (p.inObj === 0 && p.len >= objEnd ? whole : partial).push(p);
    }
    await Promise.all([whole.length ? this.deallocate(whole.map((p) => p.idx)) : undefined, partial.length ? this.writePieces(partial, zero, true) : undefined]);
  }

  /** Clears the index entries of whole objects (coalesced into runs), as QEMU's discard did. */
  private async deallocate(idxs: number[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (attempt > MAX_RETRIES) throw new VdiDeviceError(Errno.EIO, `${this.exportName}: the inode kept changing while discarding`);
      const unlock = await this.lockAll(idxs);
      let snapshotVid = 0;
      try {
        const vid = this.vid;
        const gen = this.generation;
        const clear = idxs.filter((i) => this.index[i] !== 0).sort((a, b) => a - b);
        if (clear.length === 0) return;
        // Never clear entries in a snapshot's inode: if ours became one, move to the new working VDI first.
        if (await this.isSnapshotInode(vid)) {
          snapshotVid = vid;
        } else {
          // Whole objects of one request are contiguous and all locked, so one run from the first to the
          // last allocated entry is safe (entries in between are already 0).
          const span: number[] = [];
          for (let i = clear[0]!; i <= clear[clear.length - 1]!; i++) span.push(i);
          await this.writeIndexRuns(vid, span, 0);
          // Made a snapshot meanwhile (its successor may have copied the entries before we cleared
          // them): clear them in the new working VDI too. Until then its copied entries may name objects
          // the cleared snapshot entries let the cluster reclaim: a discard racing a snapshot.
          if (await this.isSnapshotInode(vid)) snapshotVid = vid;
          else if (this.generation === gen) {
            for (const i of clear) this.index[i] = 0;
            return;
          }
        }
      } finally {
        unlock();
      }
      if (snapshotVid) await this.reload(snapshotVid);
    }
  }

  private async isSnapshotInode(vid: number): Promise<boolean> {
    const r = await this.t.request({ opcode: Op.READ_OBJ, dataLength: 8, obj: { oid: vidToVdiOid(vid), offset: InodeOff.snapCtime } });
    if (r.result !== Res.SUCCESS) fail(r.result, `reading inode ${vid.toString(16)}`);
    return r.data.readBigUInt64LE(0) !== 0n;
  }

  /** Writes data_vdi_id[i] = value for the given (sorted) indexes, one WRITE_OBJ per run of consecutive entries. */
  private async writeIndexRuns(vid: number, idxs: number[], value: number | ((i: number) => number)): Promise<void> {
    const runs: Array<[number, number]> = [];
    for (const i of idxs) {
      const last = runs[runs.length - 1];
      if (last && last[1] === i) last[1] = i + 1;
      else runs.push([i, i + 1]);
    }
    await Promise.all(
      runs.map(async ([start, end]) => {
        const b = Buffer.alloc(4 * (end - start));
        for (let i = start; i < end; i++) b.writeUInt32LE(typeof value === 'number' ? value : value(i), 4 * (i - start));
        this.stats.indexWrites++;
        const r = await this.sendWrite({ opcode: Op.WRITE_OBJ, flags: Flag.WRITEBACK, obj: { oid: vidToVdiOid(vid), offset: SD_INODE_DATA_VDI_ID_OFFSET + 4 * start, copies: this.header.nrCopies } }, b);
        if (r.result !== Res.SUCCESS) fail(r.result, `updating index entries ${start}..${end - 1} of ${vid.toString(16)}`);
      }),
    );
  }

  /**
   * The write path for a set of pieces. Pieces on objects we own go straight out as WRITE_OBJ;
   * the others are created (CREATE_AND_WRITE_OBJ, COW from the current owner when there is one)
   * while holding their object locks, and the index entries are recorded. READONLY (a live
   * snapshot) reloads the inode and redoes the affected pieces.
   */
  private async writePieces(pieces: Piece[], dataOf: (p: Piece) => Buffer, skipUnallocated = false): Promise<void> {
    let pending = pieces;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > MAX_RETRIES) throw new VdiDeviceError(Errno.EIO, `${this.exportName}: write kept being refused after ${MAX_RETRIES} inode reloads`);
      const vid = this.vid;
      const retry: Piece[] = [];
      let readonly = false;
      const own: Piece[] = [];
      const alloc: Piece[] = [];
      for (const p of pending) {
        const e = this.index[p.idx]!;
        if (skipUnallocated && e === 0 && !this.locks.has(p.idx)) continue;
        (e === vid && !this.locks.has(p.idx) ? own : alloc).push(p);
      }
      const results = await Promise.allSettled([
        ...own.map(async (p) => {
          const r = await this.writeObj(vid, p, dataOf(p));
          if (r === Res.SUCCESS) return;
          if (r === Res.READONLY) readonly = true;
          if (r === Res.READONLY || r === Res.NO_OBJ) retry.push(p);
          else fail(r, `writing object ${vidToDataOid(vid, p.idx).toString(16)}`);
        }),
        alloc.length ? this.allocate(alloc, dataOf, skipUnallocated, retry).then((ro) => void (readonly ||= ro)) : undefined,
      ]);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      if (readonly) await this.reload(vid);
      pending = retry;
    }
  }

  /**
   * A writeback write (it may sit in the replicas' page cache until FLUSH_VDI). Marked unflushed when it
   * starts and again when it completes: a cluster flush that ran meanwhile may not have covered it.
   */
  private async sendWrite(init: Parameters<SheepTransport['request']>[0], data: Uint8Array): Promise<SheepResponse> {
    this.unflushed = true;
    const r = await this.t.request(init, data);
    this.unflushed = true;
    return r;
  }

  private async writeObj(vid: number, p: Piece, data: Buffer): Promise<number> {
    const r = await this.sendWrite({ opcode: Op.WRITE_OBJ, flags: Flag.WRITEBACK, obj: { oid: vidToDataOid(vid, p.idx), offset: p.inObj, copies: this.header.nrCopies } }, data);
    return r.result;
  }

  /** Creates (or COWs) the objects of `pieces` under their locks and records them in the index. Returns true on READONLY. */
  private async allocate(pieces: Piece[], dataOf: (p: Piece) => Buffer, skipUnallocated: boolean, retry: Piece[]): Promise<boolean> {
    const unlock = await this.lockAll(pieces.map((p) => p.idx));
    try {
      const vid = this.vid;
      const gen = this.generation;
      let readonly = false;
      const created: number[] = [];
      const done: Piece[] = [];
      const results = await Promise.allSettled(
        pieces.map(async (p) => {
          const owner = this.index[p.idx]!;
          if (owner === 0 && skipUnallocated) return;
          let r: number;
          if (owner === vid) {
            r = await this.writeObj(vid, p, dataOf(p));
          } else {
            const oid = vidToDataOid(vid, p.idx);
            const cow = owner !== 0;
            if (cow) this.stats.cows++;
            else this.stats.creates++;
            const rsp = await this.sendWrite(
              {
                opcode: Op.CREATE_AND_WRITE_OBJ,
                flags: Flag.WRITEBACK | (cow ? Flag.CMD_COW : 0),
                obj: { oid, cowOid: cow ? vidToDataOid(owner, p.idx) : 0n, offset: p.inObj, copies: this.header.nrCopies },
              },
              dataOf(p),
            );
            r = rsp.result;
            if (r === Res.SUCCESS) created.push(p.idx);
          }
          if (r === Res.SUCCESS) return void done.push(p);
          if (r === Res.READONLY) {
            readonly = true;
            retry.push(p);
            return;
          }
          if (r === Res.NO_OBJ && owner === vid) return void retry.push(p);
          fail(r, `writing object ${vidToDataOid(vid, p.idx).toString(16)}`);
        }),
      );
      if (created.length > 0) {
        created.sort((a, b) => a - b);
        // The inode may have become a snapshot meanwhile (dog vdi snapshot): refused (READONLY), or
        // written but marked, in which case the new working VDI may lack these entries. Either way the
        // pieces are redone there (COW from what we wrote).
        try {
          await this.writeIndexRuns(vid, created, vid);
        } catch (e) {
          if (!(e instanceof VdiDeviceError && e.result === Res.READONLY)) throw e;
          readonly = true;
        }
        if (!readonly && this.generation === gen && (await this.isSnapshotInode(vid))) readonly = true;
        if (this.generation === gen && !readonly) for (const i of created) this.index[i] = vid;
        if (this.generation !== gen || readonly) {
          readonly = true;
          for (const p of done) if (created.includes(p.idx)) retry.push(p);
        }
      }
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      return readonly;
    } finally {
      unlock();
    }
  }

  // ---- flush / status / close ---------------------------------------------------------------------

  /**
   * Completes once every write, trim and zero begun before it (on any connection) has completed and is
   * durable on every replica.
   */
  async flush(): Promise<void> {
    const upTo = this.earlySeq;
    await this.settle();
    // Failures of writes acknowledged before this flush began are reported here, once (as fsync reports
    // a failed write-back); a later write's failure waits for a flush that covers it.
    const mine = this.deferredErrors.findIndex((f) => f.seq <= upTo);
    if (mine >= 0) {
      const { error } = this.deferredErrors[mine]!;
      for (let i = this.deferredErrors.length - 1; i >= 0; i--) if (this.deferredErrors[i]!.seq <= upTo) this.deferredErrors.splice(i, 1);
      throw error;
    }
    await this.commit();
  }

  /** Completes once every write, trim and zero begun before it has completed (visible to every reader). */
  async settle(): Promise<void> {
    if (this.pending.size > 0) await Promise.all([...this.pending].map((r) => r.settled));
  }

  /** true while writes, trims or zeroes are in progress */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** Makes every completed write durable (FUA, or the end of a flush): one cluster-wide flush. */
  async commit(): Promise<void> {
    if (!this.unflushed) return;
    this.unflushed = false;
    const r = await this.t.request({ opcode: Op.FLUSH_VDI, flags: Flag.WRITEBACK });
    if (r.result !== Res.SUCCESS) {
      this.unflushed = true;
      fail(r.result, `flushing ${this.exportName}`);
    }
  }

  /** base:allocation extents for [offset, offset+length): unallocated objects are HOLE|ZERO. */
  async extents(offset: number, length: number, one: boolean): Promise<Array<{ length: number; flags: number }>> {
    this.checkRange(offset, length, false);
    const before = this.overlapping(offset, length);
    if (before) await before; // a write still on its way may allocate objects of the range
    const os = this.objectSize;
    const end = offset + length;
    const out: Array<{ length: number; flags: number }> = [];
    let pos = offset;
    while (pos < end) {
      const idx = Math.floor(pos / os);
      const flags = this.index[idx] === 0 ? State.HOLE | State.ZERO : 0;
      let next = Math.min(end, (idx + 1) * os);
      let j = idx + 1;
      while (next < end && (this.index[j] === 0 ? State.HOLE | State.ZERO : 0) === flags) {
        next = Math.min(end, (j + 1) * os);
        j++;
      }
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += next - pos;
      else out.push({ length: next - pos, flags });
      if (one) break;
      pos = next;
    }
    return out;
  }

  private async release(vid: number): Promise<void> {
    const name = Buffer.from(`${this.spec.name}\0`, 'utf8');
    const r = await this.t.request({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: vid, type: 0 } }, name);
    if (r.result !== Res.SUCCESS && r.result !== Res.VDI_NOT_LOCKED) this.log('warn', `nbd: releasing ${this.exportName}: ${resultString(r.result)}`);
  }

  /** Waits for writes in flight, then RELEASE_VDI. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } catch (e) {
      this.log('error', `nbd: closing ${this.exportName}: the final flush failed: ${(e as Error)?.message ?? e}`);
    }
    this.closed = true;
    // QEMU released its current vid; after a live snapshot that leaves the lock on the (old) vid it
    // took, so release the vid we locked. Never release a vid we did not lock: that would drop
    // another owner's lock.
    await this.release(this.lockedVid);
    this.log('info', `nbd: closed ${this.exportName} (vid ${this.vid.toString(16)})`);
  }
}

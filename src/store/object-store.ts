// The node-local object store in Sheepdog's "plain" layout: DIR/obj/<oid as 16 hex digits>, sparse files
// of the object's full size, stale copies in DIR/obj/.stale/<oid>.<epoch>. A new object is written to a
// temporary file, synced and renamed into place, so a crash never leaves a torn object under its real name.
// Writes are durable before the reply (unless the node runs with -n): files are opened O_DSYNC, so one
// pwrite is one trip through libuv's thread pool instead of a write and an fdatasync.
import type { Store, WriteOptions } from './store.js';
import { constants as fsc, promises as fsp, close, fdatasync, fsync, open, read, write, ftruncate } from 'node:fs';
import { dirname, join } from 'node:path';
import { isAttrObj, isVdiObj, isVmstateObj } from '../proto/oid.js';
import { keyName, keyOid, parseKeyName } from './strip-key.js';
import { DIRECT_ALIGNMENT, isDirectAligned, sharedPayloads } from '../net/payload-pool.js';

/**
 * Writes at least this large, aligned in memory and on disk, bypass the page cache (O_DIRECT): copying
 * them into it was the largest CPU cost of large writes, and a just-written object is rarely read back
 * soon by the node that stores it (the VM keeps its own cache). Smaller writes stay buffered.
 */
export const DIRECT_MIN_BYTES = 256 << 10;

export class StoreError extends Error {
  constructor(
    readonly code: 'NO_OBJ' | 'EIO' | 'NO_SPACE' | 'INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
  /** For an EIO: the system error code behind it (EIO, EROFS, EMFILE...), so a failing disk can be told apart. */
  fsCode?: string;
  /**
   * The failing disk was taken out of a multi-disk node, which stays in the cluster: the request can be
   * retried (Sheepdog's md_handle_eio answers NETWORK_ERROR, "fool the requester to retry").
   */
  diskRemoved?: boolean;
}

/** The file name of a store key: `<oid>` for a whole object, `<oid>_<ec_index>` for an EC strip. */
export function oidHex(key: bigint): string {
  return keyName(key);
}

/** The file calls of the store. A test replaces `open` to act out a filesystem that refuses O_DIRECT. */
export const storeFiles = {
  open: (path: string, flags: number, mode = 0o644) =>
    new Promise<number>((res, rej) => open(path, flags, mode, (e, fd) => (e ? rej(e) : res(fd)))),
  close: (fd: number) => new Promise<void>((res, rej) => close(fd, (e) => (e ? rej(e) : res()))),
  read: (fd: number, buf: Uint8Array, off: number, len: number, pos: number) =>
    new Promise<number>((res, rej) => read(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n)))),
  write: (fd: number, buf: Uint8Array, off: number, len: number, pos: number) =>
    new Promise<number>((res, rej) => write(fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res(n)))),
  fsync: (fd: number) => new Promise<void>((res, rej) => fsync(fd, (e) => (e ? rej(e) : res()))),
  fdatasync: (fd: number) => new Promise<void>((res, rej) => fdatasync(fd, (e) => (e ? rej(e) : res()))),
  ftruncate: (fd: number, len: number) => new Promise<void>((res, rej) => ftruncate(fd, len, (e) => (e ? rej(e) : res()))),
};
const p = storeFiles;

function mapFsError(err: unknown, what: string): StoreError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new StoreError('NO_OBJ', `${what}: no such object`);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreError('NO_SPACE', `${what}: no space left on device`);
  return Object.assign(new StoreError('EIO', `${what}: ${(err as Error)?.message ?? String(err)}`), { fsCode: code });
}

/**
 * Fills `buf` from `fd` at `offset`; bytes past the file's end read as zeros. With `direct` (an O_DIRECT
 * descriptor) a short read is the file's end, since a next read from an unaligned position would fail.
 */
async function readFully(fd: number, buf: Buffer, offset: number, direct: boolean): Promise<Buffer> {
  let done = 0;
  while (done < buf.length) {
    const n = await p.read(fd, buf, done, buf.length - done, offset + done);
    done += n;
    if (n === 0 || (direct && n % DIRECT_ALIGNMENT !== 0)) break;
  }
  if (done < buf.length) buf.fill(0, done);
  return buf;
}

/** Keeps recently used object files open: 4 KiB random I/O must not pay open+close each time. */
class FdCache {
  private readonly fds = new Map<string, { fd: number; users: number }>();
  constructor(
    private readonly limit: number,
    private readonly openFlags: number,
  ) {}

  async acquire(path: string): Promise<number> {
    const hit = this.fds.get(path);
    if (hit) {
      // refresh LRU position
      this.fds.delete(path);
      this.fds.set(path, hit);
      hit.users++;
      return hit.fd;
    }
    const fd = await p.open(path, this.openFlags);
    const raced = this.fds.get(path);
    if (raced) {
      await p.close(fd);
      raced.users++;
      return raced.fd;
    }
    this.fds.set(path, { fd, users: 1 });
    this.evict();
    return fd;
  }

  release(path: string): void {
    const e = this.fds.get(path);
    if (e) e.users--;
  }

  /** Forget a path (removed or renamed over): closes the fd once idle. */
  async drop(path: string): Promise<void> {
    const e = this.fds.get(path);
    if (!e) return;
    this.fds.delete(path);
    if (e.users <= 0) await p.close(e.fd).catch(() => undefined);
    else setTimeout(() => void p.close(e.fd).catch(() => undefined), 1000).unref();
  }

  private evict(): void {
    for (const [path, e] of this.fds) {
      if (this.fds.size <= this.limit) break;
      if (e.users > 0) continue;
      this.fds.delete(path);
      void p.close(e.fd).catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.fds.values()];
    this.fds.clear();
    await Promise.all(all.map((e) => p.close(e.fd).catch(() => undefined)));
  }
}

/** The operations that fail while EIO is injected and report disk failures (every one but init and close). */
const EIO_GUARDED = ['exists', 'create', 'write', 'flush', 'read', 'size', 'remove', 'moveToStale', 'readStale', 'listStale', 'list', 'wipe', 'usedBytes', 'freeBytes'] as const;
/** Errors that mean the disk itself is failing (not EMFILE, EACCES...: those are not a reason to leave). */
const DISK_FAILURE_CODES = new Set(['EIO', 'EROFS', 'ENXIO', 'ENODEV']);

export interface ObjectStoreOptions {
  /** No synchronous writes (sheep -n): faster, not crash-safe. */
  readonly noSync?: boolean;
  readonly fdCacheSize?: number;
  /** Where objects live; default DIR/obj. A disk of a multi-disk node keeps them at its top level. */
  readonly objDir?: string;
}

export class ObjectStore implements Store {
  readonly objDir: string;
  readonly staleDir: string;
  private readonly fds: FdCache;
  /** Descriptors without O_DSYNC, for writeback writes (made durable by flush). */
  private readonly cachedFds: FdCache;
  /** Objects and directories with writeback writes not yet flushed. */
  private dirtyFiles = new Set<string>();
  private dirtyDirs = new Set<string>();
  private tmpSeq = 0;
  /** Cleared when the filesystem refuses O_DIRECT (tmpfs): every write is buffered from then on. */
  private directOk = true;
  /** Writes and reads that went through O_DIRECT (tests, and a check that the fast path is in use). */
  directWrites = 0;
  directReads = 0;
  private dirFd: number | undefined;
  /** Called when an operation fails because the disk does (EIO, EROFS..., or injected): the sheep leaves the cluster. */
  onEio: ((err: StoreError) => void) | null = null;
  private eioInjected = false;

  constructor(
    readonly baseDir: string,
    private readonly opts: ObjectStoreOptions = {},
  ) {
    this.objDir = opts.objDir ?? join(baseDir, 'obj');
    this.staleDir = join(this.objDir, '.stale');
    this.fds = new FdCache(opts.fdCacheSize ?? 512, fsc.O_RDWR | (opts.noSync ? 0 : fsc.O_DSYNC));
    this.cachedFds = opts.noSync ? this.fds : new FdCache(opts.fdCacheSize ?? 512, fsc.O_RDWR);
    for (const name of EIO_GUARDED) this.guardEio(name);
  }

  /**
   * Test hook (fault injection): while on, every store operation except init and close fails with EIO, as
   * on a dying disk. The sheep CLI turns it on at SIGUSR2 (test/disk-eio.test.ts).
   */
  injectEio(on: boolean): void {
    this.eioInjected = on;
  }

  /** Routes operation `name` through the injection switch, and reports disk failures to onEio. */
  private guardEio(name: (typeof EIO_GUARDED)[number]): void {
    const op = this[name] as (...args: unknown[]) => Promise<unknown>;
    (this as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      try {
        if (this.eioInjected) throw Object.assign(new StoreError('EIO', `${name}: input/output error (injected)`), { fsCode: 'EIO' });
        return await op.apply(this, args);
      } catch (err) {
        const code = err instanceof StoreError ? err.fsCode : (err as NodeJS.ErrnoException)?.code;
        if (code && DISK_FAILURE_CODES.has(code)) this.onEio?.(err instanceof StoreError ? err : Object.assign(new StoreError('EIO', `${name}: ${(err as Error).message}`), { fsCode: code }));
        throw err;
      }
    };
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.staleDir, { recursive: true });
    // Clean temporaries left by a crash (in either layout): they were never acknowledged.
    for (const ent of await fsp.readdir(this.objDir, { withFileTypes: true })) {
      if (ent.name.includes('.tmp')) await fsp.rm(join(this.objDir, ent.name), { force: true });
      else if (ent.isDirectory() && (ent.name === 'meta' || /^[0-9a-f]{2}$/.test(ent.name))) {
        for (const name of await fsp.readdir(join(this.objDir, ent.name))) if (name.includes('.tmp')) await fsp.rm(join(this.objDir, ent.name, name), { force: true });
      }
    }
    this.dirFd = await p.open(this.objDir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  }

  /**
   * Sheepdog's layouts: "plain" keeps every object in obj/; "tree" puts inode, vmstate and attribute
   * objects in obj/meta/ and the others in obj/<low byte of the VDI id as 2 hex digits>/.
   */
  layout: 'plain' | 'tree' = 'plain';

  setLayout(layout: string): void {
    if (layout !== 'plain' && layout !== 'tree') throw new StoreError('INVALID', `unknown store layout "${layout}"`);
    this.layout = layout;
  }

  path(oid: bigint): string {
    if (this.layout === 'plain') return join(this.objDir, oidHex(oid));
    return join(this.objDir, this.treeDir(oid), oidHex(oid));
  }

  private treeDir(key: bigint): string {
    const oid = keyOid(key); // an EC strip lives beside where its whole object would
    if (isVdiObj(oid) || isVmstateObj(oid) || isAttrObj(oid)) return 'meta';
    return ((oid >> 32n) & 0xffn).toString(16).padStart(2, '0');
  }

  /** Every object file path under obj/, in either layout (stale copies and temporaries excluded). */
  private async objectFiles(): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for (const ent of await fsp.readdir(this.objDir, { withFileTypes: true })) {
      if (ent.isFile() && parseKeyName(ent.name) !== null) out.push([join(this.objDir, ent.name), ent.name]);
      else if (ent.isDirectory() && (ent.name === 'meta' || /^[0-9a-f]{2}$/.test(ent.name))) {
        for (const name of await fsp.readdir(join(this.objDir, ent.name))) {
          if (parseKeyName(name) !== null) out.push([join(this.objDir, ent.name, name), name]);
        }
      }
    }
    return out;
  }

  private readonly madeDirs = new Set<string>();

  /** The directory a new object goes to exists; in the tree layout its entries are synced too. */
  private async prepareDir(final: string): Promise<string> {
    const dir = dirname(final);
    if (dir !== this.objDir && !this.madeDirs.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    return dir;
  }

  private async syncDir(dir: string): Promise<void> {
    if (this.opts.noSync) return;
    if (dir === this.objDir && this.dirFd !== undefined) return p.fsync(this.dirFd);
    const fd = await p.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      await p.fsync(fd);
    } finally {
      await p.close(fd);
    }
  }

  async exists(oid: bigint): Promise<boolean> {
    try {
      await fsp.access(this.path(oid));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Creates an object of `objectSize` bytes (sparse) holding `data` at `offset`. If it already exists it is
   * replaced atomically. Durable before returning unless noSync.
   */
  async create(oid: bigint, objectSize: number, data: Uint8Array, offset: number, opts: WriteOptions = {}): Promise<void> {
    if (offset + data.length > objectSize) throw new StoreError('INVALID', `write of ${data.length} at ${offset} exceeds object size ${objectSize}`);
    const final = this.path(oid);
    const tmp = `${final}.tmp${this.tmpSeq++}`;
    const sync = !this.opts.noSync && !opts.writeback;
    let fd: number | undefined;
    try {
      const dir = await this.prepareDir(final);
      const flags = fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC | (sync ? fsc.O_DSYNC : 0);
      const direct = this.canWriteDirect(data, offset);
      fd = await this.openMaybeDirect(tmp, flags, direct);
      await p.ftruncate(fd, objectSize);
      await this.writeAll(fd, data, offset);
      if (direct && this.directOk) this.directWrites++;
      await p.close(fd);
      fd = undefined;
      await this.dropFds(final);
      await fsp.rename(tmp, final);
      if (sync) await this.syncDir(dir);
      else if (!this.opts.noSync) {
        this.dirtyFiles.add(final);
        this.dirtyDirs.add(dir);
      }
    } catch (err) {
      if (fd !== undefined) await p.close(fd).catch(() => undefined);
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw mapFsError(err, `create ${oidHex(oid)}`);
    }
  }

  /** Overwrites part of an existing object. NO_OBJ if absent. */
  async write(oid: bigint, data: Uint8Array, offset: number, opts: WriteOptions = {}): Promise<void> {
    const path = this.path(oid);
    if (this.canWriteDirect(data, offset)) return this.writeDirect(oid, path, data, offset, opts);
    const fds = opts.writeback ? this.cachedFds : this.fds;
    let fd: number;
    try {
      fd = await fds.acquire(path);
    } catch (err) {
      throw mapFsError(err, `write ${oidHex(oid)}`);
    }
    try {
      await this.writeAll(fd, data, offset);
      if (opts.writeback && !this.opts.noSync) this.dirtyFiles.add(path);
    } catch (err) {
      throw mapFsError(err, `write ${oidHex(oid)}`);
    } finally {
      fds.release(path);
    }
  }

  /** A large write whose buffer, offset and length suit O_DIRECT, on a filesystem that allows it. */
  private canWriteDirect(data: Uint8Array, offset: number): boolean {
    return this.directOk && data.length >= DIRECT_MIN_BYTES && data.length % DIRECT_ALIGNMENT === 0 && offset % DIRECT_ALIGNMENT === 0 && isDirectAligned(data);
  }

  /** Opens with O_DIRECT when `direct`; a filesystem that refuses it (EINVAL) turns direct writes off. */
  private async openMaybeDirect(path: string, flags: number, direct: boolean): Promise<number> {
    if (!direct) return p.open(path, flags);
    try {
      return await p.open(path, flags | fsc.O_DIRECT);
    } catch (err) {
      if ((err as NodeJS.ErrnoException)?.code !== 'EINVAL') throw err;
      this.directOk = false;
      return p.open(path, flags);
    }
  }

  /**
   * An overwrite through its own O_DIRECT descriptor (opened per write: at this size the open is cheap
   * next to the write). The kernel writes back and drops any cached pages of the range first, so buffered
   * readers and writers of the same object stay coherent.
   */
  private async writeDirect(oid: bigint, path: string, data: Uint8Array, offset: number, opts: WriteOptions): Promise<void> {
    const sync = !this.opts.noSync && !opts.writeback;
    let fd: number | undefined;
    try {
      fd = await this.openMaybeDirect(path, fsc.O_WRONLY | (sync ? fsc.O_DSYNC : 0), true);
      await this.writeAll(fd, data, offset);
      if (this.directOk) this.directWrites++;
      if (opts.writeback && !this.opts.noSync) this.dirtyFiles.add(path);
    } catch (err) {
      throw mapFsError(err, `write ${oidHex(oid)}`);
    } finally {
      if (fd !== undefined) await p.close(fd).catch(() => undefined);
    }
  }

  /**
   * fdatasync of every object written back since the last flush, then of the directories new ones went
   * to. Objects removed or set aside meanwhile are skipped: their data is no longer the object's.
   */
  async flush(): Promise<void> {
    const files = [...this.dirtyFiles];
    const dirs = [...this.dirtyDirs];
    this.dirtyFiles = new Set();
    this.dirtyDirs = new Set();
    try {
      await Promise.all(
        files.map(async (path) => {
          let fd: number;
          try {
            fd = await this.cachedFds.acquire(path);
          } catch (err) {
            if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') return;
            throw err;
          }
          try {
            await p.fdatasync(fd);
          } finally {
            this.cachedFds.release(path);
          }
        }),
      );
      for (const dir of dirs) await this.syncDir(dir);
    } catch (err) {
      // Still not durable: the next flush tries again.
      for (const f of files) this.dirtyFiles.add(f);
      for (const d of dirs) this.dirtyDirs.add(d);
      throw mapFsError(err, 'flush');
    }
  }

  private async dropFds(path: string): Promise<void> {
    await this.fds.drop(path);
    if (this.cachedFds !== this.fds) await this.cachedFds.drop(path);
  }

  /** Reads `length` bytes at `offset` into `into` (or a new buffer). Bytes past the file's end read as zeros. */
  async read(oid: bigint, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (into && into.length !== length) throw new RangeError(`read of ${length} bytes into a ${into.length}-byte buffer`);
    const path = this.path(oid);
    const buf = into ?? Buffer.allocUnsafe(length);
    if (this.directOk && length >= DIRECT_MIN_BYTES && length % DIRECT_ALIGNMENT === 0 && offset % DIRECT_ALIGNMENT === 0) {
      if (isDirectAligned(buf)) return this.readDirect(oid, path, offset, buf, buf);
      const scratch = sharedPayloads.get(length);
      try {
        if (scratch && isDirectAligned(scratch)) return await this.readDirect(oid, path, offset, scratch, buf);
      } finally {
        if (scratch) sharedPayloads.release(scratch);
      }
    }
    let fd: number;
    try {
      fd = await this.fds.acquire(path);
    } catch (err) {
      throw mapFsError(err, `read ${oidHex(oid)}`);
    }
    try {
      return await readFully(fd, buf, offset, false);
    } catch (err) {
      throw mapFsError(err, `read ${oidHex(oid)}`);
    } finally {
      this.fds.release(path);
    }
  }

  /**
   * A large read through O_DIRECT into an aligned buffer (`out` itself when it is one, else a scratch buffer
   * copied out): objects written with O_DIRECT are not in the page cache, and filling it (readahead into
   * fresh pages) cost more than the copy.
   * Dirty cached pages of the range are written back by the kernel first, so buffered writes are seen.
   */
  private async readDirect(oid: bigint, path: string, offset: number, scratch: Buffer, out: Buffer): Promise<Buffer> {
    let fd: number;
    try {
      fd = await this.openMaybeDirect(path, fsc.O_RDONLY, true);
    } catch (err) {
      throw mapFsError(err, `read ${oidHex(oid)}`);
    }
    try {
      await readFully(fd, scratch, offset, true);
      if (out !== scratch) scratch.copy(out);
      this.directReads++;
      return out;
    } catch (err) {
      throw mapFsError(err, `read ${oidHex(oid)}`);
    } finally {
      await p.close(fd).catch(() => undefined);
    }
  }

  async size(oid: bigint): Promise<number> {
    try {
      return (await fsp.stat(this.path(oid))).size;
    } catch (err) {
      throw mapFsError(err, `stat ${oidHex(oid)}`);
    }
  }

  async remove(oid: bigint): Promise<void> {
    const path = this.path(oid);
    await this.dropFds(path);
    try {
      await fsp.unlink(path);
    } catch (err) {
      throw mapFsError(err, `remove ${oidHex(oid)}`);
    }
  }

  /** Moves a copy this node no longer owns aside, as Sheepdog does, instead of deleting it. */
  async moveToStale(oid: bigint, epoch: number): Promise<void> {
    const path = this.path(oid);
    await this.dropFds(path);
    try {
      await fsp.rename(path, join(this.staleDir, `${oidHex(oid)}.${epoch}`));
    } catch (err) {
      throw mapFsError(err, `stale ${oidHex(oid)}`);
    }
  }

  /** The newest stale copy of an object (recovery may still need what this node moved aside). */
  async readStale(oid: bigint, length: number): Promise<{ data: Buffer; epoch: number }> {
    const prefix = `${oidHex(oid)}.`;
    const names = (await fsp.readdir(this.staleDir)).filter((n) => n.startsWith(prefix));
    if (names.length === 0) throw new StoreError('NO_OBJ', `stale ${oidHex(oid)}: no such object`);
    names.sort((a, b) => Number(b.slice(prefix.length)) - Number(a.slice(prefix.length)));
    const path = join(this.staleDir, names[0]!);
    try {
      const fd = await p.open(path, fsc.O_RDONLY);
      try {
        const data = await readFully(fd, Buffer.allocUnsafe(length), 0, false);
        return { data, epoch: Number(names[0]!.slice(prefix.length)) };
      } finally {
        await p.close(fd);
      }
    } catch (err) {
      throw mapFsError(err, `stale ${oidHex(oid)}`);
    }
  }

  /** Object ids with a stale copy here. */
  async listStale(): Promise<bigint[]> {
    const out = new Set<bigint>();
    for (const name of await fsp.readdir(this.staleDir)) {
      const dot = name.lastIndexOf('.');
      const key = dot > 0 && /^\d+$/.test(name.slice(dot + 1)) ? parseKeyName(name.slice(0, dot)) : null;
      if (key !== null) out.add(key);
    }
    return [...out];
  }

  /** Every object id stored here (not stale copies, not temporaries). */
  async list(): Promise<bigint[]> {
    return (await this.objectFiles()).map(([, name]) => parseKeyName(name)!);
  }

  /** Removes every object and stale copy (cluster format). */
  async wipe(): Promise<void> {
    await this.fds.closeAll();
    if (this.cachedFds !== this.fds) await this.cachedFds.closeAll();
    for (const name of await fsp.readdir(this.objDir)) {
      await fsp.rm(join(this.objDir, name), { recursive: true, force: true });
    }
    this.madeDirs.clear();
    await fsp.mkdir(this.staleDir, { recursive: true });
  }

  /** Bytes used by object files (allocated blocks, so sparse objects count what they hold). */
  async usedBytes(): Promise<bigint> {
    let total = 0n;
    for (const [path] of await this.objectFiles()) {
      try {
        const st = await fsp.stat(path);
        total += BigInt(st.blocks) * 512n;
      } catch {
        /* raced with a removal */
      }
    }
    return total;
  }

  async freeBytes(): Promise<bigint> {
    const st = await fsp.statfs(this.objDir, { bigint: true });
    return st.bavail * st.bsize;
  }

  async close(): Promise<void> {
    await this.fds.closeAll();
    if (this.cachedFds !== this.fds) await this.cachedFds.closeAll();
    if (this.dirFd !== undefined) await p.close(this.dirFd).catch(() => undefined);
    this.dirFd = undefined;
  }

  private async writeAll(fd: number, data: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < data.length) done += await p.write(fd, data, done, data.length - done, offset + done);
  }
}

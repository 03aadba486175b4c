// A node's object store over one or more disks: Sheepdog's multi-disk (sheep/md.c). `sheep DIR` has one
// disk, DIR/obj; `sheep DIR,DISK1,DISK2...` keeps config and epochs in DIR and objects directly in each
// DISK (DISK/<oid>, DISK/.stale/<oid>.<epoch>, or the tree layout's DISK/meta and DISK/xx), the disk chosen
// by the md consistent hash (md-ring.ts). Objects a previous disk set put elsewhere are found by scanning the
// other disks and moved home, as md_exist/scan_wd do. A disk that fails is unplugged and the node stays;
// only the last disk failing is reported through onEio (the node leaves).
import { constants as fsc, promises as fsp } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { MD_MAX_DISK } from '../proto/constants.js';
import { buildMdRing, diskIndexOf, type MdRing } from './md-ring.js';
import { ObjectStore, StoreError, oidHex } from './object-store.js';
import type { Store, WriteOptions } from './store.js';

/**
 * Where the space recorded at a disk's first use is kept (bytes, decimal). Sheepdog keeps it in the
 * "user.md.size" xattr, which Node cannot read; a dot-file is skipped by Sheepdog's object scans. Without it
 * (an upgraded Sheepdog disk) the space is measured again, and objects the new ring puts elsewhere are
 * found by the scan and moved home.
 */
export const MD_SIZE_FILE = '.md.size';

export interface MdDiskInfo {
  readonly idx: number;
  readonly path: string;
  readonly free: bigint;
  readonly used: bigint;
}

export interface MdChange {
  readonly kind: 'plug' | 'unplug' | 'failed';
  readonly paths: readonly string[];
}

export interface MultiDiskOptions {
  readonly noSync?: boolean;
  /** The node's own directory (config, epoch): never a disk, nor inside one plugging would purge. */
  readonly metaDir: string;
}

interface Disk {
  readonly path: string;
  readonly space: bigint;
  readonly store: ObjectStore;
}

type LogFn = (level: 'error' | 'warn' | 'info' | 'debug', msg: string) => void;

/** An absolute path without trailing slashes: the form disks are hashed and compared in. */
export function normalizeDiskPath(path: string): string {
  if (path.trim() === '') throw new StoreError('INVALID', 'empty disk path');
  return resolve(path);
}

async function isMetaStore(path: string): Promise<boolean> {
  const readable = (p: string) => fsp.access(p, fsc.R_OK).then(() => true, () => false);
  return (await readable(join(path, 'config'))) && (await readable(join(path, 'epoch')));
}

const isInside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

export class MultiDiskStore implements Store {
  onEio: ((err: StoreError) => void) | null = null;
  /** The disk set changed (plug, unplug, a failed disk); called synchronously, so the node can start its recovery before it answers again. */
  onDisksChanged: ((change: MdChange) => void) | null = null;
  log: LogFn = () => undefined;
  /** Online disks in path order (md.c keeps them in a tree ordered by strcmp; MD_INFO numbers them so). */
  private disks: Disk[] = [];
  private ring: MdRing | null = null;
  private layout = 'plain';
  /** Bumped at every disk-set change: a rebalance of an older set stops. */
  private generation = 0;
  /** Objects being moved to their disk: operations on them wait. */
  private readonly moving = new Map<bigint, Promise<void>>();
  /** Operations in flight per object: a move waits until there are none. */
  private readonly busy = new Map<bigint, number>();
  private readonly idleWaiters = new Map<bigint, Array<() => void>>();
  private readonly retired: ObjectStore[] = [];

  constructor(
    private readonly initialPaths: readonly string[],
    private readonly opts: MultiDiskOptions,
  ) {
    if (initialPaths.length === 0) throw new StoreError('INVALID', 'a store needs at least one disk');
    if (initialPaths.length > MD_MAX_DISK) throw new StoreError('INVALID', `at most ${MD_MAX_DISK} disks, got ${initialPaths.length}`);
  }

  /** The online disks' paths, in MD_INFO order. */
  get paths(): string[] {
    return this.disks.map((d) => d.path);
  }

  async init(): Promise<void> {
    const paths = this.initialPaths.map(normalizeDiskPath);
    if (new Set(paths).size !== paths.length) throw new StoreError('INVALID', `duplicate disk path in ${paths.join(',')}`);
    // With explicit disks the meta store is apart and must not be one of them (sheep.c init_obj_path).
    const explicit = paths.length > 1 || paths[0] !== join(resolve(this.opts.metaDir), 'obj');
    const disks: Disk[] = [];
    for (const path of paths) {
      if (explicit) await this.checkNewDisk(path, paths);
      disks.push(await this.openDisk(path, false));
    }
    this.setDisks(disks);
  }

  setLayout(layout: string): void {
    if (layout !== 'plain' && layout !== 'tree') throw new StoreError('INVALID', `unknown store layout "${layout}"`);
    this.layout = layout;
    for (const d of this.disks) d.store.setLayout(layout);
  }

  // ---- routing --------------------------------------------------------------------------------

  private setDisks(disks: Disk[]): void {
    if (disks.length === 0) throw new StoreError('INVALID', 'no disk left');
    disks.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    this.ring = buildMdRing(disks.map((d) => ({ path: d.path, space: d.space })));
    this.disks = disks;
    this.generation++;
  }

  /** The disk an object belongs on now. */
  diskOf(oid: bigint): string {
    return this.home(oid).path;
  }

  private home(oid: bigint): Disk {
    if (this.disks.length === 1) return this.disks[0]!;
    return this.disks[diskIndexOf(this.ring!, oid)]!;
  }

  /** Runs `fn` as an operation on `oid`: after any move of it, and holding off new moves until done. */
  private async use<T>(oid: bigint, fn: () => Promise<T>): Promise<T> {
    for (let m = this.moving.get(oid); m; m = this.moving.get(oid)) await m;
    this.busy.set(oid, (this.busy.get(oid) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = this.busy.get(oid)! - 1;
      if (n > 0) this.busy.set(oid, n);
      else {
        this.busy.delete(oid);
        const waiters = this.idleWaiters.get(oid);
        this.idleWaiters.delete(oid);
        waiters?.forEach((w) => w());
      }
    }
  }

  private idle(oid: bigint): Promise<void> {
    if (!this.busy.has(oid)) return Promise.resolve();
    return new Promise((r) => {
      const list = this.idleWaiters.get(oid);
      if (list) list.push(r);
      else this.idleWaiters.set(oid, [r]);
    });
  }

  /** Runs `op` on the object's disk; if it is not there but on another disk, moves it home and runs `op` again. */
  private async onHome<T>(oid: bigint, op: (s: ObjectStore) => Promise<T>): Promise<T> {
    try {
      return await this.use(oid, () => op(this.home(oid).store));
    } catch (err) {
      if (!(err instanceof StoreError) || err.code !== 'NO_OBJ' || this.disks.length < 2) throw err;
      if (!(await this.bringHome(oid))) throw err;
      return this.use(oid, () => op(this.home(oid).store));
    }
  }

  /**
   * md.c md_check_and_move: finds the object on another disk and moves it to its own (read, atomic create,
   * unlink: disks are different filesystems). With `from`, only that disk's copy is considered, and dropped
   * if the home disk already has a newer one. Returns whether the object is home now.
   */
  private async bringHome(oid: bigint, from?: Disk): Promise<boolean> {
    const inProgress = this.moving.get(oid);
    if (inProgress) {
      await inProgress;
      return this.home(oid).store.exists(oid);
    }
    let done!: () => void;
    this.moving.set(oid, new Promise<void>((r) => (done = r)));
    try {
      await this.idle(oid);
      const home = this.home(oid);
      const homeHasIt = await home.store.exists(oid);
      for (const d of from ? [from] : this.disks) {
        if (d === home || !this.disks.includes(d) || !(await d.store.exists(oid))) continue;
        if (!homeHasIt) {
          const size = await d.store.size(oid);
          await home.store.create(oid, size, await d.store.read(oid, 0, size), 0);
          this.log('debug', `md: moved ${oidHex(oid)} from ${d.path} to ${home.path}`);
        }
        await d.store.remove(oid);
        return true;
      }
      return homeHasIt;
    } finally {
      this.moving.delete(oid);
      done();
    }
  }

  /** Moves every object a disk-set change left on another disk than its own (upstream: the recovery's md_exist calls). */
  private async rebalance(): Promise<void> {
    const gen = this.generation;
    let moved = 0;
    for (const d of [...this.disks]) {
      const oids = await d.store.list().catch(() => [] as bigint[]);
      for (const oid of oids) {
        if (this.generation !== gen) return; // a newer change starts its own pass
        if (this.home(oid) === d) continue;
        try {
          if (await this.bringHome(oid, d)) moved++;
        } catch (err) {
          this.log('warn', `md: cannot move ${oidHex(oid)} from ${d.path}: ${(err as Error).message}`);
        }
      }
    }
    if (moved > 0) this.log('info', `md: moved ${moved} objects to their disks`);
  }

  // ---- disks ----------------------------------------------------------------------------------

  /** Refuses a path that cannot be a disk: nothing is changed yet. */
  private async checkNewDisk(path: string, others: readonly string[]): Promise<void> {
    const meta = resolve(this.opts.metaDir);
    if (isInside(meta, path)) throw new StoreError('INVALID', `${path} holds the node's own directory ${meta}`);
    for (const o of others) {
      if (o !== path && (isInside(o, path) || isInside(path, o))) throw new StoreError('INVALID', `${path} and ${o} overlap`);
    }
    if (await isMetaStore(path)) throw new StoreError('INVALID', `${path} is meta-store, abort`);
    const st = await fsp.stat(path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(new StoreError('INVALID', `${path}: ${e.message}`))));
    if (st && !st.isDirectory()) throw new StoreError('INVALID', `${path} is not a directory`);
  }

  private async openDisk(path: string, purge: boolean): Promise<Disk> {
    try {
      await fsp.mkdir(path, { recursive: true });
    } catch (err) {
      throw new StoreError('INVALID', `cannot create disk directory ${path}: ${(err as Error).message}`);
    }
    // md.c md_add_disk(path, purge): a plugged disk starts empty (`dog node md plug` warns of it).
    if (purge) for (const name of await fsp.readdir(path)) await fsp.rm(join(path, name), { recursive: true, force: true });
    const space = await this.recordedSpace(path);
    const store = new ObjectStore(path, { noSync: this.opts.noSync, objDir: path });
    store.setLayout(this.layout);
    await store.init();
    store.onEio = (err) => this.diskFailed(path, err);
    this.log('info', `md: ${path}, vdisk nr ${Number((space + (1n << 30n) - 1n) >> 30n)}, total disk ${this.disks.length + 1}`);
    return { path, space, store };
  }

  /** The disk's space as recorded at its first use (md.c init_path_space), recording it now if new. */
  private async recordedSpace(path: string): Promise<bigint> {
    const file = join(path, MD_SIZE_FILE);
    const text = await fsp.readFile(file, 'utf8').catch(() => '');
    if (/^\d+\n?$/.test(text) && BigInt(text.trim()) > 0n) return BigInt(text.trim());
    const st = await fsp.statfs(path, { bigint: true });
    const space = st.bavail * st.bsize;
    if (space <= 0n) throw new StoreError('NO_SPACE', `disk ${path} has no free space`);
    await fsp.writeFile(file, `${space}\n`);
    return space;
  }

  /**
   * md_handle_eio: a failing disk leaves the array and the node stays (its objects are recovered from the
   * peers); the error is marked so the request is retried. The last disk failing makes the node leave.
   */
  private diskFailed(path: string, err: StoreError): void {
    const i = this.disks.findIndex((d) => d.path === path);
    if (i < 0) {
      err.diskRemoved = true; // a late error from a disk already out
      return;
    }
    if (this.disks.length === 1) {
      this.onEio?.(err);
      return;
    }
    err.diskRemoved = true;
    this.log('error', `md: disk ${path} failed (${err.message}): unplugged; its objects will be recovered`);
    this.retire([path]);
    this.onDisksChanged?.({ kind: 'failed', paths: [path] });
  }

  private retire(paths: readonly string[]): void {
    const out = this.disks.filter((d) => paths.includes(d.path));
    this.setDisks(this.disks.filter((d) => !paths.includes(d.path)));
    for (const d of out) {
      this.retired.push(d.store);
      // In-flight operations of the old disk finish before its files are closed.
      setTimeout(() => void d.store.close().catch(() => undefined), 2000).unref();
    }
  }

  /**
   * `dog node md plug`: adds the disks (purged first, as upstream); objects the new ring puts on them move
   * there in the background. Everything is checked before anything changes. Returns how many were added.
   */
  async plug(raw: readonly string[]): Promise<number> {
    const paths = raw.map(normalizeDiskPath);
    if (new Set(paths).size !== paths.length) throw new StoreError('INVALID', `duplicate disk path in ${paths.join(',')}`);
    const online = this.paths;
    for (const p of paths) if (online.includes(p)) throw new StoreError('INVALID', `duplicate path ${p}: already plugged`);
    if (online.length + paths.length > MD_MAX_DISK) throw new StoreError('INVALID', `at most ${MD_MAX_DISK} disks`);
    for (const p of paths) await this.checkNewDisk(p, [...online, ...paths]);
    const added: Disk[] = [];
    for (const p of paths) added.push(await this.openDisk(p, true));
    this.setDisks([...this.disks, ...added]);
    this.onDisksChanged?.({ kind: 'plug', paths });
    void this.rebalance();
    return added.length;
  }

  /** `dog node md unplug`: the disks leave (their files stay); their objects are recovered from peers. */
  async unplug(raw: readonly string[]): Promise<number> {
    const paths = [...new Set(raw.map(normalizeDiskPath))];
    const online = this.paths;
    for (const p of paths) if (!online.includes(p)) throw new StoreError('INVALID', `invalid path ${p}: not a plugged disk`);
    if (paths.length >= online.length) throw new StoreError('INVALID', 'cannot unplug every disk of the node');
    this.retire(paths);
    this.onDisksChanged?.({ kind: 'unplug', paths });
    return paths.length;
  }

  /** MD_INFO: per disk, in path order, its free space and the space its objects use. */
  async info(): Promise<MdDiskInfo[]> {
    return Promise.all(
      this.disks.map(async (d, idx) => {
        const st = await fsp.statfs(d.path, { bigint: true }).catch(() => null);
        return { idx, path: d.path, free: st ? st.bavail * st.bsize : 0n, used: await d.store.usedBytes().catch(() => 0n) };
      }),
    );
  }

  /**
   * Test hook (fault injection, SIGUSR2): with several disks online the first (MD_INFO index 0) fails with
   * EIO from now on; with one, the whole store does.
   */
  injectEio(on: boolean): void {
    if (!on) for (const d of this.disks) d.store.injectEio(false);
    else this.disks[0]!.store.injectEio(true);
  }

  // ---- Store ----------------------------------------------------------------------------------

  async exists(oid: bigint): Promise<boolean> {
    if (await this.use(oid, () => this.home(oid).store.exists(oid))) return true;
    return this.disks.length > 1 && this.bringHome(oid);
  }

  async create(oid: bigint, objectSize: number, data: Uint8Array, offset: number, opts?: WriteOptions): Promise<void> {
    await this.use(oid, async () => {
      const home = this.home(oid);
      await home.store.create(oid, objectSize, data, offset, opts);
      // A copy a previous disk set left elsewhere is now outdated: it must never be found again.
      for (const d of this.disks) if (d !== home) await d.store.remove(oid).catch((err) => ignoreNoObj(err));
    });
  }

  write(oid: bigint, data: Uint8Array, offset: number, opts?: WriteOptions): Promise<void> {
    return this.onHome(oid, (s) => s.write(oid, data, offset, opts));
  }

  /** Every disk's writeback writes (an object moved between disks since is durable on arrival). */
  async flush(): Promise<void> {
    await Promise.all(this.disks.map((d) => d.store.flush()));
  }

  read(oid: bigint, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.onHome(oid, (s) => s.read(oid, offset, length, into));
  }

  size(oid: bigint): Promise<number> {
    return this.onHome(oid, (s) => s.size(oid));
  }

  async remove(oid: bigint): Promise<void> {
    await this.use(oid, async () => {
      let removed = false;
      let notFound: unknown = null;
      for (const d of [this.home(oid), ...this.disks.filter((x) => x !== this.home(oid))]) {
        try {
          await d.store.remove(oid);
          removed = true;
        } catch (err) {
          ignoreNoObj(err);
          notFound ??= err;
        }
      }
      if (!removed) throw notFound;
    });
  }

  moveToStale(oid: bigint, epoch: number): Promise<void> {
    return this.onHome(oid, (s) => s.moveToStale(oid, epoch));
  }

  async readStale(oid: bigint, length: number): Promise<{ data: Buffer; epoch: number }> {
    let best: { data: Buffer; epoch: number } | null = null;
    let notFound: unknown = null;
    for (const d of this.disks) {
      try {
        const s = await d.store.readStale(oid, length);
        if (!best || s.epoch > best.epoch) best = s;
      } catch (err) {
        ignoreNoObj(err);
        notFound ??= err;
      }
    }
    if (!best) throw notFound;
    return best;
  }

  listStale(): Promise<bigint[]> {
    return this.union((s) => s.listStale());
  }

  list(): Promise<bigint[]> {
    return this.union((s) => s.list());
  }

  /** Every disk's answer, merged; a disk that fails meanwhile (and is unplugged) is skipped. */
  private async union(get: (s: ObjectStore) => Promise<bigint[]>): Promise<bigint[]> {
    if (this.disks.length === 1) return get(this.disks[0]!.store);
    const out = new Set<bigint>();
    for (const d of [...this.disks]) {
      try {
        for (const oid of await get(d.store)) out.add(oid);
      } catch (err) {
        if (!(err instanceof StoreError && err.diskRemoved)) throw err;
      }
    }
    return [...out];
  }

  async wipe(): Promise<void> {
    for (const d of this.disks) {
      await d.store.wipe();
      await fsp.writeFile(join(d.path, MD_SIZE_FILE), `${d.space}\n`); // the disk keeps its recorded space
    }
  }

  async usedBytes(): Promise<bigint> {
    let total = 0n;
    for (const d of this.disks) total += await d.store.usedBytes();
    return total;
  }

  /** md.c md_get_size: the sum over disks (disks sharing a filesystem count it more than once, as upstream). */
  async freeBytes(): Promise<bigint> {
    let total = 0n;
    for (const d of this.disks) total += await d.store.freeBytes();
    return total;
  }

  async close(): Promise<void> {
    for (const s of [...this.disks.map((d) => d.store), ...this.retired]) await s.close().catch(() => undefined);
  }
}

function ignoreNoObj(err: unknown): void {
  if (!(err instanceof StoreError) || err.code !== 'NO_OBJ') throw err;
}

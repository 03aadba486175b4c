// `dog vdi backup` and `dog vdi restore` (dog/vdi.c vdi_backup / vdi_restore).
//
// The stream is Sheepdog's incremental backup format, all fields host order (little-endian):
//   struct backup_hdr  { u32 version = 1; u32 magic = 0x11921192; }
//   struct obj_backup  { u32 idx; u32 offset; u32 length; u32 reserved; }  followed by `length` bytes
//   ...one record per data object that differs between the two snapshots...
//   end marker: an obj_backup header with idx = 0xffffffff (offset, length, reserved 0)
// A record holds the new (-s) contents of object idx with the leading and trailing 512-byte
// sectors that equal the old (-F) contents cut off.
//
// Restore applies a stream onto a snapshot: it deletes the working VDI, clones the snapshot into
// a new working VDI, writes every record with copy-on-write from the snapshot's object, and then
// re-creates the working VDI from the old working VDI's parent, which turns the restored VDI into
// a snapshot (sheep's "rebase" form of NEW_VDI).

import { Res, SD_INODE_HEADER_SIZE, SD_INODE_SIZE, resultString } from '../../proto/constants.js';
import { vidToDataOid, vidToVdiOid } from '../../proto/oid.js';
import type { Argv } from './command.js';
import { EXIT_FAILURE, EXIT_SUCCESS, EXIT_SYSFAIL, EXIT_USAGE, getSink, out, sdErr } from './common.js';
import { Inode, type DogContext } from './ctx.js';

export const VDI_BACKUP_FORMAT_VERSION = 1;
export const VDI_BACKUP_MAGIC = 0x11921192;
/** sizeof(struct backup_hdr) */
export const BACKUP_HDR_SIZE = 8;
/** sizeof(struct obj_backup) - sizeof(data pointer): the record header on the wire */
export const OBJ_BACKUP_HDR_SIZE = 16;
export const BACKUP_END_IDX = 0xffffffff;
const SECTOR_SIZE = 512;

export interface BackupOptions {
  snapshotId: number;
  snapshotTag: string;
  fromSnapshotId: number;
  fromSnapshotTag: string;
}

export function encodeBackupHeader(): Buffer {
  const b = Buffer.alloc(BACKUP_HDR_SIZE);
  b.writeUInt32LE(VDI_BACKUP_FORMAT_VERSION, 0);
  b.writeUInt32LE(VDI_BACKUP_MAGIC, 4);
  return b;
}

export function encodeObjBackupHeader(idx: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(OBJ_BACKUP_HDR_SIZE);
  b.writeUInt32LE(idx >>> 0, 0);
  b.writeUInt32LE(offset >>> 0, 4);
  b.writeUInt32LE(length >>> 0, 8);
  return b;
}

/**
 * compact_obj_backup(): the [offset, offset + length) part of `to` that must be kept, after
 * dropping leading and trailing sectors equal to `from`. length 0 = the objects are equal.
 */
export function compactObjBackup(to: Uint8Array, from: Uint8Array, objectSize: number): { offset: number; length: number } {
  const eq = (a: number) => Buffer.compare(to.subarray(a, a + SECTOR_SIZE), from.subarray(a, a + SECTOR_SIZE)) === 0;
  let offset = 0;
  let length = objectSize;
  let p = 0;
  while (length > 0 && eq(p)) {
    p += SECTOR_SIZE;
    offset += SECTOR_SIZE;
    length -= SECTOR_SIZE;
  }
  p = objectSize - SECTOR_SIZE;
  while (length > 0 && eq(p)) {
    p -= SECTOR_SIZE;
    length -= SECTOR_SIZE;
  }
  return { offset, length };
}

/** A decoded backup stream (for tests and tools): the records in stream order. */
export interface BackupRecord {
  idx: number;
  offset: number;
  data: Buffer;
}

export function parseBackupStream(b: Buffer): { version: number; magic: number; records: BackupRecord[]; complete: boolean } {
  const version = b.length >= 4 ? b.readUInt32LE(0) : 0;
  const magic = b.length >= 8 ? b.readUInt32LE(4) : 0;
  const records: BackupRecord[] = [];
  let p = BACKUP_HDR_SIZE;
  while (p + OBJ_BACKUP_HDR_SIZE <= b.length) {
    const idx = b.readUInt32LE(p);
    const offset = b.readUInt32LE(p + 4);
    const length = b.readUInt32LE(p + 8);
    p += OBJ_BACKUP_HDR_SIZE;
    if (idx === BACKUP_END_IDX) return { version, magic, records, complete: p === b.length };
    if (p + length > b.length) break;
    records.push({ idx, offset, data: b.subarray(p, p + length) });
    p += length;
  }
  return { version, magic, records, complete: false };
}

const STRERROR: Record<string, string> = {
  EPIPE: 'Broken pipe',
  ENOSPC: 'No space left on device',
  EIO: 'Input/output error',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
};

/** %m for a failed stdout write */
function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && STRERROR[code]) return STRERROR[code]!;
  return (e as Error)?.message ?? String(e);
}

/** Indices that are allocated in either inode, ascending (flat: 0..nr_objs of `to`). */
function backupIndices(from: Inode, to: Inode): Iterable<number> {
  const hf = from.hyperEntries();
  const ht = to.hyperEntries();
  if (hf || ht) {
    const set = new Set<number>();
    for (const [i, v] of hf ?? []) if (v) set.add(i);
    for (const [i, v] of ht ?? []) if (v) set.add(i);
    const nr = to.nrDataObjs;
    return [...set].filter((i) => i < nr).sort((a, b) => a - b);
  }
  const nr = to.nrDataObjs;
  return (function* () {
    for (let i = 0; i < nr; i++) yield i;
  })();
}

/** vdi_backup(): writes the difference between -F and -s to stdout. */
export async function vdiBackup(ctx: DogContext, argv: Argv, o: BackupOptions): Promise<number> {
  const vdiname = argv.next()!;
  if ((!o.snapshotId && !o.snapshotTag) || (!o.fromSnapshotId && !o.fromSnapshotTag)) {
    sdErr("Please specify snapshots with '-F' and '-s' options");
    return EXIT_USAGE;
  }
  const from = await ctx.readVdiObj(vdiname, o.fromSnapshotId, o.fromSnapshotTag, SD_INODE_SIZE);
  if (from.ret !== EXIT_SUCCESS) return from.ret;
  const to = await ctx.readVdiObj(vdiname, o.snapshotId, o.snapshotTag, SD_INODE_SIZE);
  if (to.ret !== EXIT_SUCCESS) return to.ret;
  const fromInode = from.inode!;
  const toInode = to.inode!;
  const objectSize = fromInode.objectSize;
  const sink = getSink();

  try {
    await sink.outAsync(encodeBackupHeader());
  } catch (e) {
    sdErr(`failed to write backup header, ${errnoText(e)}`);
    return EXIT_SYSFAIL;
  }

  const toData = Buffer.alloc(objectSize);
  const fromData = Buffer.alloc(objectSize);
  for (const idx of backupIndices(fromInode, toInode)) {
    const fromVid = fromInode.getVid(idx);
    const toVid = toInode.getVid(idx);
    if (toVid === 0 && fromVid === 0) continue;
    // Both snapshots share the object: nothing can differ (upstream reads both and compacts to 0).
    if (toVid === fromVid) continue;

    // get_obj_backup()
    if (toVid) {
      const r = await ctx.readObject(vidToDataOid(toVid, idx), toData, objectSize, 0, true);
      if (r !== Res.SUCCESS) {
        sdErr(`Failed to read object ${toVid.toString(16)}, ${idx}`);
        return EXIT_FAILURE;
      }
    } else toData.fill(0);
    if (fromVid) {
      const r = await ctx.readObject(vidToDataOid(fromVid, idx), fromData, objectSize, 0, true);
      if (r !== Res.SUCCESS) {
        sdErr(`Failed to read object ${fromVid.toString(16)}, ${idx}`);
        return EXIT_FAILURE;
      }
    } else fromData.fill(0);
    const { offset, length } = compactObjBackup(toData, fromData, objectSize);
    if (length === 0) continue;

    try {
      await sink.outAsync(encodeObjBackupHeader(idx, offset, length));
      await sink.outAsync(Buffer.from(toData.subarray(offset, offset + length)));
    } catch (e) {
      sdErr(`failed to write backup data, ${errnoText(e)}`);
      return EXIT_SYSFAIL;
    }
  }

  try {
    await sink.outAsync(encodeObjBackupHeader(BACKUP_END_IDX, 0, 0));
  } catch (e) {
    sdErr(`failed to write end marker, ${errnoText(e)}`);
    return EXIT_SYSFAIL;
  }
  return EXIT_SUCCESS;
}

/** NEW_VDI without dog's error printing: the result code, the new vid (result -1: unreachable). */
function newVdi(
  ctx: DogContext,
  name: string,
  size: bigint,
  baseVid: number,
  snapshot: boolean,
  h: { nrCopies: number; copyPolicy: number; storePolicy: number; blockSizeShift: number },
): Promise<{ result: number; vid: number }> {
  return ctx.newVdiRequest(name, size, baseVid, snapshot, h.nrCopies, h.copyPolicy, h.storePolicy, h.blockSizeShift);
}

export type VdiDeleter = (ctx: DogContext, vdiname: string) => Promise<number>;

/** restore_obj(): copy-on-write the record into `vid`, then point the index entry at it. */
async function restoreObj(ctx: DogContext, idx: number, offset: number, data: Buffer, vid: number, parent: Inode): Promise<number> {
  const parentVid = parent.getVid(idx);
  const parentOid = parentVid ? vidToDataOid(parentVid, idx) : 0n;
  const r = await ctx.writeObject(vidToDataOid(vid, idx), parentOid, data, offset, 0, parent.h.nrCopies, parent.h.copyPolicy, true, true);
  if (r !== Res.SUCCESS) return r;
  const v = Buffer.alloc(4);
  v.writeUInt32LE(vid >>> 0, 0);
  return ctx.writeObject(vidToVdiOid(vid), 0n, v, SD_INODE_HEADER_SIZE + 4 * idx, 0, parent.h.nrCopies, parent.h.copyPolicy, false, true);
}

/** do_restore(): returns the exit status and the vid of the restored VDI (0 if none was made). */
async function doRestore(ctx: DogContext, vdiname: string, snapid: number, tag: string, del: VdiDeleter): Promise<{ ret: number; vid: number }> {
  const hdr = await ctx.stdin.read(BACKUP_HDR_SIZE);
  if (hdr.length !== BACKUP_HDR_SIZE) sdErr('failed to read backup header, Success');
  const h = Buffer.concat([hdr, Buffer.alloc(BACKUP_HDR_SIZE)]);
  if (h.readUInt32LE(0) !== VDI_BACKUP_FORMAT_VERSION || h.readUInt32LE(4) !== VDI_BACKUP_MAGIC) {
    sdErr('The backup file is corrupted');
    return { ret: EXIT_SYSFAIL, vid: 0 };
  }

  const s = await ctx.readVdiObj(vdiname, snapid, tag, SD_INODE_SIZE);
  if (s.ret !== EXIT_SUCCESS) return { ret: s.ret, vid: 0 };
  const inode = s.inode!;
  const c = await ctx.doVdiCreate(vdiname, inode.h.vdiSize, inode.h.vdiId, false, inode.h.nrCopies, inode.h.copyPolicy, inode.h.storePolicy, inode.h.blockSizeShift);
  if (c.ret !== EXIT_SUCCESS) {
    sdErr('Failed to read VDI');
    return { ret: c.ret, vid: 0 };
  }
  const vid = c.vid;
  const objectSize = inode.objectSize;

  for (;;) {
    const rec = await ctx.stdin.read(OBJ_BACKUP_HDR_SIZE);
    if (rec.length !== OBJ_BACKUP_HDR_SIZE) {
      sdErr('failed to read backup data');
      return { ret: EXIT_SYSFAIL, vid };
    }
    const idx = rec.readUInt32LE(0);
    const offset = rec.readUInt32LE(4);
    const length = rec.readUInt32LE(8);
    if (idx === BACKUP_END_IDX) return { ret: EXIT_SUCCESS, vid };
    // upstream reads into an object-sized buffer; a longer record cannot be valid
    if (length > objectSize) {
      sdErr('failed to read backup data');
      return { ret: EXIT_SYSFAIL, vid };
    }
    const data = await ctx.stdin.read(length);
    if (data.length !== length) {
      sdErr('failed to read backup data');
      return { ret: EXIT_SYSFAIL, vid };
    }
    const r = await restoreObj(ctx, idx, offset, data, vid, inode);
    if (r !== Res.SUCCESS) {
      sdErr('failed to restore backup');
      await del(ctx, vdiname);
      return { ret: EXIT_FAILURE, vid: 0 };
    }
  }
}

/**
 * Re-creates the working VDI after a restore: NEW_VDI(snapshot, base = the old working VDI's
 * parent). Sheep treats a snapshot request whose base is not the working VDI as a rebase: the
 * working (restored) VDI becomes a snapshot and the new working VDI starts from the base.
 * A server that refuses the rebase form (INVALID_PARMS) gets the same end state in steps it
 * does accept: snapshot the restored VDI, drop the VDI that snapshot left working, and clone
 * the base into the new working VDI (the request sequence of `dog vdi rollback`).
 */
async function resumeCurrent(ctx: DogContext, vdiname: string, current: Inode, restoredVid: number, del: VdiDeleter): Promise<number> {
  const h = current.h;
  const fail = (result: number): number => {
    if (result >= 0) sdErr(`Failed to create VDI ${vdiname}: ${resultString(result)}`);
    sdErr('failed to resume the current vdi');
    return result < 0 ? EXIT_SYSFAIL : EXIT_FAILURE;
  };
  const r = await newVdi(ctx, vdiname, h.vdiSize, h.parentVdiId, true, h);
  if (r.result === Res.SUCCESS) return EXIT_SUCCESS;
  if (r.result !== Res.INVALID_PARMS || !restoredVid) return fail(r.result);

  const working = await ctx.findVdiName(vdiname, 0, '');
  if (working.result !== Res.SUCCESS || working.vid !== restoredVid) return fail(r.result);
  const snap = await newVdi(ctx, vdiname, h.vdiSize, restoredVid, true, h);
  if (snap.result !== Res.SUCCESS) return fail(snap.result);
  await del(ctx, vdiname);
  const again = await newVdi(ctx, vdiname, h.vdiSize, h.parentVdiId, false, h);
  if (again.result !== Res.SUCCESS) return fail(again.result);
  return EXIT_SUCCESS;
}

/** vdi_restore(): applies the backup on stdin to snapshot -s of vdiname. */
export async function vdiRestore(ctx: DogContext, argv: Argv, o: BackupOptions, del: VdiDeleter): Promise<number> {
  const vdiname = argv.next()!;
  if (!o.snapshotId && !o.snapshotTag) {
    sdErr('We can restore a backup file only to snapshots');
    sdErr("Please specify the '-s' option");
    return EXIT_USAGE;
  }
  const check = await ctx.readVdiObj(vdiname, o.snapshotId, o.snapshotTag, SD_INODE_HEADER_SIZE);
  if (check.ret !== EXIT_SUCCESS) {
    sdErr(`Snapshot ID ${o.snapshotId} or tag ${o.snapshotTag} doesn't exist`);
    return check.ret;
  }

  // delete the current vdi temporarily first to avoid making the current state become snapshot
  const cur = await ctx.readVdiObj(vdiname, 0, '', SD_INODE_HEADER_SIZE);
  if (cur.ret !== EXIT_SUCCESS) return cur.ret;
  const current = cur.inode!;
  const parentBuf = Buffer.alloc(SD_INODE_HEADER_SIZE);
  const pr = await ctx.readObject(vidToVdiOid(current.h.parentVdiId), parentBuf, SD_INODE_HEADER_SIZE, 0, true);
  if (pr !== Res.SUCCESS) {
    out('error\n');
    return pr;
  }
  if (process.stdin.isTTY === true) {
    sdErr('stdin must be pipe');
    return EXIT_USAGE;
  }

  const d = await del(ctx, vdiname);
  if (d !== EXIT_SUCCESS) {
    sdErr('Failed to delete the current state');
    return d;
  }

  const restored = await doRestore(ctx, vdiname, o.snapshotId, o.snapshotTag, del);
  const resumed = await resumeCurrent(ctx, vdiname, current, restored.vid, del);
  return resumed !== EXIT_SUCCESS ? resumed : restored.ret;
}

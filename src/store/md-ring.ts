// Sheepdog's multi-disk (md) consistent hash, as in sheep/md.c: each disk gets ceil(space / 1 GiB) virtual
// disks whose positions are the sd_hash chain seeded by sd_hash(path); an object lives on the disk of the
// first vdisk at or after sd_hash_oid(oid), wrapping to the first. Same paths and sizes ⇒ same disk as
// upstream, so a Sheepdog multi-disk store is read in place.
import { sdHash, sdHashNext, sdHashOid } from '../placement/fnv.js';

/** md.c MD_VDISK_SIZE: one vdisk per GiB of the disk's recorded space. */
export const MD_VDISK_SIZE = 1n << 30n;
/** A bound on the ring per disk (1 EiB at 1 GiB each): a corrupt size must not exhaust memory. */
export const MD_MAX_VDISKS_PER_DISK = 1 << 30;

export interface MdDiskSpec {
  /** The disk's path as Sheepdog hashes it: no trailing slash. */
  readonly path: string;
  /** The space recorded for the disk when it was first used (bytes, > 0). */
  readonly space: bigint;
}

export interface MdRing {
  /** vdisk positions, ascending (unsigned 64-bit). */
  readonly hashes: BigUint64Array;
  /** The disk (index into `disks`) of each vdisk. */
  readonly owner: Uint16Array;
  readonly disks: readonly MdDiskSpec[];
}

export function vdiskCount(space: bigint): number {
  if (space <= 0n) throw new RangeError(`disk space must be positive, got ${space}`);
  const n = (space + MD_VDISK_SIZE - 1n) / MD_VDISK_SIZE;
  if (n > BigInt(MD_MAX_VDISKS_PER_DISK)) throw new RangeError(`disk space ${space} is beyond the md limit`);
  return Number(n);
}

/** md.c trim_last_slash. */
export function trimTrailingSlashes(path: string): string {
  if (path.length === 0) throw new RangeError('empty disk path');
  let p = path;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/** The vdisk positions of one disk (md.c create_vdisks, outside the compile-time disk mode). */
export function vdiskHashes(disk: MdDiskSpec): bigint[] {
  let h = sdHash(Buffer.from(disk.path, 'utf8'));
  const out: bigint[] = [];
  for (let i = vdiskCount(disk.space); i > 0; i--) {
    h = sdHashNext(h);
    out.push(h);
  }
  return out;
}

export function buildMdRing(disks: readonly MdDiskSpec[]): MdRing {
  if (disks.length === 0) throw new RangeError('an md ring needs at least one disk');
  if (disks.length > 0xffff) throw new RangeError('too many disks');
  const all: Array<[bigint, number]> = [];
  disks.forEach((d, i) => {
    for (const h of vdiskHashes(d)) all.push([h, i]);
  });
  all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < all.length; i++) {
    // md.c panics on a collision ("vdisk hash collison"): two disks with one path.
    if (all[i]![0] === all[i - 1]![0]) throw new RangeError(`vdisk hash collision between ${disks[all[i - 1]![1]]!.path} and ${disks[all[i]![1]]!.path}`);
  }
  return { hashes: BigUint64Array.from(all.map((e) => e[0])), owner: Uint16Array.from(all.map((e) => e[1])), disks };
}

/** The index (into ring.disks) of the disk an object belongs on. */
export function diskIndexOf(ring: MdRing, oid: bigint): number {
  const h = sdHashOid(oid);
  const hs = ring.hashes;
  let lo = 0;
  let hi = hs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hs[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return ring.owner[lo === hs.length ? 0 : lo]!;
}

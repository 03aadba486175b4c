// What every node of a cluster agrees on, changed only by totally ordered cluster events: the format
// (ctime, copies, flags, block size), the epoch and its member lists, and the VDI bitmaps.
import { readFile, writeFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ClusterStatus, SD_DEFAULT_BLOCK_SIZE_SHIFT, SD_NR_VDIS, SD_VDI_BITMAP_SIZE } from '../proto/constants.js';
import { decodeSdNodes, encodeSdNodes, type SdNode } from '../proto/structs.js';

/** DIR/config: Sheepdog 1.0's struct sheepdog_config (40 bytes, SD_FORMAT_VERSION 6). */
export interface NodeConfig {
  ctime: bigint;
  flags: number;
  copies: number;
  store: string;
  shutdown: boolean;
  copyPolicy: number;
  blockSizeShift: number;
  space: bigint;
}

export const CONFIG_SIZE = 40;
export const FORMAT_VERSION = 6;

export function encodeConfig(c: NodeConfig): Buffer {
  const b = Buffer.alloc(CONFIG_SIZE);
  b.writeBigUInt64LE(c.ctime, 0);
  b.writeUInt16LE(c.flags, 8);
  b[10] = c.copies;
  b.write(c.store.slice(0, 15), 11, 'latin1');
  b[27] = c.shutdown ? 1 : 0;
  b[28] = c.copyPolicy;
  b[29] = c.blockSizeShift;
  b.writeUInt16LE(FORMAT_VERSION, 30);
  b.writeBigUInt64LE(c.space, 32);
  return b;
}

export function decodeConfig(b: Buffer): NodeConfig {
  if (b.length < CONFIG_SIZE) throw new Error(`config file is ${b.length} bytes, expected ${CONFIG_SIZE}`);
  const storeEnd = b.indexOf(0, 11);
  return {
    ctime: b.readBigUInt64LE(0),
    flags: b.readUInt16LE(8),
    copies: b[10]!,
    store: b.toString('latin1', 11, storeEnd < 0 || storeEnd > 27 ? 27 : storeEnd),
    shutdown: b[27] !== 0,
    copyPolicy: b[28]!,
    blockSizeShift: b[29] || SD_DEFAULT_BLOCK_SIZE_SHIFT,
    space: b.readBigUInt64LE(32),
  };
}

async function atomicWrite(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, data, { flush: true } as never);
  await rename(tmp, path);
}

export async function readConfig(dir: string): Promise<NodeConfig | null> {
  try {
    return decodeConfig(await readFile(join(dir, 'config')));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export async function writeConfig(dir: string, c: NodeConfig): Promise<void> {
  await atomicWrite(join(dir, 'config'), encodeConfig(c));
}

/** DIR/epoch/%08u: the sd_node array of that epoch followed by its time (u64 seconds). */
export async function writeEpochFile(dir: string, epoch: number, nodes: readonly SdNode[], time: bigint): Promise<void> {
  await mkdir(join(dir, 'epoch'), { recursive: true });
  const body = Buffer.alloc(nodes.length * 80 + 8);
  encodeSdNodes(nodes, body, 0);
  body.writeBigUInt64LE(time, nodes.length * 80);
  await atomicWrite(join(dir, 'epoch', String(epoch).padStart(8, '0')), body);
}

export async function readEpochFiles(dir: string): Promise<Map<number, { nodes: SdNode[]; time: bigint }>> {
  const out = new Map<number, { nodes: SdNode[]; time: bigint }>();
  let names: string[] = [];
  try {
    names = await readdir(join(dir, 'epoch'));
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d{8}$/.test(name)) continue;
    const b = await readFile(join(dir, 'epoch', name));
    if (b.length < 8 || (b.length - 8) % 80 !== 0) continue;
    const n = (b.length - 8) / 80;
    out.set(Number(name), { nodes: decodeSdNodes(b, n, 0), time: b.readBigUInt64LE(n * 80) });
  }
  return out;
}

/** A 2^24-bit VDI bitmap (bit i = byte i/8, bit i%8). */
export class VdiBitmap {
  readonly bytes = Buffer.alloc(SD_VDI_BITMAP_SIZE);

  test(vid: number): boolean {
    return (this.bytes[vid >>> 3]! & (1 << (vid & 7))) !== 0;
  }
  set(vid: number): void {
    this.bytes[vid >>> 3]! |= 1 << (vid & 7);
  }
  /** Frees one vid (VID recycling). */
  unset(vid: number): void {
    this.bytes[vid >>> 3]! &= ~(1 << (vid & 7));
  }
  clear(): void {
    this.bytes.fill(0);
  }
  /** Set bits, for state transfer to a joining node. */
  list(): number[] {
    const out: number[] = [];
    for (let byte = 0; byte < this.bytes.length; byte++) {
      const v = this.bytes[byte]!;
      if (v === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (v & (1 << bit)) out.push(byte * 8 + bit);
    }
    return out;
  }
  /** First clear bit at or after `from`, wrapping to 1 (vid 0 is never used); -1 when full. */
  firstClearFrom(from: number): number {
    for (let i = 0; i < SD_NR_VDIS; i++) {
      let vid = from + i;
      if (vid >= SD_NR_VDIS) vid = (vid % SD_NR_VDIS) + 1;
      if (vid !== 0 && !this.test(vid)) return vid;
    }
    return -1;
  }
}

export interface ClusterFormat {
  ctime: bigint;
  copies: number;
  copyPolicy: number;
  flags: number;
  blockSizeShift: number;
  store: string;
}

export const UNFORMATTED: ClusterFormat = { ctime: 0n, copies: 3, copyPolicy: 0, flags: 0, blockSizeShift: SD_DEFAULT_BLOCK_SIZE_SHIFT, store: 'plain' };

export type StatusCode = (typeof ClusterStatus)[keyof typeof ClusterStatus];

// ---- DIR/unverified: copies unverified since the node came back, a line "<key hex> <epoch>" each ----

const UNVERIFIED_FILE = 'unverified';

export function encodeUnverified(copies: ReadonlyMap<bigint, number>): string {
  return [...copies].map(([key, epoch]) => `${key.toString(16)} ${epoch}\n`).join('');
}

/** Lines that do not parse are skipped: the file only ever makes copies look older, never newer. */
export function decodeUnverified(text: string): Map<bigint, number> {
  const out = new Map<bigint, number>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{1,40}) (\d{1,10})$/.exec(line);
    if (m) out.set(BigInt(`0x${m[1]}`), Number(m[2]));
  }
  return out;
}

export async function readUnverifiedFile(dir: string): Promise<Map<bigint, number>> {
  try {
    return decodeUnverified(await readFile(join(dir, UNVERIFIED_FILE), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
}

/** Replaced atomically; removed when empty. */
export async function writeUnverifiedFile(dir: string, copies: ReadonlyMap<bigint, number>): Promise<void> {
  const path = join(dir, UNVERIFIED_FILE);
  if (copies.size === 0) {
    await rm(path, { force: true });
    return;
  }
  await writeFile(`${path}.tmp`, encodeUnverified(copies));
  await rename(`${path}.tmp`, path);
}

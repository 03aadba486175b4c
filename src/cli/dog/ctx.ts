// The state one dog invocation carries around (daemon address, -r/-v/-j, the node list read at
// start-up) and the request helpers every command uses: dog_exec_req, send_light_req,
// dog_read_object / dog_write_object, parse_vdi, find_vdi_name, read_vdi_obj, do_vdi_create,
// confirm(). All of them talk to the daemon over the wire protocol only.

import { SheepClient, type SheepResponse } from '../../client/sheep-client.js';
import {
  EPOCH_LOG_HEADER_SIZE,
  Flag,
  Op,
  Res,
  SD_INODE_DATA_INDEX,
  SD_INODE_DATA_INDEX_SIZE,
  SD_INODE_HEADER_SIZE,
  SD_INODE_SIZE,
  SD_MAX_NODES,
  SD_MAX_VDI_LEN,
  SD_MAX_VDI_TAG_LEN,
  SD_NODE_SIZE,
  SD_VDI_BITMAP_SIZE,
  INODE_BTREE_MAGIC,
  resultString,
} from '../../proto/constants.js';
import type { ReqInit } from '../../proto/header.js';
import { readVdiRsp } from '../../proto/header.js';
import { vidToDataOid, vidToVdiOid } from '../../proto/oid.js';
import {
  decodeInodeHeader,
  decodeSdNodes,
  formatAddrPort,
  sortNodes,
  type InodeHeader,
  type SdNode,
} from '../../proto/structs.js';
import { EXIT_FAILURE, EXIT_SUCCESS, EXIT_SYSFAIL, exit, hex16, out, sdErr, strnumberRaw } from './common.js';

export interface Nid {
  addr: string;
  port: number;
}

/** strerror() texts for the errno names Node reports on connect/read failures. */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  EPIPE: 'Broken pipe',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EINVAL: 'Invalid argument',
};

function errnoText(message: string): string {
  const m = /\b(E[A-Z]{2,})\b/.exec(message);
  if (m && ERRNO_TEXT[m[1]!]) return ERRNO_TEXT[m[1]!]!;
  if (/timed out/.test(message)) return 'Connection timed out';
  return message;
}

// ---------------------------------------------------------------------------------------------
// Stdin: exact-length reads (xread) and line reads (fgets) on top of the stream API
// ---------------------------------------------------------------------------------------------

export class StdinReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private started = false;
  private wake: (() => void) | null = null;

  private start(): void {
    if (this.started) return;
    this.started = true;
    const s = process.stdin;
    s.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.buffered += c.length;
      if (this.buffered > 8 << 20) s.pause();
      this.poke();
    });
    s.on('end', () => {
      this.ended = true;
      this.poke();
    });
    s.on('error', () => {
      this.ended = true;
      this.poke();
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  private async fill(n: number): Promise<void> {
    this.start();
    while (this.buffered < n && !this.ended) {
      process.stdin.resume();
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  private take(n: number): Buffer {
    const k = Math.min(n, this.buffered);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const res = Buffer.from(all.subarray(0, k));
    const rest = all.subarray(k);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return res;
  }

  /** Up to n bytes; fewer only at end of input (xread). */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.take(n);
  }

  /** fgets(buf, size): up to size-1 bytes, stopping after a newline; null at EOF. */
  async readLine(size: number): Promise<string | null> {
    this.start();
    for (;;) {
      const all = this.chunks.length ? Buffer.concat(this.chunks) : Buffer.alloc(0);
      this.chunks = all.length ? [all] : [];
      const nl = all.indexOf(10);
      if (nl >= 0 && nl < size - 1) return this.take(nl + 1).toString('latin1');
      if (all.length >= size - 1) return this.take(size - 1).toString('latin1');
      if (this.ended) return all.length ? this.take(all.length).toString('latin1') : null;
      process.stdin.resume();
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  close(): void {
    if (this.started) process.stdin.pause();
  }
}

// ---------------------------------------------------------------------------------------------
// Inode as dog holds it: the header plus (part of) data_vdi_id[]
// ---------------------------------------------------------------------------------------------

export class Inode {
  readonly h: InodeHeader;
  /** hyper volumes: idx -> vid collected from the B-tree */
  private hyper: Map<number, number> | null = null;

  constructor(readonly buf: Buffer) {
    this.h = decodeInodeHeader(buf);
  }

  get objectSize(): number {
    return 2 ** this.h.blockSizeShift;
  }

  /** count_data_objs(): DIV_ROUND_UP(vdi_size, object size) */
  get nrDataObjs(): number {
    return Number((this.h.vdiSize + BigInt(this.objectSize) - 1n) / BigInt(this.objectSize));
  }

  isSnapshot(): boolean {
    return this.h.snapCtime !== 0n;
  }

  isHyper(): boolean {
    return this.h.storePolicy !== 0;
  }

  /** sd_inode_get_vid() */
  getVid(idx: number): number {
    if (this.hyper) return this.hyper.get(idx) ?? 0;
    const off = SD_INODE_HEADER_SIZE + 4 * idx;
    if (idx < 0 || idx >= SD_INODE_DATA_INDEX || off + 4 > this.buf.length) return 0;
    return this.buf.readUInt32LE(off);
  }

  /**
   * sd_inode_index_walk() for hyper volumes: the (idx, vid) pairs of the loaded B-tree in index
   * order; null for flat volumes (walk 0..nrDataObjs with getVid instead).
   */
  hyperEntries(): Array<[number, number]> | null {
    if (!this.hyper) return null;
    return [...this.hyper.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** sd_inode_set_vid() on the in-memory copy (flat volumes) */
  setVid(idx: number, vid: number): void {
    if (this.hyper) {
      this.hyper.set(idx, vid);
      return;
    }
    this.buf.writeUInt32LE(vid >>> 0, SD_INODE_HEADER_SIZE + 4 * idx);
  }

  /** B-tree header of a hyper volume (magic, depth, entries) */
  btreeHeader(): { magic: number; depth: number; entries: number } {
    const o = SD_INODE_HEADER_SIZE;
    if (this.buf.length < o + 8) return { magic: 0, depth: 0, entries: 0 };
    return { magic: this.buf.readUInt16LE(o), depth: this.buf.readUInt16LE(o + 2), entries: this.buf.readUInt32LE(o + 4) };
  }

  /** Bytes of data_vdi_id[] worth reading after the header (sd_inode_get_meta_size). */
  metaSize(size: number): number {
    if (!this.isHyper()) {
      let len = this.nrDataObjs * 4;
      const cap = size - SD_INODE_HEADER_SIZE - 8 * SD_INODE_DATA_INDEX;
      if (cap > 0 && len > cap) len = cap;
      return Math.min(len, 4 * SD_INODE_DATA_INDEX);
    }
    const { depth, entries } = this.btreeHeader();
    const entrySize = depth === 2 ? 16 : 8;
    return Math.min(8 + entries * entrySize, 4 * SD_INODE_DATA_INDEX);
  }

  /** Loads the index of a hyper volume (reads leaf nodes for depth-2 trees). */
  async loadHyper(ctx: DogContext): Promise<void> {
    if (!this.isHyper()) return;
    const map = new Map<number, number>();
    const { magic, depth, entries } = this.btreeHeader();
    const o = SD_INODE_HEADER_SIZE + 8;
    if (magic === INODE_BTREE_MAGIC && depth === 1) {
      for (let i = 0; i < entries && o + 8 * i + 8 <= this.buf.length; i++)
        map.set(this.buf.readUInt32LE(o + 8 * i), this.buf.readUInt32LE(o + 8 * i + 4));
    } else if (magic === INODE_BTREE_MAGIC && depth === 2) {
      for (let i = 0; i < entries && o + 16 * i + 16 <= this.buf.length; i++) {
        const leafOid = this.buf.readBigUInt64LE(o + 16 * i + 8);
        const leaf = Buffer.alloc(SD_INODE_DATA_INDEX_SIZE);
        const r = await ctx.readObject(leafOid, leaf, SD_INODE_DATA_INDEX_SIZE, 0, true);
        if (r !== Res.SUCCESS) {
          sdErr(`failed to read ${leafOid.toString(16).padStart(16, '0')}`);
          continue;
        }
        const n = leaf.readUInt32LE(4);
        for (let k = 0; k < n && 8 + 8 * k + 8 <= leaf.length; k++)
          map.set(leaf.readUInt32LE(8 + 8 * k), leaf.readUInt32LE(8 + 8 * k + 4));
      }
    }
    this.hyper = map;
  }

  /** sd_inode_stat(): objects owned by this VDI and objects shared with others (first nr_objs). */
  stat(): { my: number; cow: number } {
    let my = 0,
      cow = 0;
    const vid = this.h.vdiId;
    if (this.hyper) {
      for (const v of this.hyper.values()) {
        if (v === 0) continue;
        if (v === vid) my++;
        else cow++;
      }
      return { my, cow };
    }
    const nr = this.nrDataObjs;
    for (let i = 0; i < nr; i++) {
      const v = this.getVid(i);
      if (v === 0) continue;
      if (v === vid) my++;
      else cow++;
    }
    return { my, cow };
  }
}

export type VdiParser = (
  vid: number,
  name: string,
  tag: string,
  snapid: number,
  flags: number,
  inode: Inode,
) => void | Promise<void>;

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

export class DogContext {
  sdNid: Nid = { addr: '127.0.0.1', port: 7000 };
  raw = false;
  verbose = false;
  json = false;
  elapsed = false;
  highlight = true;
  epoch = 0;
  nodes: SdNode[] = [];
  zonesNr = 0;
  /** cluster flags learnt by the start-up probe (STAT_CLUSTER) */
  clusterFlags = 0;
  /** set when a connection attempt failed (main() then prints a hint on a terminal) */
  connectFailed = false;
  readonly stdin = new StdinReader();
  private clients = new Map<string, Promise<SheepClient | null>>();

  get nodesNr(): number {
    return this.nodes.length;
  }

  strnumber(size: bigint | number): string {
    return strnumberRaw(size, this.raw);
  }

  private connect(nid: Nid): Promise<SheepClient | null> {
    const key = `${nid.addr}:${nid.port}`;
    let p = this.clients.get(key);
    if (p) {
      return p.then((c) => {
        if (c && !c.closed) return c;
        this.clients.delete(key);
        return this.connect(nid);
      });
    }
    p = SheepClient.connect(nid.addr, nid.port, 10_000).then(
      (c) => c,
      (e: Error) => {
        // dog's sockfd cache tries a cached fd and then a plain connect: two messages
        const msg = `failed to connect to ${formatAddrPort(nid.addr, nid.port)}: ${errnoText(e.message)}`;
        sdErr(msg);
        sdErr(msg);
        this.connectFailed = true;
        this.clients.delete(key);
        return null;
      },
    );
    this.clients.set(key, p);
    return p;
  }

  /**
   * dog_exec_req(): sends one request and waits for its answer. Returns null (the C -1) when
   * the node cannot be reached; the reason has been printed already.
   */
  async exec(req: ReqInit, data?: Uint8Array, nid: Nid = this.sdNid): Promise<SheepResponse | null> {
    const c = await this.connect(nid);
    if (!c) return null;
    try {
      return await c.request(req, data);
    } catch (e) {
      sdErr(`failed to read from socket: ${errnoText((e as Error).message)}`);
      this.clients.delete(`${nid.addr}:${nid.port}`);
      return null;
    }
  }

  /** send_light_req(): header-only request; -1 on failure (printing the result text). */
  async sendLightReq(req: ReqInit, nid: Nid = this.sdNid): Promise<{ ret: number; rsp: SheepResponse | null }> {
    const rsp = await this.exec(req, undefined, nid);
    if (!rsp) return { ret: -1, rsp };
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Response's result: ${resultString(rsp.result)}`);
      return { ret: -1, rsp };
    }
    return { ret: 0, rsp };
  }

  close(): void {
    for (const p of this.clients.values()) void p.then((c) => c?.close());
    this.clients.clear();
    this.stdin.close();
  }

  // -------------------------------------------------------------------------------------------
  // Objects
  // -------------------------------------------------------------------------------------------

  /** dog_read_object(): reads into `into`; returns an SD_RES code. */
  async readObject(oid: bigint, into: Buffer, len: number, offset: number, direct: boolean): Promise<number> {
    const rsp = await this.exec({
      opcode: Op.READ_OBJ,
      dataLength: len,
      flags: direct ? Flag.CMD_DIRECT : 0,
      obj: { oid, offset },
    });
    if (!rsp) {
      sdErr(`Failed to read object ${hex16(oid)}`);
      return Res.EIO;
    }
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Failed to read object ${hex16(oid)} ${resultString(rsp.result)}`);
      return rsp.result;
    }
    rsp.data.copy(into, 0, 0, Math.min(len, rsp.data.length, into.length));
    return Res.SUCCESS;
  }

  /** dog_write_object(): CREATE_AND_WRITE_OBJ or WRITE_OBJ; returns an SD_RES code. */
  async writeObject(
    oid: bigint,
    cowOid: bigint,
    data: Uint8Array,
    offset: number,
    flags: number,
    copies: number,
    copyPolicy: number,
    create: boolean,
    direct: boolean,
  ): Promise<number> {
    let f = flags | Flag.CMD_WRITE;
    if (cowOid) f |= Flag.CMD_COW;
    if (direct) f |= Flag.CMD_DIRECT;
    const rsp = await this.exec(
      {
        opcode: create ? Op.CREATE_AND_WRITE_OBJ : Op.WRITE_OBJ,
        flags: f,
        obj: { oid, cowOid, copies, copyPolicy, offset },
      },
      data,
    );
    if (!rsp) {
      sdErr(`Failed to write object ${hex16(oid)}`);
      return Res.EIO;
    }
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Failed to write object ${hex16(oid)}: ${resultString(rsp.result)}`);
      return rsp.result;
    }
    return Res.SUCCESS;
  }

  /** sd_inode_write_vid() for flat volumes: a 4-byte WRITE_OBJ of data_vdi_id[idx]. */
  async inodeWriteVid(inode: Inode, idx: number, vid: number, value: number, flags: number, create: boolean, direct: boolean): Promise<number> {
    if (inode.isHyper()) {
      sdErr('writing to a hyper volume is not supported by this dog');
      return Res.NO_SUPPORT;
    }
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    return this.writeObject(
      vidToVdiOid(vid),
      0n,
      b,
      SD_INODE_HEADER_SIZE + 4 * idx,
      flags,
      inode.h.nrCopies,
      inode.h.copyPolicy,
      create,
      direct,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Node list (update_node_list)
  // -------------------------------------------------------------------------------------------

  /** Returns -1 on failure (caller prints "Failed to get node list"), exits when no daemon. */
  async updateNodeList(maxNodes = SD_MAX_NODES): Promise<number> {
    const rsp = await this.exec({ opcode: Op.GET_NODE_LIST, dataLength: SD_NODE_SIZE * maxNodes });
    if (!rsp) return -1;
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`Failed to update node list: ${resultString(rsp.result)}`);
      return -1;
    }
    const nr = Math.floor(rsp.data.length / SD_NODE_SIZE);
    if (nr === 0) {
      sdErr('There are no active sheep daemons');
      exit(EXIT_FAILURE);
    }
    if (nr > maxNodes) return -1;
    this.nodes = sortNodes(decodeSdNodes(rsp.data, nr));
    this.zonesNr = new Set(this.nodes.map((n) => n.zone)).size;
    // probe: is the cluster in disk mode? (only the epoch_log header is wanted)
    const st = await this.exec({ opcode: Op.STAT_CLUSTER, dataLength: EPOCH_LOG_HEADER_SIZE, cluster: { nodesNr: 0 } });
    if (!st) return -1;
    if (st.data.length >= 32) this.clusterFlags = st.data.readUInt16LE(30);
    this.epoch = st.epoch;
    return 0;
  }

  // -------------------------------------------------------------------------------------------
  // VDIs
  // -------------------------------------------------------------------------------------------

  /**
   * parse_vdi(): walks the in-use bitmap (minus deleted VDIs), reads every inode header (and,
   * for `full`, the used part of data_vdi_id) and calls fn. Returns <0 on a transport failure.
   */
  async parseVdi(fn: VdiParser, full: boolean, noDeleted = true): Promise<number> {
    const inuse = await this.exec({ opcode: Op.READ_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
    if (!inuse) return -1;
    if (inuse.result !== Res.SUCCESS) {
      sdErr(resultString(inuse.result));
      return 0;
    }
    const deleted = await this.exec({ opcode: Op.READ_DEL_VDIS, dataLength: SD_VDI_BITMAP_SIZE });
    if (!deleted) return -1;
    if (deleted.result !== Res.SUCCESS) {
      sdErr(resultString(deleted.result));
      return 0;
    }
    const inuseBits = inuse.data;
    const delBits = deleted.data;
    for (let byte = 0; byte < inuseBits.length; byte++) {
      const v = inuseBits[byte]!;
      if (v === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if (!(v & (1 << bit))) continue;
        const nr = byte * 8 + bit;
        if (byte < delBits.length && delBits[byte]! & (1 << bit)) continue;
        const oid = vidToVdiOid(nr);
        const hdr = Buffer.alloc(SD_INODE_HEADER_SIZE + 8);
        const r = await this.readObject(oid, hdr, SD_INODE_HEADER_SIZE + 8, 0, true);
        if (r !== Res.SUCCESS) {
          sdErr('Failed to read inode header');
          continue;
        }
        if (noDeleted && hdr[0] === 0) continue;
        let inode = new Inode(hdr);
        if (full) {
          const rlen = inode.metaSize(SD_INODE_SIZE);
          const buf = Buffer.alloc(SD_INODE_HEADER_SIZE + Math.max(rlen, 8));
          hdr.copy(buf, 0);
          if (rlen > 0) {
            const part = Buffer.alloc(rlen);
            const r2 = await this.readObject(oid, part, rlen, SD_INODE_HEADER_SIZE, true);
            if (r2 !== Res.SUCCESS) {
              sdErr('Failed to read inode');
              continue;
            }
            part.copy(buf, SD_INODE_HEADER_SIZE);
          }
          inode = new Inode(buf);
          if (inode.isHyper()) await inode.loadHyper(this);
        }
        const snapid = inode.isSnapshot() ? inode.h.snapId : 0;
        await fn(inode.h.vdiId, inode.h.name, inode.h.tag, snapid, 0, inode);
      }
    }
    return 0;
  }

  /** find_vdi_name(): GET_VDI_INFO; returns {result, vid} (result EIO when unreachable). */
  async findVdiName(name: string, snapid: number, tag: string | null): Promise<{ result: number; vid: number }> {
    const buf = Buffer.alloc(SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN);
    pstrcpy(buf, 0, SD_MAX_VDI_LEN, name);
    if (tag !== null) pstrcpy(buf, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN, tag);
    const rsp = await this.exec({ opcode: Op.GET_VDI_INFO, flags: Flag.CMD_WRITE, vdi: { snapid } }, buf);
    if (!rsp) return { result: Res.EIO, vid: 0 };
    return { result: rsp.result, vid: rsp.result === Res.SUCCESS ? readVdiRsp(rsp.raw).vdiId : 0 };
  }

  /** read_vdi_obj(): look the VDI up and read `size` bytes of its inode. */
  async readVdiObj(name: string, snapid: number, tag: string | null, size: number): Promise<{ ret: number; vid: number; inode: Inode | null }> {
    const f = await this.findVdiName(name, snapid, tag);
    if (f.result !== Res.SUCCESS) {
      sdErr(`Failed to open VDI ${name} (snapshot id: ${snapid} snapshot tag: ${tag ?? '(null)'}): ${resultString(f.result)}`);
      return { ret: EXIT_FAILURE, vid: 0, inode: null };
    }
    const buf = Buffer.alloc(size);
    const r = await this.readObject(vidToVdiOid(f.vid), buf, size, 0, true);
    if (r !== Res.SUCCESS) {
      if (snapid) sdErr(`Failed to read a snapshot ${name}:${snapid}`);
      else if (tag && tag.length) sdErr(`Failed to read a snapshot ${name}:${tag}`);
      else sdErr(`Failed to read a vdi ${name}`);
      return { ret: EXIT_FAILURE, vid: 0, inode: null };
    }
    const inode = new Inode(buf);
    if (inode.isHyper() && size > SD_INODE_HEADER_SIZE) await inode.loadHyper(this);
    return { ret: EXIT_SUCCESS, vid: f.vid, inode };
  }

  /** NEW_VDI without printing: the result code and the new vid (result -1: no node answered). */
  async newVdiRequest(
    name: string,
    size: bigint,
    baseVid: number,
    snapshot: boolean,
    copies: number,
    copyPolicy: number,
    storePolicy: number,
    blockSizeShift: number,
  ): Promise<{ result: number; vid: number }> {
    const buf = Buffer.alloc(SD_MAX_VDI_LEN);
    pstrcpy(buf, 0, SD_MAX_VDI_LEN, name);
    const rsp = await this.exec(
      {
        opcode: Op.NEW_VDI,
        flags: Flag.CMD_WRITE,
        vdi: { baseVdiId: baseVid, snapid: snapshot ? 1 : 0, vdiSize: BigInt.asUintN(64, size), copies, copyPolicy, storePolicy, blockSizeShift },
      },
      buf,
    );
    if (!rsp) return { result: -1, vid: 0 };
    return { result: rsp.result, vid: rsp.result === Res.SUCCESS ? readVdiRsp(rsp.raw).vdiId : 0 };
  }

  /** do_vdi_create(): NEW_VDI, printing dog's message on failure. */
  async doVdiCreate(
    name: string,
    size: bigint,
    baseVid: number,
    snapshot: boolean,
    copies: number,
    copyPolicy: number,
    storePolicy: number,
    blockSizeShift: number,
  ): Promise<{ ret: number; vid: number }> {
    const r = await this.newVdiRequest(name, size, baseVid, snapshot, copies, copyPolicy, storePolicy, blockSizeShift);
    if (r.result === -1) return { ret: EXIT_SYSFAIL, vid: 0 };
    if (r.result !== Res.SUCCESS) {
      sdErr(`Failed to create VDI ${name}: ${resultString(r.result)}`);
      return { ret: EXIT_FAILURE, vid: 0 };
    }
    return { ret: EXIT_SUCCESS, vid: r.vid };
  }

  /** confirm(): prints the question; anything but "yes…" on stdin ends dog with success. */
  async confirm(message: string): Promise<void> {
    out(message);
    const line = await this.stdin.readLine(8);
    if (line === null || line.slice(0, 3).toLowerCase() !== 'yes') exit(EXIT_SUCCESS);
  }

  dataOid(vid: number, idx: number): bigint {
    return vidToDataOid(vid, idx);
  }
}

/** pstrcpy(): copy at most len-1 bytes of s (UTF-8) and NUL-terminate. */
export function pstrcpy(buf: Buffer, offset: number, len: number, s: string): void {
  const b = Buffer.from(s, 'utf8');
  const n = Math.min(b.length, len - 1);
  b.copy(buf, offset, 0, n);
  buf.fill(0, offset + n, offset + len);
}

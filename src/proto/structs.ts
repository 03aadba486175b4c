// Byte-exact codecs for the structs Sheepdog puts on the wire and on disk (x86-64 layout,
// little-endian): node_id, sd_node, epoch_log, cluster_info, vdi_state, recovery_state,
// recovery_throttling, sheepdog_vdi_attr, md_info, and the sd_inode header / index.
// Offsets: /work/shared/sheepdog-protocol.md sections 5 and 7, checked against
// include/internal_proto.h and include/sheepdog_proto.h.

import { isIPv4, isIPv6 } from 'node:net';
import {
  CLUSTER_INFO_HEADER_SIZE,
  CLUSTER_INFO_SIZE,
  EPOCH_LOG_HEADER_SIZE,
  MD_INFO_SIZE,
  MD_MAX_DISK,
  NODE_ID_SIZE,
  PATH_MAX,
  RECOVERY_STATE_SIZE,
  RECOVERY_THROTTLING_SIZE,
  SD_ATTR_OBJ_SIZE,
  SD_INODE_DATA_INDEX,
  SD_INODE_DATA_VDI_ID_OFFSET,
  SD_INODE_GREF_OFFSET,
  SD_INODE_HEADER_SIZE,
  SD_INODE_SIZE,
  SD_MAX_COPIES,
  SD_MAX_NODES,
  SD_MAX_VDI_ATTR_KEY_LEN,
  SD_MAX_VDI_ATTR_VALUE_LEN,
  SD_MAX_VDI_LEN,
  SD_MAX_VDI_TAG_LEN,
  SD_MD_INFO_SIZE,
  SD_NODE_SIZE,
  STORE_LEN,
  VDI_STATE_SIZE,
} from './constants.js';

// ---------------------------------------------------------------------------------------------
// C strings
// ---------------------------------------------------------------------------------------------

/** UTF-8 text of a NUL-padded char[len] field (up to the first NUL). */
export function readCString(buf: Uint8Array, offset: number, len: number): string {
  let end = offset;
  const stop = Math.min(offset + len, buf.length);
  while (end < stop && buf[end] !== 0) end++;
  return Buffer.from(buf.buffer, buf.byteOffset + offset, end - offset).toString('utf8');
}

/** Writes s as UTF-8 into char[len] at offset, NUL-padding the rest; throws if it does not fit. */
export function writeCString(buf: Buffer, offset: number, len: number, s: string): void {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > len) throw new RangeError(`string of ${n} bytes does not fit in char[${len}]`);
  buf.write(s, offset, n, 'utf8');
  buf.fill(0, offset + n, offset + len);
}

// ---------------------------------------------------------------------------------------------
// Addresses (node_id.addr: IPv4 = 12 zero bytes + 4 address bytes, IPv6 = 16 bytes)
// ---------------------------------------------------------------------------------------------

function parseIPv6Into(s: string, out: Uint8Array, off: number): boolean {
  if (!isIPv6(s) || s.includes('%')) return false;
  const words: number[] = [];
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const res: number[] = [];
    const groups = part.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (i === groups.length - 1 && g.includes('.')) {
        if (!isIPv4(g)) return null;
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        res.push((a << 8) | b, (c << 8) | d);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        res.push(parseInt(g, 16));
      }
    }
    return res;
  };
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const tail = parseGroups(s.slice(dbl + 2));
    if (!head || !tail || head.length + tail.length > 7) return false;
    words.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else {
    const all = parseGroups(s);
    if (!all || all.length !== 8) return false;
    words.push(...all);
  }
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = words[i]! >> 8;
    out[off + 2 * i + 1] = words[i]! & 0xff;
  }
  return true;
}

/**
 * 16-byte node_id address for a textual IPv4 or IPv6 address (str_to_addr: a ':' selects IPv6).
 * The empty string gives 16 zero bytes (an unset io_addr).
 */
export function addrToBytes(addr: string, out: Uint8Array = new Uint8Array(16), offset = 0): Uint8Array {
  out.fill(0, offset, offset + 16);
  if (addr === '') return out;
  if (addr.includes(':')) {
    if (!parseIPv6Into(addr, out, offset)) throw new SyntaxError(`invalid IPv6 address: ${addr}`);
    return out;
  }
  if (!isIPv4(addr)) throw new SyntaxError(`invalid IPv4 address: ${addr}`);
  const p = addr.split('.');
  for (let i = 0; i < 4; i++) out[offset + 12 + i] = Number(p[i]);
  return out;
}

/**
 * Text of a 16-byte node_id address as sheep/dog print it (addr_to_str with port 0): IPv4
 * when bytes 0..11 are zero and byte 12 is not, else glibc inet_ntop() IPv6 text.
 */
export function bytesToAddr(bytes: Uint8Array, offset = 0): string {
  let v4 = bytes[offset + 12] !== 0;
  for (let i = 0; v4 && i < 12; i++) if (bytes[offset + i] !== 0) v4 = false;
  if (v4) return `${bytes[offset + 12]}.${bytes[offset + 13]}.${bytes[offset + 14]}.${bytes[offset + 15]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  // longest run of zero words (first wins on ties), used only if at least 2 long
  let bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (curBase === -1) { curBase = i; curLen = 1; } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) { bestBase = curBase; bestLen = curLen; }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += `${bytes[offset + 12]}.${bytes[offset + 13]}.${bytes[offset + 14]}.${bytes[offset + 15]}`;
      return s;
    }
    s += w[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) s += ':';
  return s;
}

/** "addr:port" as addr_to_str(addr, port) prints it (no brackets, even for IPv6). */
export function formatAddrPort(addr: string, port: number): string {
  return `${addr}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// node_id (40 B) and sd_node (80 B)
// ---------------------------------------------------------------------------------------------

export interface NodeId {
  addr: string;
  port: number;
  /** second "IO NIC" address; '' when unset (16 zero bytes) */
  ioAddr: string;
  ioPort: number;
}

export type NodeIdInit = { addr: string; port: number; ioAddr?: string; ioPort?: number };

export interface SdNode {
  nid: NodeId;
  nrVnodes: number;
  zone: number;
  /** free bytes + bytes used by objects; 0 for a gateway */
  space: bigint;
}

export type SdNodeInit = { nid: NodeIdInit; nrVnodes?: number; zone?: number; space?: bigint };

export function encodeNodeId(nid: NodeIdInit, out: Buffer = Buffer.alloc(NODE_ID_SIZE), offset = 0): Buffer {
  addrToBytes(nid.addr, out, offset);
  out.writeUInt16LE(nid.port, offset + 16);
  addrToBytes(nid.ioAddr ?? '', out, offset + 18);
  out.writeUInt16LE(nid.ioPort ?? 0, offset + 34);
  out.fill(0, offset + 36, offset + 40);
  return out;
}

function isZero(buf: Uint8Array, off: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (buf[off + i] !== 0) return false;
  return true;
}

export function decodeNodeId(buf: Buffer, offset = 0): NodeId {
  return {
    addr: bytesToAddr(buf, offset),
    port: buf.readUInt16LE(offset + 16),
    ioAddr: isZero(buf, offset + 18, 16) ? '' : bytesToAddr(buf, offset + 18),
    ioPort: buf.readUInt16LE(offset + 34),
  };
}

/** Writes an 80-byte sd_node (rb_node bytes zeroed). */
export function encodeSdNode(n: SdNodeInit, out: Buffer = Buffer.alloc(SD_NODE_SIZE), offset = 0): Buffer {
  out.fill(0, offset, offset + 24);
  encodeNodeId(n.nid, out, offset + 24);
  out.writeUInt16LE(n.nrVnodes ?? 0, offset + 64);
  out.writeUInt16LE(0, offset + 66);
  out.writeUInt32LE((n.zone ?? 0) >>> 0, offset + 68);
  out.writeBigUInt64LE(n.space ?? 0n, offset + 72);
  return out;
}

export function decodeSdNode(buf: Buffer, offset = 0): SdNode {
  return {
    nid: decodeNodeId(buf, offset + 24),
    nrVnodes: buf.readUInt16LE(offset + 64),
    zone: buf.readUInt32LE(offset + 68),
    space: buf.readBigUInt64LE(offset + 72),
  };
}

export function encodeSdNodes(nodes: readonly SdNodeInit[], out: Buffer = Buffer.alloc(nodes.length * SD_NODE_SIZE), offset = 0): Buffer {
  for (let i = 0; i < nodes.length; i++) encodeSdNode(nodes[i]!, out, offset + i * SD_NODE_SIZE);
  return out;
}

export function decodeSdNodes(buf: Buffer, count: number, offset = 0): SdNode[] {
  if (buf.length - offset < count * SD_NODE_SIZE) throw new RangeError(`${count} nodes need ${count * SD_NODE_SIZE} bytes`);
  const res: SdNode[] = new Array(count);
  for (let i = 0; i < count; i++) res[i] = decodeSdNode(buf, offset + i * SD_NODE_SIZE);
  return res;
}

/** node_id_cmp: memcmp of the 16 address bytes, then port. */
export function compareNodeId(a: NodeIdInit, b: NodeIdInit): number {
  const ab = addrToBytes(a.addr), bb = addrToBytes(b.addr);
  for (let i = 0; i < 16; i++) if (ab[i] !== bb[i]) return ab[i]! - bb[i]!;
  return a.port - b.port;
}

/** The order sheep keeps (and GET_NODE_LIST returns) nodes in: by address bytes, then port. */
export function sortNodes<T extends { nid: NodeIdInit }>(nodes: readonly T[]): T[] {
  const keyed = nodes.map((n) => ({ n, a: addrToBytes(n.nid.addr) }));
  keyed.sort((x, y) => {
    for (let i = 0; i < 16; i++) if (x.a[i] !== y.a[i]) return x.a[i]! - y.a[i]!;
    return x.n.nid.port - y.n.nid.port;
  });
  return keyed.map((k) => k.n);
}

// ---------------------------------------------------------------------------------------------
// epoch_log (48 B + nodes)
// ---------------------------------------------------------------------------------------------

export interface EpochLog {
  ctime: bigint;
  /** time_t of the epoch change */
  time: bigint;
  epoch: number;
  disableRecovery: boolean;
  nrCopies: number;
  copyPolicy: number;
  flags: number;
  drvName: string;
  nodes: SdNode[];
}

export type EpochLogInit = Omit<EpochLog, 'nodes'> & { nodes: readonly SdNodeInit[] };

export function epochLogSize(nodeSlots: number): number {
  return EPOCH_LOG_HEADER_SIZE + nodeSlots * SD_NODE_SIZE;
}

/**
 * One epoch_log record: header with nr_nodes = nodes.length, then `nodeSlots` sd_node slots
 * (STAT_CLUSTER records are 48 + nodes_nr×80 bytes; unused slots stay zero).
 */
export function encodeEpochLog(
  log: EpochLogInit,
  nodeSlots: number = log.nodes.length,
  out?: Buffer,
  offset = 0,
): Buffer {
  if (log.nodes.length > nodeSlots) throw new RangeError(`${log.nodes.length} nodes do not fit in ${nodeSlots} slots`);
  const size = epochLogSize(nodeSlots);
  const b = out ?? Buffer.alloc(size);
  b.fill(0, offset, offset + size);
  b.writeBigUInt64LE(log.ctime, offset);
  b.writeBigUInt64LE(log.time, offset + 8);
  b.writeUInt32LE(log.epoch, offset + 16);
  b.writeUInt32LE(log.nodes.length, offset + 20);
  b[offset + 24] = log.disableRecovery ? 1 : 0;
  b[offset + 25] = log.nrCopies;
  b[offset + 26] = log.copyPolicy;
  b.writeUInt16LE(log.flags, offset + 30);
  writeCString(b, offset + 32, STORE_LEN, log.drvName);
  encodeSdNodes(log.nodes, b, offset + EPOCH_LOG_HEADER_SIZE);
  return b;
}

/** Decodes one record; reads nr_nodes nodes right after the 48-byte header. */
export function decodeEpochLog(buf: Buffer, offset = 0): EpochLog {
  const nrNodes = buf.readUInt32LE(offset + 20);
  return {
    ctime: buf.readBigUInt64LE(offset),
    time: buf.readBigUInt64LE(offset + 8),
    epoch: buf.readUInt32LE(offset + 16),
    disableRecovery: buf[offset + 24] !== 0,
    nrCopies: buf[offset + 25]!,
    copyPolicy: buf[offset + 26]!,
    flags: buf.readUInt16LE(offset + 30),
    drvName: readCString(buf, offset + 32, STORE_LEN),
    nodes: decodeSdNodes(buf, nrNodes, offset + EPOCH_LOG_HEADER_SIZE),
  };
}

// ---------------------------------------------------------------------------------------------
// cluster_info (491,568 B)
// ---------------------------------------------------------------------------------------------

export interface ClusterInfo {
  protoVer: number;
  disableRecovery: boolean;
  epoch: number;
  ctime: bigint;
  flags: number;
  nrCopies: number;
  copyPolicy: number;
  /** ClusterStatus */
  status: number;
  blockSizeShift: number;
  defaultStore: string;
  /** node list at `epoch` (nr_nodes = nodes.length) */
  nodes: SdNode[];
}

export type ClusterInfoInit = Omit<ClusterInfo, 'nodes'> & { nodes: readonly SdNodeInit[] };

export function encodeClusterInfo(ci: ClusterInfoInit, out?: Buffer, offset = 0): Buffer {
  if (ci.nodes.length > SD_MAX_NODES) throw new RangeError(`too many nodes: ${ci.nodes.length}`);
  const b = out ?? Buffer.alloc(CLUSTER_INFO_SIZE);
  b.fill(0, offset, offset + CLUSTER_INFO_SIZE);
  b[offset] = ci.protoVer;
  b[offset + 1] = ci.disableRecovery ? 1 : 0;
  b.writeInt16LE(ci.nodes.length, offset + 2);
  b.writeUInt32LE(ci.epoch, offset + 4);
  b.writeBigUInt64LE(ci.ctime, offset + 8);
  b.writeUInt16LE(ci.flags, offset + 16);
  b[offset + 18] = ci.nrCopies;
  b[offset + 19] = ci.copyPolicy;
  b[offset + 20] = ci.status;
  b[offset + 21] = ci.blockSizeShift;
  writeCString(b, offset + 25, STORE_LEN, ci.defaultStore);
  encodeSdNodes(ci.nodes, b, offset + CLUSTER_INFO_HEADER_SIZE);
  return b;
}

/** Decodes the header and nr_nodes nodes; the buffer may be shorter than 491,568 bytes. */
export function decodeClusterInfo(buf: Buffer, offset = 0): ClusterInfo {
  const nrNodes = Math.max(0, buf.readInt16LE(offset + 2));
  return {
    protoVer: buf[offset]!,
    disableRecovery: buf[offset + 1] !== 0,
    epoch: buf.readUInt32LE(offset + 4),
    ctime: buf.readBigUInt64LE(offset + 8),
    flags: buf.readUInt16LE(offset + 16),
    nrCopies: buf[offset + 18]!,
    copyPolicy: buf[offset + 19]!,
    status: buf[offset + 20]!,
    blockSizeShift: buf[offset + 21]!,
    defaultStore: readCString(buf, offset + 25, STORE_LEN),
    nodes: decodeSdNodes(buf, nrNodes, offset + CLUSTER_INFO_HEADER_SIZE),
  };
}

// ---------------------------------------------------------------------------------------------
// vdi_state (1428 B)
// ---------------------------------------------------------------------------------------------

export interface VdiState {
  vid: number;
  nrCopies: number;
  snapshot: boolean;
  deleted: boolean;
  copyPolicy: number;
  blockSizeShift: number;
  parentVid: number;
  /** LockState */
  lockState: number;
  lockOwner: NodeId;
  /** SharedLockState per participant (iSCSI multipath), length = nr_participants */
  participantsState: number[];
  participants: NodeId[];
}

export type VdiStateInit = Omit<VdiState, 'lockOwner' | 'participants'> & {
  lockOwner: NodeIdInit;
  participants: readonly NodeIdInit[];
};

export function encodeVdiState(vs: VdiStateInit, out?: Buffer, offset = 0): Buffer {
  const n = vs.participants.length;
  if (n > SD_MAX_COPIES || vs.participantsState.length !== n) throw new RangeError('bad participants');
  const b = out ?? Buffer.alloc(VDI_STATE_SIZE);
  b.fill(0, offset, offset + VDI_STATE_SIZE);
  b.writeUInt32LE(vs.vid, offset);
  b[offset + 4] = vs.nrCopies;
  b[offset + 5] = vs.snapshot ? 1 : 0;
  b[offset + 6] = vs.deleted ? 1 : 0;
  b[offset + 7] = vs.copyPolicy;
  b[offset + 8] = vs.blockSizeShift;
  b.writeUInt32LE(vs.parentVid, offset + 12);
  b.writeUInt32LE(vs.lockState, offset + 16);
  encodeNodeId(vs.lockOwner, b, offset + 20);
  b.writeUInt32LE(n, offset + 60);
  for (let i = 0; i < n; i++) {
    b.writeUInt32LE(vs.participantsState[i]!, offset + 64 + 4 * i);
    encodeNodeId(vs.participants[i]!, b, offset + 188 + NODE_ID_SIZE * i);
  }
  return b;
}

export function decodeVdiState(buf: Buffer, offset = 0): VdiState {
  const n = Math.min(buf.readUInt32LE(offset + 60), SD_MAX_COPIES);
  const participantsState: number[] = [];
  const participants: NodeId[] = [];
  for (let i = 0; i < n; i++) {
    participantsState.push(buf.readUInt32LE(offset + 64 + 4 * i));
    participants.push(decodeNodeId(buf, offset + 188 + NODE_ID_SIZE * i));
  }
  return {
    vid: buf.readUInt32LE(offset),
    nrCopies: buf[offset + 4]!,
    snapshot: buf[offset + 5] !== 0,
    deleted: buf[offset + 6] !== 0,
    copyPolicy: buf[offset + 7]!,
    blockSizeShift: buf[offset + 8]!,
    parentVid: buf.readUInt32LE(offset + 12),
    lockState: buf.readUInt32LE(offset + 16),
    lockOwner: decodeNodeId(buf, offset + 20),
    participantsState,
    participants,
  };
}

// ---------------------------------------------------------------------------------------------
// recovery_state (24 B), recovery_throttling (24 B)
// ---------------------------------------------------------------------------------------------

export interface RecoveryState {
  inRecovery: boolean;
  /** RecoveryPhase */
  state: number;
  nrFinished: bigint;
  nrTotal: bigint;
}

export function encodeRecoveryState(rs: RecoveryState, out?: Buffer, offset = 0): Buffer {
  const b = out ?? Buffer.alloc(RECOVERY_STATE_SIZE);
  b.fill(0, offset, offset + RECOVERY_STATE_SIZE);
  b[offset] = rs.inRecovery ? 1 : 0;
  b.writeUInt32LE(rs.state, offset + 4);
  b.writeBigUInt64LE(rs.nrFinished, offset + 8);
  b.writeBigUInt64LE(rs.nrTotal, offset + 16);
  return b;
}

export function decodeRecoveryState(buf: Buffer, offset = 0): RecoveryState {
  return {
    inRecovery: buf[offset] !== 0,
    state: buf.readUInt32LE(offset + 4),
    nrFinished: buf.readBigUInt64LE(offset + 8),
    nrTotal: buf.readBigUInt64LE(offset + 16),
  };
}

export interface RecoveryThrottling {
  maxExecCount: number;
  queueWorkInterval: bigint;
  throttling: boolean;
}

export function encodeRecoveryThrottling(rt: RecoveryThrottling, out?: Buffer, offset = 0): Buffer {
  const b = out ?? Buffer.alloc(RECOVERY_THROTTLING_SIZE);
  b.fill(0, offset, offset + RECOVERY_THROTTLING_SIZE);
  b.writeUInt32LE(rt.maxExecCount, offset);
  b.writeBigUInt64LE(rt.queueWorkInterval, offset + 8);
  b[offset + 16] = rt.throttling ? 1 : 0;
  return b;
}

export function decodeRecoveryThrottling(buf: Buffer, offset = 0): RecoveryThrottling {
  return {
    maxExecCount: buf.readUInt32LE(offset),
    queueWorkInterval: buf.readBigUInt64LE(offset + 8),
    throttling: buf[offset + 16] !== 0,
  };
}

// ---------------------------------------------------------------------------------------------
// sheepdog_vdi_attr (66,320 B)
// ---------------------------------------------------------------------------------------------

export const VdiAttrOff = { name: 0, tag: 256, ctime: 512, snapId: 520, valueLen: 524, key: 528, value: 784 } as const;

export interface VdiAttr {
  name: string;
  tag: string;
  ctime: bigint;
  snapId: number;
  valueLen: number;
  key: string;
  value: Buffer;
}

export type VdiAttrInit = { name: string; tag?: string; ctime?: bigint; snapId?: number; valueLen?: number; key: string; value?: Uint8Array };

/** Full 66,320-byte attr object; value_len defaults to value.length. */
export function encodeVdiAttr(a: VdiAttrInit, out?: Buffer, offset = 0): Buffer {
  const value = a.value ?? new Uint8Array(0);
  if (value.length > SD_MAX_VDI_ATTR_VALUE_LEN) throw new RangeError('attr value too long');
  const b = out ?? Buffer.alloc(SD_ATTR_OBJ_SIZE);
  b.fill(0, offset, offset + SD_ATTR_OBJ_SIZE);
  writeCString(b, offset + VdiAttrOff.name, SD_MAX_VDI_LEN, a.name);
  writeCString(b, offset + VdiAttrOff.tag, SD_MAX_VDI_TAG_LEN, a.tag ?? '');
  b.writeBigUInt64LE(a.ctime ?? 0n, offset + VdiAttrOff.ctime);
  b.writeUInt32LE(a.snapId ?? 0, offset + VdiAttrOff.snapId);
  b.writeUInt32LE(a.valueLen ?? value.length, offset + VdiAttrOff.valueLen);
  writeCString(b, offset + VdiAttrOff.key, SD_MAX_VDI_ATTR_KEY_LEN, a.key);
  b.set(value, offset + VdiAttrOff.value);
  return b;
}

/** Decodes an attr; value = the first min(value_len, 65536, available) bytes (a copy). */
export function decodeVdiAttr(buf: Buffer, offset = 0): VdiAttr {
  const valueLen = buf.readUInt32LE(offset + VdiAttrOff.valueLen);
  const vStart = offset + VdiAttrOff.value;
  const vEnd = Math.min(vStart + Math.min(valueLen, SD_MAX_VDI_ATTR_VALUE_LEN), buf.length);
  return {
    name: readCString(buf, offset + VdiAttrOff.name, SD_MAX_VDI_LEN),
    tag: readCString(buf, offset + VdiAttrOff.tag, SD_MAX_VDI_TAG_LEN),
    ctime: buf.readBigUInt64LE(offset + VdiAttrOff.ctime),
    snapId: buf.readUInt32LE(offset + VdiAttrOff.snapId),
    valueLen,
    key: readCString(buf, offset + VdiAttrOff.key, SD_MAX_VDI_ATTR_KEY_LEN),
    value: Buffer.from(buf.subarray(vStart, Math.max(vStart, vEnd))),
  };
}

// ---------------------------------------------------------------------------------------------
// md_info (4120 B) / sd_md_info (263,688 B)
// ---------------------------------------------------------------------------------------------

export interface MdDisk {
  idx: number;
  free: bigint;
  used: bigint;
  path: string;
}

/** The MD_INFO payload: md_info[64] then int nr. */
export function encodeMdInfo(disks: readonly MdDisk[], out?: Buffer, offset = 0): Buffer {
  if (disks.length > MD_MAX_DISK) throw new RangeError('too many disks');
  const b = out ?? Buffer.alloc(SD_MD_INFO_SIZE);
  b.fill(0, offset, offset + SD_MD_INFO_SIZE);
  disks.forEach((d, i) => {
    const o = offset + i * MD_INFO_SIZE;
    b.writeInt32LE(d.idx, o);
    b.writeBigUInt64LE(d.free, o + 8);
    b.writeBigUInt64LE(d.used, o + 16);
    writeCString(b, o + 24, PATH_MAX, d.path);
  });
  b.writeInt32LE(disks.length, offset + MD_MAX_DISK * MD_INFO_SIZE);
  return b;
}

export function decodeMdInfo(buf: Buffer, offset = 0): MdDisk[] {
  const nr = Math.max(0, Math.min(MD_MAX_DISK, buf.readInt32LE(offset + MD_MAX_DISK * MD_INFO_SIZE)));
  const res: MdDisk[] = [];
  for (let i = 0; i < nr; i++) {
    const o = offset + i * MD_INFO_SIZE;
    res.push({
      idx: buf.readInt32LE(o),
      free: buf.readBigUInt64LE(o + 8),
      used: buf.readBigUInt64LE(o + 16),
      path: readCString(buf, o + 24, PATH_MAX),
    });
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// struct sd_inode
// ---------------------------------------------------------------------------------------------

/** Byte offsets of the sd_inode header fields (partial READ/WRITE_OBJ on inodes use them). */
export const InodeOff = {
  name: 0,
  tag: 256,
  createTime: 512,
  snapCtime: 520,
  vmClockNsec: 528,
  vdiSize: 536,
  vmStateSize: 544,
  copyPolicy: 552,
  storePolicy: 553,
  nrCopies: 554,
  blockSizeShift: 555,
  snapId: 556,
  vdiId: 560,
  parentVdiId: 564,
  btreeCounter: 568,
  dataVdiId: SD_INODE_DATA_VDI_ID_OFFSET,
  gref: SD_INODE_GREF_OFFSET,
} as const;

export interface InodeHeader {
  name: string;
  tag: string;
  createTime: bigint;
  /** ≠ 0 ⇒ snapshot */
  snapCtime: bigint;
  vmClockNsec: bigint;
  vdiSize: bigint;
  vmStateSize: bigint;
  copyPolicy: number;
  storePolicy: number;
  nrCopies: number;
  blockSizeShift: number;
  snapId: number;
  vdiId: number;
  parentVdiId: number;
  btreeCounter: number;
}

/**
 * Writes the first 4664 bytes of an inode (fields, then zeroes over the unused 572..4664 area)
 * into `out` (default: a new 4664-byte Buffer) and returns it. Missing fields are 0 / ''.
 */
export function encodeInodeHeader(h: Partial<InodeHeader>, out?: Buffer): Buffer {
  const b = out ?? Buffer.alloc(SD_INODE_HEADER_SIZE);
  if (b.length < SD_INODE_HEADER_SIZE) throw new RangeError('inode header needs 4664 bytes');
  writeCString(b, InodeOff.name, SD_MAX_VDI_LEN, h.name ?? '');
  writeCString(b, InodeOff.tag, SD_MAX_VDI_TAG_LEN, h.tag ?? '');
  b.writeBigUInt64LE(h.createTime ?? 0n, InodeOff.createTime);
  b.writeBigUInt64LE(h.snapCtime ?? 0n, InodeOff.snapCtime);
  b.writeBigUInt64LE(h.vmClockNsec ?? 0n, InodeOff.vmClockNsec);
  b.writeBigUInt64LE(h.vdiSize ?? 0n, InodeOff.vdiSize);
  b.writeBigUInt64LE(h.vmStateSize ?? 0n, InodeOff.vmStateSize);
  b[InodeOff.copyPolicy] = h.copyPolicy ?? 0;
  b[InodeOff.storePolicy] = h.storePolicy ?? 0;
  b[InodeOff.nrCopies] = h.nrCopies ?? 0;
  b[InodeOff.blockSizeShift] = h.blockSizeShift ?? 0;
  b.writeUInt32LE(h.snapId ?? 0, InodeOff.snapId);
  b.writeUInt32LE(h.vdiId ?? 0, InodeOff.vdiId);
  b.writeUInt32LE(h.parentVdiId ?? 0, InodeOff.parentVdiId);
  b.writeUInt32LE(h.btreeCounter ?? 0, InodeOff.btreeCounter);
  b.fill(0, InodeOff.btreeCounter + 4, SD_INODE_HEADER_SIZE);
  return b;
}

/** Decodes the header from a buffer holding at least the first 568 bytes of an inode. */
export function decodeInodeHeader(buf: Buffer): InodeHeader {
  return {
    name: readCString(buf, InodeOff.name, SD_MAX_VDI_LEN),
    tag: readCString(buf, InodeOff.tag, SD_MAX_VDI_TAG_LEN),
    createTime: buf.readBigUInt64LE(InodeOff.createTime),
    snapCtime: buf.readBigUInt64LE(InodeOff.snapCtime),
    vmClockNsec: buf.readBigUInt64LE(InodeOff.vmClockNsec),
    vdiSize: buf.readBigUInt64LE(InodeOff.vdiSize),
    vmStateSize: buf.readBigUInt64LE(InodeOff.vmStateSize),
    copyPolicy: buf[InodeOff.copyPolicy]!,
    storePolicy: buf[InodeOff.storePolicy]!,
    nrCopies: buf[InodeOff.nrCopies]!,
    blockSizeShift: buf[InodeOff.blockSizeShift]!,
    snapId: buf.readUInt32LE(InodeOff.snapId),
    vdiId: buf.readUInt32LE(InodeOff.vdiId),
    parentVdiId: buf.readUInt32LE(InodeOff.parentVdiId),
    btreeCounter: buf.length >= InodeOff.btreeCounter + 4 ? buf.readUInt32LE(InodeOff.btreeCounter) : 0,
  };
}

/** A zeroed full-size (12,587,576-byte) inode with the given header. */
export function newInodeBuffer(h: Partial<InodeHeader>): Buffer {
  const b = Buffer.alloc(SD_INODE_SIZE);
  encodeInodeHeader(h, b);
  return b;
}

function checkIdx(i: number): void {
  if (!(i >= 0 && i < SD_INODE_DATA_INDEX) || !Number.isInteger(i)) throw new RangeError(`inode index out of range: ${i}`);
}

/** Byte offset of data_vdi_id[i]. */
export function dataVdiIdOffset(i: number): number {
  return SD_INODE_DATA_VDI_ID_OFFSET + 4 * i;
}

/** data_vdi_id[i] of a (flat) inode buffer that covers that entry. */
export function inodeGetVid(buf: Buffer, i: number): number {
  checkIdx(i);
  return buf.readUInt32LE(SD_INODE_DATA_VDI_ID_OFFSET + 4 * i);
}

export function inodeSetVid(buf: Buffer, i: number, vid: number): void {
  checkIdx(i);
  buf.writeUInt32LE(vid >>> 0, SD_INODE_DATA_VDI_ID_OFFSET + 4 * i);
}

export interface GenerationReference {
  generation: number;
  count: number;
}

export function inodeGetGref(buf: Buffer, i: number): GenerationReference {
  checkIdx(i);
  const o = SD_INODE_GREF_OFFSET + 8 * i;
  return { generation: buf.readInt32LE(o), count: buf.readInt32LE(o + 4) };
}

export function inodeSetGref(buf: Buffer, i: number, generation: number, count: number): void {
  checkIdx(i);
  const o = SD_INODE_GREF_OFFSET + 8 * i;
  buf.writeInt32LE(generation | 0, o);
  buf.writeInt32LE(count | 0, o + 4);
}

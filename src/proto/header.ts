// 48-byte request / response headers (struct sd_req / struct sd_rsp), little-endian.
// Layouts: /work/shared/sheepdog-protocol.md section 1. Decoders read straight from the
// Buffer (no intermediate copies); `raw` is a 48-byte view for the union readers.

import { SD_HEADER_SIZE, defaultProtoVer } from './constants.js';

export interface ReqHeader {
  protoVer: number;
  opcode: number;
  flags: number;
  epoch: number;
  id: number;
  dataLength: number;
}

export interface RspHeader extends ReqHeader {
  result: number;
}

// -------- request unions --------

export interface ObjReq {
  oid: bigint;
  cowOid: bigint;
  copies: number;
  copyPolicy: number;
  ecIndex: number;
  tgtEpoch: number;
  /** byte offset inside the object (u32 at 40; QEMU's u64 is compatible below 4 GiB) */
  offset: number;
}

export interface VdiReq {
  vdiSize: bigint;
  baseVdiId: number;
  copies: number;
  copyPolicy: number;
  storePolicy: number;
  blockSizeShift: number;
  snapid: number;
  /** lock type (0 normal, 1 shared) */
  type: number;
}

export interface ClusterReq {
  oid: bigint;
  ctime: bigint;
  copies: number;
  copyPolicy: number;
  flags: number;
  tag: number;
  nodesNr: number;
  blockSizeShift: number;
}

export interface VdiStateReq {
  oldVid: number;
  newVid: number;
  copies: number;
  setBitmap: number;
  copyPolicy: number;
  blockSizeShift: number;
}

export interface RefReq {
  /** ledger oid */
  oid: bigint;
  generation: number;
  count: number;
}

export interface ForwReq {
  oid: bigint;
  /** 16 address bytes (see structs.addrToBytes / bytesToAddr) */
  addr: Uint8Array;
  port: number;
}

export interface VdiStateCheckpointReq {
  get: number;
  tgtEpoch: number;
  vid: number;
}

export interface InodeCoherenceReq {
  vid: number;
  validate: number;
}

// -------- response unions --------

export interface ObjRsp {
  copies: number;
  offset: bigint;
}

export interface VdiRsp {
  rsvd: number;
  vdiId: number;
  attrId: number;
  copies: number;
  blockSizeShift: number;
}

export interface NodeRsp {
  nrNodes: number;
  storeSize: bigint;
  storeFree: bigint;
}

export interface HashRsp {
  /** 20-byte SHA-1 */
  digest: Buffer;
}

export interface ClusterDefaultRsp {
  nrCopies: number;
  copyPolicy: number;
  blockSizeShift: number;
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

export function decodeReqHeader(buf: Buffer, offset = 0): ReqHeader & { raw: Buffer } {
  if (buf.length - offset < SD_HEADER_SIZE) throw new RangeError(`request header needs 48 bytes, have ${buf.length - offset}`);
  return {
    protoVer: buf[offset]!,
    opcode: buf[offset + 1]!,
    flags: buf.readUInt16LE(offset + 2),
    epoch: buf.readUInt32LE(offset + 4),
    id: buf.readUInt32LE(offset + 8),
    dataLength: buf.readUInt32LE(offset + 12),
    raw: buf.subarray(offset, offset + SD_HEADER_SIZE),
  };
}

export function readObjReq(raw: Buffer): ObjReq {
  return {
    oid: raw.readBigUInt64LE(16),
    cowOid: raw.readBigUInt64LE(24),
    copies: raw[32]!,
    copyPolicy: raw[33]!,
    ecIndex: raw[34]!,
    tgtEpoch: raw.readUInt32LE(36),
    offset: raw.readUInt32LE(40),
  };
}

/** Just the obj.oid of a request (the hot-path field), without building an ObjReq. */
export function readReqOid(raw: Buffer): bigint {
  return raw.readBigUInt64LE(16);
}

export function readVdiReq(raw: Buffer): VdiReq {
  return {
    vdiSize: raw.readBigUInt64LE(16),
    baseVdiId: raw.readUInt32LE(24),
    copies: raw[28]!,
    copyPolicy: raw[29]!,
    storePolicy: raw[30]!,
    blockSizeShift: raw[31]!,
    snapid: raw.readUInt32LE(32),
    type: raw.readUInt32LE(36),
  };
}

export function readClusterReq(raw: Buffer): ClusterReq {
  return {
    oid: raw.readBigUInt64LE(16),
    ctime: raw.readBigUInt64LE(24),
    copies: raw[32]!,
    copyPolicy: raw[33]!,
    flags: raw.readUInt16LE(34),
    tag: raw.readUInt32LE(36),
    nodesNr: raw.readUInt32LE(40),
    blockSizeShift: raw[44]!,
  };
}

export function readVdiStateReq(raw: Buffer): VdiStateReq {
  return {
    oldVid: raw.readUInt32LE(16),
    newVid: raw.readUInt32LE(20),
    copies: raw[24]!,
    setBitmap: raw[25]!,
    copyPolicy: raw[26]!,
    blockSizeShift: raw[27]!,
  };
}

export function readRefReq(raw: Buffer): RefReq {
  return {
    oid: raw.readBigUInt64LE(16),
    generation: raw.readUInt32LE(24),
    count: raw.readUInt32LE(28),
  };
}

export function readForwReq(raw: Buffer): ForwReq {
  return {
    oid: raw.readBigUInt64LE(16),
    addr: new Uint8Array(raw.subarray(24, 40)),
    port: raw.readUInt16LE(40),
  };
}

export function readVdiStateCheckpointReq(raw: Buffer): VdiStateCheckpointReq {
  return { get: raw.readUInt32LE(16), tgtEpoch: raw.readUInt32LE(20), vid: raw.readUInt32LE(24) };
}

export function readInodeCoherenceReq(raw: Buffer): InodeCoherenceReq {
  return { vid: raw.readUInt32LE(16), validate: raw.readUInt32LE(20) };
}

/** Fields for encodeRequest: opcode is required, everything else defaults to 0 (protoVer to defaultProtoVer). */
export type ReqInit = { opcode: number } & Partial<ReqHeader> & {
  obj?: Partial<ObjReq>;
  vdi?: Partial<VdiReq>;
  cluster?: Partial<ClusterReq>;
  vdiState?: Partial<VdiStateReq>;
  ref?: Partial<RefReq>;
  forw?: Partial<ForwReq>;
  vdiStateCheckpoint?: Partial<VdiStateCheckpointReq>;
  inodeCoherence?: Partial<InodeCoherenceReq>;
};

/**
 * Writes a 48-byte request header at out[outOffset..+48) (zeroing the union first) and
 * returns `out` (a fresh 48-byte Buffer when none is given). Unions share bytes 16..47;
 * pass one of them (if several are given they are written in declaration order).
 */
export function encodeRequest(h: ReqInit, out?: Buffer, outOffset = 0): Buffer {
  const b = out ?? Buffer.allocUnsafe(SD_HEADER_SIZE);
  const o = outOffset;
  if (b.length - o < SD_HEADER_SIZE) throw new RangeError('encodeRequest: output buffer too small');
  b.fill(0, o, o + SD_HEADER_SIZE);
  b[o] = h.protoVer ?? defaultProtoVer(h.opcode);
  b[o + 1] = h.opcode;
  b.writeUInt16LE(h.flags ?? 0, o + 2);
  b.writeUInt32LE(h.epoch ?? 0, o + 4);
  b.writeUInt32LE(h.id ?? 0, o + 8);
  b.writeUInt32LE(h.dataLength ?? 0, o + 12);
  const { obj, vdi, cluster, vdiState, ref, forw, vdiStateCheckpoint: ck, inodeCoherence: ic } = h;
  if (obj) {
    b.writeBigUInt64LE(obj.oid ?? 0n, o + 16);
    b.writeBigUInt64LE(obj.cowOid ?? 0n, o + 24);
    b[o + 32] = obj.copies ?? 0;
    b[o + 33] = obj.copyPolicy ?? 0;
    b[o + 34] = obj.ecIndex ?? 0;
    b.writeUInt32LE(obj.tgtEpoch ?? 0, o + 36);
    b.writeUInt32LE(obj.offset ?? 0, o + 40);
  }
  if (vdi) {
    b.writeBigUInt64LE(vdi.vdiSize ?? 0n, o + 16);
    b.writeUInt32LE(vdi.baseVdiId ?? 0, o + 24);
    b[o + 28] = vdi.copies ?? 0;
    b[o + 29] = vdi.copyPolicy ?? 0;
    b[o + 30] = vdi.storePolicy ?? 0;
    b[o + 31] = vdi.blockSizeShift ?? 0;
    b.writeUInt32LE(vdi.snapid ?? 0, o + 32);
    b.writeUInt32LE(vdi.type ?? 0, o + 36);
  }
  if (cluster) {
    b.writeBigUInt64LE(cluster.oid ?? 0n, o + 16);
    b.writeBigUInt64LE(cluster.ctime ?? 0n, o + 24);
    b[o + 32] = cluster.copies ?? 0;
    b[o + 33] = cluster.copyPolicy ?? 0;
    b.writeUInt16LE(cluster.flags ?? 0, o + 34);
    b.writeUInt32LE(cluster.tag ?? 0, o + 36);
    b.writeUInt32LE(cluster.nodesNr ?? 0, o + 40);
    b[o + 44] = cluster.blockSizeShift ?? 0;
  }
  if (vdiState) {
    b.writeUInt32LE(vdiState.oldVid ?? 0, o + 16);
    b.writeUInt32LE(vdiState.newVid ?? 0, o + 20);
    b[o + 24] = vdiState.copies ?? 0;
    b[o + 25] = vdiState.setBitmap ?? 0;
    b[o + 26] = vdiState.copyPolicy ?? 0;
    b[o + 27] = vdiState.blockSizeShift ?? 0;
  }
  if (ref) {
    b.writeBigUInt64LE(ref.oid ?? 0n, o + 16);
    b.writeUInt32LE(ref.generation ?? 0, o + 24);
    b.writeUInt32LE(ref.count ?? 0, o + 28);
  }
  if (forw) {
    b.writeBigUInt64LE(forw.oid ?? 0n, o + 16);
    if (forw.addr) {
      if (forw.addr.length !== 16) throw new RangeError('forw.addr must be 16 bytes');
      b.set(forw.addr, o + 24);
    }
    b.writeUInt16LE(forw.port ?? 0, o + 40);
  }
  if (ck) {
    b.writeUInt32LE(ck.get ?? 0, o + 16);
    b.writeUInt32LE(ck.tgtEpoch ?? 0, o + 20);
    b.writeUInt32LE(ck.vid ?? 0, o + 24);
  }
  if (ic) {
    b.writeUInt32LE(ic.vid ?? 0, o + 16);
    b.writeUInt32LE(ic.validate ?? 0, o + 20);
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

export function decodeResponse(buf: Buffer, offset = 0): RspHeader & { raw: Buffer } {
  if (buf.length - offset < SD_HEADER_SIZE) throw new RangeError(`response header needs 48 bytes, have ${buf.length - offset}`);
  return {
    protoVer: buf[offset]!,
    opcode: buf[offset + 1]!,
    flags: buf.readUInt16LE(offset + 2),
    epoch: buf.readUInt32LE(offset + 4),
    id: buf.readUInt32LE(offset + 8),
    dataLength: buf.readUInt32LE(offset + 12),
    result: buf.readUInt32LE(offset + 16),
    raw: buf.subarray(offset, offset + SD_HEADER_SIZE),
  };
}

export function readObjRsp(raw: Buffer): ObjRsp {
  return { copies: raw[20]!, offset: raw.readBigUInt64LE(24) };
}

export function readVdiRsp(raw: Buffer): VdiRsp {
  return {
    rsvd: raw.readUInt32LE(20),
    vdiId: raw.readUInt32LE(24),
    attrId: raw.readUInt32LE(28),
    copies: raw[32]!,
    blockSizeShift: raw[33]!,
  };
}

export function readNodeRsp(raw: Buffer): NodeRsp {
  return {
    nrNodes: raw.readUInt32LE(20),
    storeSize: raw.readBigUInt64LE(32),
    storeFree: raw.readBigUInt64LE(40),
  };
}

export function readHashRsp(raw: Buffer): HashRsp {
  return { digest: Buffer.from(raw.subarray(24, 44)) };
}

export function readClusterDefaultRsp(raw: Buffer): ClusterDefaultRsp {
  return { nrCopies: raw[20]!, copyPolicy: raw[21]!, blockSizeShift: raw[22]! };
}

/** Fields for encodeResponse: opcode is required, the rest default to 0 (protoVer too, as sheep sends). */
export type RspInit = { opcode: number } & Partial<RspHeader> & {
  obj?: Partial<ObjRsp>;
  vdi?: Partial<VdiRsp>;
  node?: Partial<NodeRsp>;
  hash?: { digest: Uint8Array };
  clusterDefault?: Partial<ClusterDefaultRsp>;
};

/**
 * Writes a 48-byte response header at out[outOffset..+48) and returns `out` (a fresh
 * 48-byte Buffer when none is given). result lives at 16 in every variant.
 */
export function encodeResponse(h: RspInit, out?: Buffer, outOffset = 0): Buffer {
  const b = out ?? Buffer.allocUnsafe(SD_HEADER_SIZE);
  const o = outOffset;
  if (b.length - o < SD_HEADER_SIZE) throw new RangeError('encodeResponse: output buffer too small');
  b.fill(0, o, o + SD_HEADER_SIZE);
  b[o] = h.protoVer ?? 0;
  b[o + 1] = h.opcode;
  b.writeUInt16LE(h.flags ?? 0, o + 2);
  b.writeUInt32LE(h.epoch ?? 0, o + 4);
  b.writeUInt32LE(h.id ?? 0, o + 8);
  b.writeUInt32LE(h.dataLength ?? 0, o + 12);
  b.writeUInt32LE(h.result ?? 0, o + 16);
  const { obj, vdi, node, hash, clusterDefault: cd } = h;
  if (obj) {
    b[o + 20] = obj.copies ?? 0;
    b.writeBigUInt64LE(obj.offset ?? 0n, o + 24);
  }
  if (vdi) {
    b.writeUInt32LE(vdi.rsvd ?? 0, o + 20);
    b.writeUInt32LE(vdi.vdiId ?? 0, o + 24);
    b.writeUInt32LE(vdi.attrId ?? 0, o + 28);
    b[o + 32] = vdi.copies ?? 0;
    b[o + 33] = vdi.blockSizeShift ?? 0;
  }
  if (node) {
    b.writeUInt32LE(node.nrNodes ?? 0, o + 20);
    b.writeBigUInt64LE(node.storeSize ?? 0n, o + 32);
    b.writeBigUInt64LE(node.storeFree ?? 0n, o + 40);
  }
  if (hash) {
    if (hash.digest.length !== 20) throw new RangeError('hash.digest must be 20 bytes');
    b.set(hash.digest, o + 24);
  }
  if (cd) {
    b[o + 20] = cd.nrCopies ?? 0;
    b[o + 21] = cd.copyPolicy ?? 0;
    b[o + 22] = cd.blockSizeShift ?? 0;
  }
  return b;
}

/**
 * The response header sheep sends for a request whose answer carries no union fields:
 * request's opcode and id, the node's epoch, result and data_length; proto_ver/flags 0.
 */
export function encodeSimpleResponse(
  opcode: number,
  id: number,
  epoch: number,
  result: number,
  dataLength = 0,
  out?: Buffer,
  outOffset = 0,
): Buffer {
  return encodeResponse({ opcode, id, epoch, result, dataLength }, out, outOffset);
}

// NBD wire protocol (NetworkBlockDevice doc/proto.md): magics, option / reply / command numbers, flags,
// errno values, and encoders for the server's messages. Everything on the NBD wire is big-endian
// (unlike Sheepdog's little-endian headers).

export const NBD_MAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const NBD_IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const NBD_OPT_REPLY_MAGIC = 0x0003e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server → client, u16). */
export const HandshakeFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;
/** Client flags (client → server, u32). */
export const ClientFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Transmission flags (u16). */
export const TxFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
} as const;

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

export const CmdFlag = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4 } as const;

export const ReplyFlag = { DONE: 1 << 0 } as const;

export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** base:allocation extent flags. */
export const State = { HOLE: 1 << 0, ZERO: 1 << 1 } as const;

/** Error values on the wire (Linux errno numbers, as the spec fixes them). */
export const Errno = {
  OK: 0,
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

export const BASE_ALLOCATION = 'base:allocation';
/** Our (only) metadata context id. */
export const BASE_ALLOCATION_ID = 1;

/** Largest request payload (WRITE) and READ length we accept; advertised as the maximum block size. */
export const NBD_MAX_PAYLOAD = 32 * 1024 * 1024;
export const NBD_MIN_BLOCK = 1;
export const NBD_PREF_BLOCK = 4096;

export const REQUEST_HEADER_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;

export function cmdName(t: number): string {
  for (const [k, v] of Object.entries(Cmd)) if (v === t) return k;
  return `CMD_${t}`;
}

export function optName(o: number): string {
  for (const [k, v] of Object.entries(Opt)) if (v === o) return k;
  return `OPT_${o}`;
}

// ---- handshake messages ---------------------------------------------------------------------------

/** NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(flags: number): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 8);
  b.writeUInt16BE(flags, 16);
  return b;
}

/** An option reply: magic, option, reply type, length, data. */
export function encodeOptReply(opt: number, type: number, data?: Uint8Array): Buffer {
  const len = data?.length ?? 0;
  const b = Buffer.alloc(20 + len);
  b.writeBigUInt64BE(NBD_OPT_REPLY_MAGIC, 0);
  b.writeUInt32BE(opt >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(len, 16);
  if (data) b.set(data, 20);
  return b;
}

export function encodeRepServer(name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function encodeInfoExport(size: bigint, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(Info.EXPORT, 0);
  b.writeBigUInt64BE(size, 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

export function encodeInfoBlockSize(min: number, pref: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(Info.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(pref, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeInfoString(type: number, s: string): Buffer {
  const t = Buffer.from(s, 'utf8');
  const b = Buffer.alloc(2 + t.length);
  b.writeUInt16BE(type, 0);
  t.copy(b, 2);
  return b;
}

export function encodeMetaContext(id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

/** NBD_OPT_EXPORT_NAME answer: size, flags, and 124 zero bytes unless NO_ZEROES was negotiated. */
export function encodeExportNameReply(size: bigint, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(size, 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

// ---- option payload parsing -----------------------------------------------------------------------

export class OptionParseError extends Error {}

/** Data of NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, u16 info requests. */
export function parseInfoRequest(data: Buffer): { name: string; infos: number[] } {
  if (data.length < 6) throw new OptionParseError('option data too short');
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) throw new OptionParseError('export name length exceeds option data');
  const name = data.toString('utf8', 4, 4 + nameLen);
  const n = data.readUInt16BE(4 + nameLen);
  if (data.length !== 6 + nameLen + 2 * n) throw new OptionParseError('information request count does not match option length');
  const infos: number[] = [];
  for (let i = 0; i < n; i++) infos.push(data.readUInt16BE(6 + nameLen + 2 * i));
  return { name, infos };
}

/** Data of NBD_OPT_LIST/SET_META_CONTEXT: u32 name length, name, u32 query count, queries (u32 length + string). */
export function parseMetaRequest(data: Buffer): { name: string; queries: string[] } {
  if (data.length < 8) throw new OptionParseError('option data too short');
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 8) throw new OptionParseError('export name length exceeds option data');
  const name = data.toString('utf8', 4, 4 + nameLen);
  let p = 4 + nameLen;
  const n = data.readUInt32BE(p);
  p += 4;
  const queries: string[] = [];
  for (let i = 0; i < n; i++) {
    if (p + 4 > data.length) throw new OptionParseError('truncated query list');
    const len = data.readUInt32BE(p);
    p += 4;
    if (len > data.length - p) throw new OptionParseError('query length exceeds option data');
    queries.push(data.toString('utf8', p, p + len));
    p += len;
  }
  if (p !== data.length) throw new OptionParseError('trailing bytes after query list');
  return { name, queries };
}

// ---- transmission ---------------------------------------------------------------------------------

export interface NbdRequest {
  flags: number;
  type: number;
  /** 8 opaque bytes, echoed in the reply */
  cookie: Buffer;
  offset: number;
  length: number;
}

/** Decodes a 28-byte request header; returns null when the magic is wrong. */
export function decodeRequestHeader(b: Buffer): NbdRequest | null {
  if (b.readUInt32BE(0) !== NBD_REQUEST_MAGIC) return null;
  const off = b.readBigUInt64BE(16);
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: Buffer.from(b.subarray(8, 16)),
    // Offsets past 2^53 are beyond any export; they are rejected by the range check.
    offset: off > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(off),
    length: b.readUInt32BE(24),
  };
}

export function encodeSimpleReply(cookie: Buffer, error: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  cookie.copy(b, 8);
  return b;
}

/** A structured chunk header with `extra` bytes of room after it (for small payload prefixes). */
export function encodeChunkHeader(cookie: Buffer, flags: number, type: number, length: number, extra = 0): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE + extra);
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  cookie.copy(b, 8);
  b.writeUInt32BE(length, 16);
  return b;
}

/** OFFSET_DATA chunk header + u64 offset; the data follows. */
export function encodeOffsetDataHeader(cookie: Buffer, flags: number, offset: number, dataLength: number): Buffer {
  const b = encodeChunkHeader(cookie, flags, ReplyType.OFFSET_DATA, 8 + dataLength, 8);
  b.writeBigUInt64BE(BigInt(offset), 20);
  return b;
}

export function encodeErrorChunk(cookie: Buffer, error: number, message = ''): Buffer {
  const m = Buffer.from(message, 'utf8').subarray(0, 4096);
  const b = encodeChunkHeader(cookie, ReplyFlag.DONE, ReplyType.ERROR, 6 + m.length, 6 + m.length);
  b.writeUInt32BE(error, 20);
  b.writeUInt16BE(m.length, 24);
  m.copy(b, 26);
  return b;
}

/** BLOCK_STATUS chunk: context id, then (length, flags) descriptors. */
export function encodeBlockStatusChunk(cookie: Buffer, flags: number, contextId: number, extents: ReadonlyArray<{ length: number; flags: number }>): Buffer {
  const len = 4 + 8 * extents.length;
  const b = encodeChunkHeader(cookie, flags, ReplyType.BLOCK_STATUS, len, len);
  b.writeUInt32BE(contextId, 20);
  let p = 24;
  for (const e of extents) {
    b.writeUInt32BE(e.length, p);
    b.writeUInt32BE(e.flags, p + 4);
    p += 8;
  }
  return b;
}



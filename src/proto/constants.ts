// Sheepdog 1.0 wire constants: opcodes, flags, result codes and their sd_strerror() texts,
// protocol versions, struct sizes and the small enums carried in cluster/VDI state.
// Numeric values follow include/sheepdog_proto.h and include/internal_proto.h (see
// /work/shared/sheepdog-protocol.md sections 1, 2 and 7); the strings follow sd_strerror()
// in include/sheep.h byte for byte, because dog prints them and the test fixtures contain them.

/** Client protocol version (requests with opcode < 0x80). */
export const SD_PROTO_VER = 0x02;
/** Defined upstream but unused by HEAD sheep. */
export const SD_PROTO_VER_TRIM_ZERO_SECTORS = 0x02;
/** Internal sheep<->sheep / sheep<->dog protocol version (opcode >= 0x80). */
export const SD_SHEEP_PROTO_VER = 0x0a;
export const SD_LISTEN_PORT = 7000;

// ---------------------------------------------------------------------------------------------
// Opcodes
// ---------------------------------------------------------------------------------------------

export const Op = {
  // client-visible (< 0x80)
  CREATE_AND_WRITE_OBJ: 0x01,
  READ_OBJ: 0x02,
  WRITE_OBJ: 0x03,
  REMOVE_OBJ: 0x04,
  DISCARD_OBJ: 0x05,
  NEW_VDI: 0x11,
  LOCK_VDI: 0x12,
  RELEASE_VDI: 0x13,
  GET_VDI_INFO: 0x14,
  READ_VDIS: 0x15,
  FLUSH_VDI: 0x16,
  DEL_VDI: 0x17,
  GET_CLUSTER_DEFAULT: 0x18,
  // internal / admin (>= 0x80)
  GET_NODE_LIST: 0x82,
  MAKE_FS: 0x84,
  SHUTDOWN: 0x85,
  STAT_SHEEP: 0x86,
  STAT_CLUSTER: 0x87,
  GET_VDI_ATTR: 0x89,
  FORCE_RECOVER: 0x8a,
  GET_STORE_LIST: 0x90,
  SNAPSHOT: 0x91,
  RESTORE: 0x92,
  GET_SNAP_FILE: 0x93,
  CLEANUP: 0x94,
  TRACE_STATUS: 0x95,
  TRACE_READ_BUF: 0x96,
  STAT_RECOVERY: 0x97,
  FLUSH_DEL_CACHE: 0x98,
  NOTIFY_VDI_DEL: 0x99,
  KILL_NODE: 0x9a,
  TRACE_ENABLE: 0x9b,
  TRACE_DISABLE: 0x9c,
  GET_OBJ_LIST: 0xa1,
  GET_EPOCH: 0xa2,
  CREATE_AND_WRITE_PEER: 0xa3,
  READ_PEER: 0xa4,
  WRITE_PEER: 0xa5,
  REMOVE_PEER: 0xa6,
  SET_CACHE_SIZE: 0xa7, // deleted upstream; kept so the number has a name
  ENABLE_RECOVER: 0xa8,
  DISABLE_RECOVER: 0xa9,
  GET_VDI_COPIES: 0xab,
  COMPLETE_RECOVERY: 0xac,
  FLUSH_NODES: 0xad,
  FLUSH_PEER: 0xae,
  NOTIFY_VDI_ADD: 0xaf,
  DELETE_CACHE: 0xb0,
  MD_INFO: 0xb1,
  MD_PLUG: 0xb2,
  MD_UNPLUG: 0xb3,
  GET_HASH: 0xb4,
  REWEIGHT: 0xb5,
  GET_CACHE_INFO: 0xb6,
  CACHE_PURGE: 0xb7,
  STAT: 0xb8,
  GET_LOGLEVEL: 0xb9,
  SET_LOGLEVEL: 0xba,
  NFS_CREATE: 0xbb,
  NFS_DELETE: 0xbc,
  EXIST: 0xbd,
  CLUSTER_INFO: 0xbe,
  ALTER_CLUSTER_COPY: 0xbf,
  ALTER_VDI_COPY: 0xc0,
  DECREF_OBJ: 0xc1,
  DECREF_PEER: 0xc2,
  PREVENT_INODE_UPDATE: 0xc3,
  ALLOW_INODE_UPDATE: 0xc4,
  REPAIR_REPLICA: 0xc5,
  OIDS_EXIST: 0xc6,
  VDI_STATE_CHECKPOINT_CTL: 0xc7,
  INODE_COHERENCE: 0xc8,
  READ_DEL_VDIS: 0xc9,
  GET_RECOVERY: 0xca,
  SET_RECOVERY: 0xcb,
  SET_VNODES: 0xcc,
  GET_VNODES: 0xcd,
} as const;

export type OpName = keyof typeof Op;
export type OpCode = (typeof Op)[OpName];

const OP_NAME_BY_CODE: (string | undefined)[] = new Array(256);
for (const [name, code] of Object.entries(Op)) OP_NAME_BY_CODE[code] = name;

/** Name of an opcode as in the C macro without the SD_OP_ prefix; unknown ones read "UNKNOWN_0xNN". */
export function opName(op: number): string {
  return OP_NAME_BY_CODE[op & 0xff] ?? `UNKNOWN_0x${(op & 0xff).toString(16).padStart(2, '0')}`;
}

/** True if the opcode has a name at all (it may still have no handler, see opClass). */
export function isKnownOp(op: number): boolean {
  return op >= 0 && op < 256 && OP_NAME_BY_CODE[op] !== undefined;
}

/** proto_ver a conforming client puts in a request for this opcode (sd_init_req). */
export function defaultProtoVer(op: number): number {
  return op < 0x80 ? SD_PROTO_VER : SD_SHEEP_PROTO_VER;
}

/** How sheep dispatches an op (sheep/ops.c). */
export type OpClass = 'gateway' | 'peer' | 'local' | 'cluster';

const OP_CLASS: Partial<Record<number, OpClass>> = {
  [Op.CREATE_AND_WRITE_OBJ]: 'gateway',
  [Op.READ_OBJ]: 'gateway',
  [Op.WRITE_OBJ]: 'gateway',
  [Op.REMOVE_OBJ]: 'gateway',
  [Op.DECREF_OBJ]: 'gateway',
  [Op.CREATE_AND_WRITE_PEER]: 'peer',
  [Op.READ_PEER]: 'peer',
  [Op.WRITE_PEER]: 'peer',
  [Op.REMOVE_PEER]: 'peer',
  [Op.DECREF_PEER]: 'peer',
  [Op.NEW_VDI]: 'cluster',
  [Op.LOCK_VDI]: 'cluster',
  [Op.RELEASE_VDI]: 'cluster',
  [Op.GET_VDI_INFO]: 'cluster',
  [Op.DEL_VDI]: 'cluster',
  [Op.MAKE_FS]: 'cluster',
  [Op.SHUTDOWN]: 'cluster',
  [Op.GET_VDI_ATTR]: 'cluster',
  [Op.FORCE_RECOVER]: 'cluster',
  [Op.CLEANUP]: 'cluster',
  [Op.NOTIFY_VDI_DEL]: 'cluster',
  [Op.NOTIFY_VDI_ADD]: 'cluster',
  [Op.DELETE_CACHE]: 'cluster',
  [Op.COMPLETE_RECOVERY]: 'cluster',
  [Op.REWEIGHT]: 'cluster',
  [Op.ENABLE_RECOVER]: 'cluster',
  [Op.DISABLE_RECOVER]: 'cluster',
  [Op.ALTER_CLUSTER_COPY]: 'cluster',
  [Op.ALTER_VDI_COPY]: 'cluster',
  [Op.INODE_COHERENCE]: 'cluster',
  [Op.DISCARD_OBJ]: 'local',
  [Op.READ_VDIS]: 'local',
  [Op.FLUSH_VDI]: 'local',
  [Op.GET_CLUSTER_DEFAULT]: 'local',
  [Op.GET_NODE_LIST]: 'local',
  [Op.STAT_SHEEP]: 'local',
  [Op.STAT_CLUSTER]: 'local',
  [Op.GET_STORE_LIST]: 'local',
  [Op.TRACE_STATUS]: 'local',
  [Op.TRACE_READ_BUF]: 'local',
  [Op.STAT_RECOVERY]: 'local',
  [Op.FLUSH_DEL_CACHE]: 'local',
  [Op.KILL_NODE]: 'local',
  [Op.TRACE_ENABLE]: 'local',
  [Op.TRACE_DISABLE]: 'local',
  [Op.GET_OBJ_LIST]: 'local',
  [Op.GET_EPOCH]: 'local',
  [Op.GET_VDI_COPIES]: 'local',
  [Op.MD_INFO]: 'local',
  [Op.MD_PLUG]: 'local',
  [Op.MD_UNPLUG]: 'local',
  [Op.GET_HASH]: 'local',
  [Op.STAT]: 'local',
  [Op.GET_LOGLEVEL]: 'local',
  [Op.SET_LOGLEVEL]: 'local',
  [Op.NFS_CREATE]: 'local',
  [Op.NFS_DELETE]: 'local',
  [Op.EXIST]: 'local',
  [Op.CLUSTER_INFO]: 'local',
  [Op.REPAIR_REPLICA]: 'local',
  [Op.OIDS_EXIST]: 'local',
  [Op.VDI_STATE_CHECKPOINT_CTL]: 'local',
  [Op.READ_DEL_VDIS]: 'local',
  [Op.GET_RECOVERY]: 'local',
  [Op.SET_RECOVERY]: 'local',
  [Op.SET_VNODES]: 'local',
  [Op.GET_VNODES]: 'local',
};

/**
 * Dispatch class of an opcode, or undefined when HEAD sheep has no handler for it
 * (SNAPSHOT, RESTORE, GET_SNAP_FILE, 0xA7, FLUSH_NODES, FLUSH_PEER, cache ops 0xB6/0xB7,
 * inode-update ops 0xC3/0xC4, unknown numbers): such requests get SD_RES_INVALID_PARMS.
 */
export function opClass(op: number): OpClass | undefined {
  return OP_CLASS[op];
}

/** Ops sheep serves while the cluster is in WAIT state (`.force = true` in sheep/ops.c). */
export const FORCE_OPS: ReadonlySet<number> = new Set<number>([
  Op.MAKE_FS,
  Op.SHUTDOWN,
  Op.FORCE_RECOVER,
  Op.CLEANUP,
  Op.NOTIFY_VDI_DEL,
  Op.NOTIFY_VDI_ADD,
  Op.COMPLETE_RECOVERY,
  Op.GET_STORE_LIST,
  Op.READ_VDIS,
  Op.READ_DEL_VDIS,
  Op.GET_VDI_COPIES,
  Op.GET_NODE_LIST,
  Op.STAT_CLUSTER,
  Op.TRACE_ENABLE,
  Op.TRACE_DISABLE,
  Op.TRACE_STATUS,
  Op.TRACE_READ_BUF,
  Op.KILL_NODE,
  Op.GET_LOGLEVEL,
  Op.SET_LOGLEVEL,
  Op.EXIST,
  Op.OIDS_EXIST,
  Op.CLUSTER_INFO,
  Op.GET_CLUSTER_DEFAULT,
  Op.GET_RECOVERY,
  Op.SET_RECOVERY,
]);

export function isForceOp(op: number): boolean {
  return FORCE_OPS.has(op);
}

// ---------------------------------------------------------------------------------------------
// Header flags
// ---------------------------------------------------------------------------------------------

export const Flag = {
  CMD_WRITE: 0x01,
  CMD_COW: 0x02,
  CMD_CACHE: 0x04,
  CMD_DIRECT: 0x08,
  CMD_PIGGYBACK: 0x10,
  CMD_TGT: 0x20,
  CMD_FWD: 0x40,
  CMD_RECOVERY: 0x80,
  /** recovery reads: any epoch's copy will do (same bit as CMD_CREAT) */
  CMD_WILDCARD: 0x100,
  /** GET_VDI_ATTR: create if absent */
  CMD_CREAT: 0x100,
  /** GET_VDI_ATTR: fail with VDI_EXIST if present */
  CMD_EXCL: 0x200,
  /** GET_VDI_ATTR: delete */
  CMD_DEL: 0x400,
  /**
   * sheep-actors extension, never sent by Sheepdog's clients: on a write, the data may stay in the page
   * cache until a flush (FLUSH_VDI with this flag, forwarded as FLUSH_PEER). The NBD front end sets it on
   * writes without FUA. Sheepdog's own CMD_CACHE cannot mean this: old QEMU sets it on every write and
   * expects durability, since its FLUSH_VDI is refused.
   */
  WRITEBACK: 0x800,
} as const;

// ---------------------------------------------------------------------------------------------
// Result codes
// ---------------------------------------------------------------------------------------------

export const Res = {
  SUCCESS: 0x00,
  UNKNOWN: 0x01,
  NO_OBJ: 0x02,
  EIO: 0x03,
  VDI_EXIST: 0x04,
  INVALID_PARMS: 0x05,
  SYSTEM_ERROR: 0x06,
  VDI_LOCKED: 0x07,
  NO_VDI: 0x08,
  NO_BASE_VDI: 0x09,
  VDI_READ: 0x0a,
  VDI_WRITE: 0x0b,
  BASE_VDI_READ: 0x0c,
  BASE_VDI_WRITE: 0x0d,
  NO_TAG: 0x0e,
  STARTUP: 0x0f,
  VDI_NOT_LOCKED: 0x10,
  SHUTDOWN: 0x11,
  NO_MEM: 0x12,
  FULL_VDI: 0x13,
  VER_MISMATCH: 0x14,
  NO_SPACE: 0x15,
  WAIT_FOR_FORMAT: 0x16,
  WAIT_FOR_JOIN: 0x17,
  JOIN_FAILED: 0x18,
  HALT: 0x19,
  READONLY: 0x1a,
  INODE_INVALIDATED: 0x1d,
  // sheepdog-internal (>= 0x80)
  OLD_NODE_VER: 0x81,
  NEW_NODE_VER: 0x82,
  NOT_FORMATTED: 0x83,
  INVALID_CTIME: 0x84,
  INVALID_EPOCH: 0x85,
  NETWORK_ERROR: 0x86,
  NO_CACHE: 0x87,
  BUFFER_SMALL: 0x88,
  FORCE_RECOVER: 0x89,
  NO_STORE: 0x8a,
  NO_SUPPORT: 0x8b,
  NODE_IN_RECOVERY: 0x8c,
  KILLED: 0x8d,
  OID_EXIST: 0x8e,
  AGAIN: 0x8f,
  STALE_OBJ: 0x90,
  CLUSTER_ERROR: 0x91,
  VDI_NOT_EMPTY: 0x92,
  NOT_FOUND: 0x93,
  INCOMPLETE: 0x94,
  COLLECTING_CINFO: 0x95,
  GATEWAY_MODE: 0x97,
  INVALID_VNODES_STRATEGY: 0x98,
  NO_CHECKPOINT_ENTRY: 0x99,
} as const;

export type ResName = keyof typeof Res;
export type ResCode = (typeof Res)[ResName];

const RES_NAME_BY_CODE = new Map<number, string>();
for (const [name, code] of Object.entries(Res)) RES_NAME_BY_CODE.set(code, name);

/** Symbolic name without the SD_RES_ prefix, or "UNKNOWN_0xNN". */
export function resultName(code: number): string {
  return RES_NAME_BY_CODE.get(code) ?? `UNKNOWN_0x${(code >>> 0).toString(16)}`;
}

// sd_strerror()'s table (include/sheep.h). Codes without an entry (VDI_NOT_EMPTY, NOT_FOUND,
// INCOMPLETE, COLLECTING_CINFO, NO_CHECKPOINT_ENTRY and anything unassigned) fall through to
// "Invalid error code %x", exactly as upstream.
const RESULT_TEXT = new Map<number, string>([
  [Res.SUCCESS, 'Success'],
  [Res.UNKNOWN, 'Unknown error'],
  [Res.NO_OBJ, 'No object found'],
  [Res.EIO, 'I/O error'],
  [Res.VDI_EXIST, 'VDI exists already'],
  [Res.INVALID_PARMS, 'Invalid parameters'],
  [Res.SYSTEM_ERROR, 'System error'],
  [Res.VDI_LOCKED, 'VDI is already locked'],
  [Res.NO_VDI, 'No VDI found'],
  [Res.NO_BASE_VDI, 'No base VDI found'],
  [Res.VDI_READ, 'Failed to read from requested VDI'],
  [Res.VDI_WRITE, 'Failed to write to requested VDI'],
  [Res.BASE_VDI_READ, 'Failed to read from base VDI'],
  [Res.BASE_VDI_WRITE, 'Failed to write to base VDI'],
  [Res.NO_TAG, 'Failed to find requested tag'],
  [Res.STARTUP, 'System is still booting'],
  [Res.VDI_NOT_LOCKED, 'VDI is not locked'],
  [Res.SHUTDOWN, 'System is shutting down'],
  [Res.NO_MEM, 'Out of memory on server'],
  [Res.FULL_VDI, 'Maximum number of VDIs reached'],
  [Res.VER_MISMATCH, 'Protocol version mismatch'],
  [Res.NO_SPACE, 'Server has no space for new objects'],
  [Res.WAIT_FOR_FORMAT, 'Waiting for cluster to be formatted'],
  [Res.WAIT_FOR_JOIN, 'Waiting for other nodes to join cluster'],
  [Res.JOIN_FAILED, 'Node has failed to join cluster'],
  [Res.HALT, 'IO has halted as there are not enough living nodes'],
  [Res.READONLY, 'Object is read-only'],
  [Res.INODE_INVALIDATED, 'Inode object is invalidated'],
  [Res.INVALID_VNODES_STRATEGY, 'Invalid cluster vnodes strategy'],
  [Res.GATEWAY_MODE, 'Targeted node is gateway mode'],
  [Res.OLD_NODE_VER, 'Request has an old epoch'],
  [Res.NEW_NODE_VER, 'Request has a new epoch'],
  [Res.NOT_FORMATTED, 'Cluster has not been formatted'],
  [Res.INVALID_CTIME, 'Creation times differ'],
  [Res.INVALID_EPOCH, 'Invalid epoch'],
  [Res.NETWORK_ERROR, 'Network error between sheep'],
  [Res.NO_CACHE, 'No cache object found'],
  [Res.BUFFER_SMALL, 'The buffer is too small'],
  [Res.FORCE_RECOVER, 'Cluster is running/halted and cannot be force recovered'],
  [Res.NO_STORE, 'Targeted backend store is not found'],
  [Res.NO_SUPPORT, 'Operation is not supported'],
  [Res.NODE_IN_RECOVERY, 'Targeted node is in recovery'],
  [Res.KILLED, 'Node is killed'],
  [Res.OID_EXIST, 'Object ID exists already'],
  [Res.AGAIN, 'Ask to try again'],
  [Res.STALE_OBJ, 'Object may be stale'],
  [Res.CLUSTER_ERROR, 'Cluster driver error'],
]);

/** Exactly what Sheepdog's sd_strerror(code) returns (C int semantics for the fallback text). */
export function resultString(code: number): string {
  const text = RESULT_TEXT.get(code);
  if (text !== undefined) return text;
  // printf("%x", int): negative values print as their 32-bit two's complement
  return `Invalid error code ${(code >>> 0).toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Sizes and limits
// ---------------------------------------------------------------------------------------------

export const SD_REQ_SIZE = 48;
export const SD_RSP_SIZE = 48;
export const SD_HEADER_SIZE = 48;

export const SD_MAX_VDI_LEN = 256;
export const SD_MAX_VDI_TAG_LEN = 256;
export const SD_MAX_VDI_ATTR_KEY_LEN = 256;
export const SD_MAX_VDI_ATTR_VALUE_LEN = 65536;
export const SD_MAX_SNAPSHOT_TAG_LEN = 256;
export const STORE_LEN = 16;

/** Number of VDI ids (24-bit space); vid 0 is never used. */
export const SD_NR_VDIS = 1 << 24;
/** Bytes of the in-use / deleted VDI bitmaps (READ_VDIS, READ_DEL_VDIS data_length). */
export const SD_VDI_BITMAP_SIZE = SD_NR_VDIS / 8;

/**
 * Entries of the flat inode index data_vdi_id[] (upstream SD_INODE_DATA_INDEX, formerly
 * MAX_DATA_OBJS). NB: HEAD's sheepdog_proto.h redefines MAX_DATA_OBJS as 2^32 for hyper
 * volumes; that value is MAX_HYPER_DATA_OBJS here.
 */
export const MAX_DATA_OBJS = 1 << 20;
export const SD_INODE_DATA_INDEX = MAX_DATA_OBJS;
export const MAX_HYPER_DATA_OBJS = 2 ** 32;
export const OLD_MAX_CHILDREN = 1024;

export const SD_INODE_HEADER_SIZE = 4664;
/** Byte offset of data_vdi_id[0] in struct sd_inode. */
export const SD_INODE_DATA_VDI_ID_OFFSET = SD_INODE_HEADER_SIZE;
/** Byte offset of gref[0] ({int32 generation, int32 count}) in struct sd_inode. */
export const SD_INODE_GREF_OFFSET = SD_INODE_HEADER_SIZE + 4 * SD_INODE_DATA_INDEX; // 4,198,968
export const SD_INODE_SIZE = SD_INODE_GREF_OFFSET + 8 * SD_INODE_DATA_INDEX; // 12,587,576
/** What QEMU reads/writes of an inode (no gref array). */
export const SD_INODE_QEMU_SIZE = SD_INODE_GREF_OFFSET;
export const SD_INODE_INDEX_SIZE_FLAT = 4 * SD_INODE_DATA_INDEX;
/** Size of a hyper-volume B-tree node object (upstream SD_INODE_DATA_INDEX_SIZE). */
export const SD_INODE_DATA_INDEX_SIZE = 4 * SD_INODE_DATA_INDEX;
export const INODE_BTREE_MAGIC = 0x6274;

export const SD_ATTR_OBJ_SIZE = 66320;
export const SD_LEDGER_OBJ_SIZE = 1 << 22;
export const SD_DATA_OBJ_SIZE = 1 << 22;

export const SD_DEFAULT_BLOCK_SIZE_SHIFT = 22;
export const SD_MIN_BLOCK_SIZE_SHIFT = 20;
export const SD_MAX_BLOCK_SIZE_SHIFT = 31;
export function isValidBlockSizeShift(bss: number): boolean {
  return Number.isInteger(bss) && bss >= SD_MIN_BLOCK_SIZE_SHIFT && bss <= SD_MAX_BLOCK_SIZE_SHIFT;
}

export const SD_EC_MAX_STRIP = 16;
export const SD_MAX_COPIES = SD_EC_MAX_STRIP * 2 - 1; // 31
export const SD_DEFAULT_COPIES = 3;
export const SD_DEFAULT_VNODES = 128;
export const SD_MAX_VNODES = 65535;
export const SD_MAX_NODES = 6144;

export const NODE_ID_SIZE = 40;
export const SD_NODE_SIZE = 80;
export const EPOCH_LOG_HEADER_SIZE = 48;
export const CLUSTER_INFO_HEADER_SIZE = 48;
export const CLUSTER_INFO_SIZE = CLUSTER_INFO_HEADER_SIZE + SD_MAX_NODES * SD_NODE_SIZE; // 491,568
export const VDI_STATE_SIZE = 1428;
export const RECOVERY_STATE_SIZE = 24;
export const RECOVERY_THROTTLING_SIZE = 24;
export const PATH_MAX = 4096;
export const MD_MAX_DISK = 64;
export const MD_INFO_SIZE = 24 + PATH_MAX; // 4120
export const SD_MD_INFO_SIZE = 263688; // md_info[64] + int nr, padded to 8
/** SD_OP_STAT payload: 15 u64 counters. */
export const SD_STAT_SIZE = 120;

export const CURRENT_VDI_ID = 0;
export const LockType = { NORMAL: 0, SHARED: 1 } as const;

// ---------------------------------------------------------------------------------------------
// Enums carried in cluster / VDI state
// ---------------------------------------------------------------------------------------------

/** enum sd_status (cluster_info.status, 8-bit). */
export const ClusterStatus = { OK: 1, WAIT: 2, SHUTDOWN: 3, KILLED: 4 } as const;
export type ClusterStatusCode = (typeof ClusterStatus)[keyof typeof ClusterStatus];

/** cluster_info.flags / epoch_log.flags / MAKE_FS cluster.flags. */
export const ClusterFlag = {
  STRICT: 0x01,
  DISKMODE: 0x02,
  AUTO_VNODES: 0x04,
  USE_LOCK: 0x08,
  RECYCLE_VID: 0x10,
  AVOID_DISKFULL: 0x20,
} as const;

/** vdi_state.lock_state. */
export const LockState = { INIT: 0, UNLOCKED: 1, LOCKED: 2, SHARED: 3 } as const;
/** vdi_state.participants_state[] (iSCSI multipath). */
export const SharedLockState = { MODIFIED: 0, SYNCED: 1, INVALIDATED: 2 } as const;
/** recovery_state.state. */
export const RecoveryPhase = { PREPARE_LIST: 0, RECOVER_OBJ: 1, NOTIFY_COMPLETION: 2 } as const;
/** sd_inode.store_policy. */
export const StorePolicy = { FLAT: 0, HYPER: 1 } as const;

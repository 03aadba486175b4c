// `dog vdi ...` (dog/vdi.c): create, snapshot, clone, delete, rollback, list, tree, graph,
// object (location / map / dump-inode), track, setattr, getattr, resize, read, write,
// alter-copy, lock (list / unlock). The client keeps data_vdi_id[] itself: a write to an
// unallocated index creates the object, a write to an index owned by another VDI creates it
// with CMD_COW from that VDI's object, and either way the 4-byte index entry is then written.

import { readFileSync } from 'node:fs';
import {
  Flag,
  LockState,
  LockType,
  MAX_DATA_OBJS,
  Op,
  Res,
  SD_ATTR_OBJ_SIZE,
  SD_DEFAULT_BLOCK_SIZE_SHIFT,
  SD_DEFAULT_COPIES,
  SD_INODE_DATA_INDEX,
  SD_INODE_HEADER_SIZE,
  SD_INODE_SIZE,
  SD_MAX_VDI_ATTR_KEY_LEN,
  SD_MAX_VDI_ATTR_VALUE_LEN,
  SD_MAX_VDI_LEN,
  SD_MAX_VDI_TAG_LEN,
  SD_NODE_SIZE,
  EPOCH_LOG_HEADER_SIZE,
  VDI_STATE_SIZE,
  CLUSTER_INFO_SIZE,
  resultString,
} from '../../proto/constants.js';
import { readVdiRsp } from '../../proto/header.js';
import { isDataObj, oidToVid, vidToAttrOid, vidToDataOid, vidToVdiOid, dataOidIndex } from '../../proto/oid.js';
import {
  InodeOff,
  VdiAttrOff,
  decodeInodeHeader,
  decodeVdiState,
  formatAddrPort,
  sortNodes,
  type NodeId,
  type VdiState,
} from '../../proto/structs.js';
import { buildVnodeRing, placeObject, toRingNode } from '../../placement/ring.js';
import { decodeEpochLogs } from './cluster.js';
import {
  CMD_NEED_ARG,
  CMD_NEED_NODELIST,
  doGenericSubcommand,
  type Argv,
  type Command,
  type RunContext,
  type SdOption,
  type Subcommand,
} from './command.js';
import {
  COPY_ERROR,
  EXIT_EXISTS,
  EXIT_FAILURE,
  EXIT_MISSING,
  EXIT_SUCCESS,
  EXIT_SYSFAIL,
  EXIT_USAGE,
  atoi,
  exit,
  getSink,
  hex,
  hex16,
  out,
  pad0,
  padL,
  padR,
  parseCopy,
  parseSize,
  redundancyScheme,
  sdErr,
  sdInfo,
  showProgress,
  strftime,
  strnumberRaw,
  strtol,
} from './common.js';
import { Inode, pstrcpy, type DogContext } from './ctx.js';
import { VdiTree } from './tree.js';
import { vdiBackup, vdiRestore } from './backup.js';
import { vdiCheck } from './check.js';

/** OLD_MAX_DATA_OBJS: entries of a flat index */
const OLD_MAX_DATA_OBJS = BigInt(SD_INODE_DATA_INDEX);
/** SD_MAX_VDI_SIZE = 4 MiB × 2^32 (hyper volumes) */
export const SD_MAX_VDI_SIZE = 1n << 54n;
const NR_BATCHED_RECLAMATION_DEFAULT = 128;
const NO_INDEX = (1n << 64n) - 1n;

export const VDI_OPTIONS: SdOption[] = [
  { ch: 'P', name: 'prealloc', hasArg: false, desc: 'preallocate all the data objects' },
  { ch: 'n', name: 'no-share', hasArg: false, desc: 'share nothing with its parent' },
  { ch: 'i', name: 'index', hasArg: true, desc: 'specify the index of data objects' },
  { ch: 's', name: 'snapshot', hasArg: true, desc: 'specify a snapshot id or tag name' },
  { ch: 'x', name: 'exclusive', hasArg: false, desc: 'write in an exclusive mode' },
  { ch: 'd', name: 'delete', hasArg: false, desc: 'delete a key' },
  { ch: 'w', name: 'writeback', hasArg: false, desc: 'use writeback mode' },
  { ch: 'c', name: 'copies', hasArg: true, desc: 'specify the data redundancy level' },
  { ch: 'F', name: 'from', hasArg: true, desc: 'create a differential backup from the snapshot' },
  { ch: 'f', name: 'force', hasArg: false, desc: 'do operation forcibly' },
  { ch: 'y', name: 'hyper', hasArg: false, desc: 'create a hyper volume' },
  { ch: 'o', name: 'oid', hasArg: true, desc: 'specify the object id of the tracking object' },
  { ch: 'e', name: 'exist', hasArg: false, desc: 'only check objects exist or not,\n                          neither comparing nor repairing' },
  { ch: 'z', name: 'block_size_shift', hasArg: true, desc: 'specify the bit shift num for data object size' },
  { ch: 'R', name: 'reduce-identical-snapshots', hasArg: false, desc: "do not create snapshot if working VDI doesn't have its own objects" },
  { ch: 'B', name: 'nr-batched-reclamation', hasArg: true, desc: 'specify a number of batchedreclamation during VDI deletion' },
  { ch: 'I', name: 'reclamation-interval', hasArg: true, desc: 'specify how long (unit: second)in reclamation loop during VDI deletion' },
  {
    ch: 'm',
    name: 'max-reclaim',
    hasArg: true,
    desc: "specify the maximum number of reclaimed objects (if this option is specified, an inode object won't be reclaimed)",
  },
];

interface VdiCmdData {
  index: bigint;
  snapshotId: number;
  snapshotTag: string;
  exclusive: boolean;
  delete: boolean;
  prealloc: boolean;
  nrCopies: number;
  blockSizeShift: number;
  writeback: boolean;
  fromSnapshotId: number;
  fromSnapshotTag: string;
  force: boolean;
  copyPolicy: number;
  storePolicy: number;
  oid: bigint;
  noShare: boolean;
  exist: boolean;
  reduceIdenticalSnapshots: boolean;
  nrBatchedReclamation: number;
  reclamationInterval: number;
  nrMaxReclaim: number;
}

const ALTER_VDI_COPY_PRINT =
  '    __\n' +
  "   ()'`;\n" +
  "   /\\|`  Caution! Changing VDI's redundancy level will affect\n" +
  '  /  |   the VDI itself only and trigger recovery.\n' +
  '(/_)_|_  Are you sure you want to continue? [yes/no]: ';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Escapes a VDI name for raw output (white space and backslashes get a backslash). */
export function rawEscape(name: string): string {
  return name.replace(/[\s\\]/g, (c) => '\\' + c);
}

/** One row of `dog vdi list` (print_vdi_list). */
export function formatVdiListLine(
  f: {
    snapshot: boolean;
    clone: boolean;
    name: string;
    snapid: number;
    size: bigint;
    used: bigint;
    shared: bigint;
    ctimeSec: bigint;
    vid: number;
    copies: number;
    copyPolicy: number;
    tag: string;
    blockSizeShift: number;
  },
  raw: boolean,
): string {
  const redundancy = redundancyScheme(f.copies, f.copyPolicy);
  if (raw) {
    const kind = f.snapshot ? 's' : f.clone ? 'c' : '=';
    return (
      `${kind} ${rawEscape(f.name)} ${f.snapid} ${strnumberRaw(f.size, true)} ${strnumberRaw(f.used, true)} ` +
      `${strnumberRaw(f.shared, true)} ${f.ctimeSec} ${hex(f.vid)} ${redundancy} ${f.tag} ${f.blockSizeShift}\n`
    );
  }
  const kind = f.snapshot ? 's' : f.clone ? 'c' : ' ';
  const date = strftime('%Y-%m-%d %H:%M', f.ctimeSec);
  return (
    `${kind} ${padR(f.name, 8)} ${padL(f.snapid, 5)} ${padL(strnumberRaw(f.size, false), 7)} ` +
    `${padL(strnumberRaw(f.used, false), 7)} ${padL(strnumberRaw(f.shared, false), 7)} ${date}  ` +
    `${padL(hex(f.vid), 7)} ${padL(redundancy, 6)} ${padL(f.tag, 13)} ${padL(f.blockSizeShift, 3)}\n`
  );
}

export const VDI_LIST_HEADER = '  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag   Block Size Shift\n';

/** node_id_to_str() */
export function nodeIdToStr(n: NodeId): string {
  const v4 = !n.addr.includes(':');
  return `${v4 ? 'IPv4' : 'IPv6'} ip:${n.addr} port:${n.port}`;
}

function vdiRow(inode: Inode, snapid: number) {
  const { my, cow } = inode.stat();
  const os = BigInt(inode.objectSize);
  return {
    snapshot: inode.isSnapshot(),
    clone: inode.h.snapId === 1 && inode.h.parentVdiId !== 0,
    name: inode.h.name,
    snapid,
    size: inode.h.vdiSize,
    used: BigInt(my) * os,
    shared: BigInt(cow) * os,
    ctimeSec: inode.h.createTime >> 32n,
    vid: inode.h.vdiId,
    copies: inode.h.nrCopies,
    copyPolicy: inode.h.copyPolicy,
    tag: inode.h.tag,
    blockSizeShift: inode.h.blockSizeShift,
  };
}

/** get_vdi_state(): every VDI's lock/copies state from GET_VDI_COPIES. */
export async function getVdiState(ctx: DogContext): Promise<VdiState[] | null> {
  let rlen = 512 * VDI_STATE_SIZE;
  for (let tries = 0; tries < 16; tries++) {
    const rsp = await ctx.exec({ opcode: Op.GET_VDI_COPIES, dataLength: rlen });
    if (!rsp) return null;
    if (rsp.result === Res.BUFFER_SMALL) {
      rlen *= 2;
      continue;
    }
    if (rsp.result !== Res.SUCCESS) {
      sdErr(`failed to execute SD_OP_GET_VDI_COPIES: ${resultString(rsp.result)}`);
      return null;
    }
    const n = Math.floor(rsp.data.length / VDI_STATE_SIZE);
    const res: VdiState[] = [];
    for (let i = 0; i < n; i++) res.push(decodeVdiState(rsp.data, i * VDI_STATE_SIZE));
    return res;
  }
  return null;
}

export function vdiCommand(): Command {
  const d: VdiCmdData = {
    index: NO_INDEX,
    snapshotId: 0,
    snapshotTag: '',
    exclusive: false,
    delete: false,
    prealloc: false,
    nrCopies: 0,
    blockSizeShift: 0,
    writeback: false,
    fromSnapshotId: 0,
    fromSnapshotTag: '',
    force: false,
    copyPolicy: 0,
    storePolicy: 0,
    oid: 0n,
    noShare: false,
    exist: false,
    reduceIdenticalSnapshots: false,
    nrBatchedReclamation: 0,
    reclamationInterval: 0,
    nrMaxReclaim: 0,
  };

  const progress = (_ctx: DogContext, done: bigint | number, total: bigint | number) => showProgress(done, total, false);

  // -------------------------------------------------------------------------------------------
  // list / tree / graph
  // -------------------------------------------------------------------------------------------

  async function vdiList(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.cur;
    const rows: Record<string, unknown>[] = [];
    const emit = (inode: Inode, snapid: number) => {
      const r = vdiRow(inode, snapid);
      if (ctx.json)
        rows.push({
          type: r.snapshot ? 'snapshot' : r.clone ? 'clone' : 'vdi',
          name: r.name,
          id: r.snapid,
          size: Number(r.size),
          used: Number(r.used),
          shared: Number(r.shared),
          creation_time: Number(r.ctimeSec),
          vdi_id: hex(r.vid),
          copies: redundancyScheme(r.copies, r.copyPolicy),
          tag: r.tag,
          block_size_shift: r.blockSizeShift,
        });
      else out(formatVdiListLine(r, ctx.raw));
    };
    if (!ctx.raw && !ctx.json) out(VDI_LIST_HEADER);
    let ret: number;
    if (vdiname !== undefined) {
      ret = await ctx.parseVdi((_v, name, _t, snapid, _f, inode) => {
        if (name === vdiname) emit(inode, snapid);
      }, true);
    } else if (d.oid) {
      if (!isDataObj(d.oid)) return EXIT_FAILURE;
      const idx = dataOidIndex(d.oid);
      const ovid = oidToVid(d.oid);
      ret = await ctx.parseVdi((_v, _n, _t, snapid, _f, inode) => {
        const v = inode.getVid(idx);
        if (v !== 0 && v === ovid) emit(inode, snapid);
      }, true);
    } else {
      ret = await ctx.parseVdi((_v, _n, _t, snapid, _f, inode) => emit(inode, snapid), true);
    }
    if (ret < 0) return EXIT_SYSFAIL;
    if (ctx.json) out(JSON.stringify(rows) + '\n');
    return EXIT_SUCCESS;
  }

  async function vdiTree(ctx: RunContext): Promise<number> {
    const tree = new VdiTree();
    const ret = await ctx.parseVdi((vid, name, _t, _s, _f, inode) => {
      const label = inode.isSnapshot() ? strftime('[%Y-%m-%d %H:%M]', inode.h.createTime >> 32n) : '(you are here)';
      tree.add(name, label, vid, inode.h.parentVdiId, ctx.highlight && !inode.isSnapshot());
    }, false);
    if (ret < 0) return EXIT_SYSFAIL;
    out(tree.dump());
    return EXIT_SUCCESS;
  }

  async function vdiGraph(ctx: RunContext): Promise<number> {
    out('digraph G {\n');
    out('  node [shape = "box", fontname = "Courier"];\n\n');
    out('  "0" [shape = "ellipse", label = "root"];\n\n');
    const ret = await ctx.parseVdi((vid, name, _t, snapid, _f, inode) => {
      const t = inode.h.createTime >> 32n;
      let s = `  "${hex(inode.h.parentVdiId)}" -> "${hex(vid)}";\n`;
      s += `  "${hex(vid)}" [\n    group = "${name}",\n    label = "`;
      s +=
        `Name: ${padL(name, 10)}\\n` +
        `Tag:  ${padL(hex(snapid), 10)}\\n` +
        `Size: ${padL(ctx.strnumber(inode.h.vdiSize), 10)}\\n` +
        `Date: ${padL(strftime('%Y-%m-%d', t), 10)}\\n` +
        `Time: ${padL(strftime('%H:%M:%S', t), 10)}`;
      s += inode.isSnapshot() ? '"\n  ];\n\n' : '",\n    color="red"\n  ];\n\n';
      out(s);
    }, false);
    if (ret < 0) return EXIT_SYSFAIL;
    out('}\n');
    return EXIT_SUCCESS;
  }

  // -------------------------------------------------------------------------------------------
  // create / snapshot / clone / resize
  // -------------------------------------------------------------------------------------------

  async function vdiCreate(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    if (argv.cur === undefined) {
      sdErr('Please specify the VDI size');
      return EXIT_USAGE;
    }
    const size = parseSize(argv.cur);
    if (size === null) return EXIT_USAGE;

    let objectSize: number;
    if (d.blockSizeShift) objectSize = 2 ** d.blockSizeShift;
    else if (d.storePolicy === 1) {
      d.blockSizeShift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
      objectSize = 2 ** d.blockSizeShift;
    } else {
      const rsp = await ctx.exec({ opcode: Op.CLUSTER_INFO, dataLength: CLUSTER_INFO_SIZE });
      if (!rsp) {
        sdErr('Fail to execute request: SD_OP_CLUSTER_INFO');
        return EXIT_FAILURE;
      }
      const ctime = rsp.data.length >= 16 ? rsp.data.readBigUInt64LE(8) : 0n;
      if (!ctime) {
        sdErr(`Failed to create VDI ${vdiname}: ${resultString(Res.WAIT_FOR_FORMAT)}`);
        return EXIT_FAILURE;
      }
      if (rsp.result !== Res.SUCCESS) {
        sdErr(resultString(rsp.result));
        return EXIT_FAILURE;
      }
      objectSize = 2 ** (rsp.data[21] ?? SD_DEFAULT_BLOCK_SIZE_SHIFT);
    }

    const oldMaxTotalSize = BigInt(objectSize) * OLD_MAX_DATA_OBJS;
    if (size > oldMaxTotalSize && d.storePolicy === 0) {
      sdErr(
        `VDI size is larger than ${ctx.strnumber(oldMaxTotalSize)} bytes, please use '-y' to create a hyper volume with size up to ` +
          `${ctx.strnumber(SD_MAX_VDI_SIZE)} bytes or use '-z' to create larger object size volume`,
      );
      return EXIT_USAGE;
    }
    if (size > SD_MAX_VDI_SIZE) {
      sdErr('VDI size is too large');
      return EXIT_USAGE;
    }

    const c = await ctx.doVdiCreate(vdiname, size, 0, false, d.nrCopies, d.copyPolicy, d.storePolicy, d.blockSizeShift);
    let ret = c.ret;
    const vid = c.vid;
    if (ret === EXIT_SUCCESS && d.prealloc) ret = await preallocate(ctx, vid, size);
    if (ret === EXIT_SUCCESS && ctx.verbose) {
      if (ctx.raw) out(`${hex(vid)}\n`);
      else out(`VDI ID of newly created VDI: ${hex(vid)}\n`);
    }
    return ret;
  }

  async function preallocate(ctx: RunContext, vid: number, size: bigint): Promise<number> {
    const buf = Buffer.alloc(SD_INODE_SIZE);
    if ((await ctx.readObject(vidToVdiOid(vid), buf, SD_INODE_SIZE, 0, true)) !== Res.SUCCESS) {
      sdErr('Failed to read a newly created VDI object');
      return EXIT_FAILURE;
    }
    const inode = new Inode(buf);
    if (inode.isHyper()) {
      sdErr('preallocating a hyper volume is not supported by this dog');
      return EXIT_FAILURE;
    }
    const objectSize = BigInt(inode.objectSize);
    const maxIdx = Number((size + objectSize - 1n) / objectSize);
    let idx = 0;
    for (; idx < maxIdx; idx++) {
      progress(ctx, BigInt(idx) * objectSize, inode.h.vdiSize);
      const r = await ctx.writeObject(vidToDataOid(vid, idx), 0n, new Uint8Array(0), 0, 0, inode.h.nrCopies, inode.h.copyPolicy, true, true);
      if (r !== Res.SUCCESS) return EXIT_FAILURE;
      inode.setVid(idx, vid);
      if ((await ctx.inodeWriteVid(inode, idx, vid, vid, 0, false, true)) !== Res.SUCCESS) return EXIT_FAILURE;
    }
    progress(ctx, BigInt(idx) * objectSize, inode.h.vdiSize);
    return EXIT_SUCCESS;
  }

  async function hasOwnObjects(ctx: RunContext, vid: number): Promise<{ ret: number; result: boolean }> {
    const buf = Buffer.alloc(SD_INODE_SIZE);
    const ret = await ctx.readObject(vidToVdiOid(vid), buf, SD_INODE_SIZE, 0, true);
    if (ret !== Res.SUCCESS) return { ret, result: true };
    for (let i = 0; i < SD_INODE_DATA_INDEX; i++) {
      const v = buf.readUInt32LE(SD_INODE_HEADER_SIZE + 4 * i);
      if (v && v === vid) return { ret, result: true };
    }
    return { ret, result: false };
  }

  async function vdiSnapshot(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    if (d.snapshotId !== 0) {
      sdErr('Please specify a non-integer value for a snapshot tag name');
      return EXIT_USAGE;
    }
    const f = await ctx.findVdiName(vdiname, d.snapshotId, d.snapshotTag);
    let vid = f.vid;
    let inode: Inode;
    if (f.result === Res.SUCCESS) {
      const buf = Buffer.alloc(SD_INODE_HEADER_SIZE);
      const r = await ctx.readObject(vidToVdiOid(vid), buf, SD_INODE_HEADER_SIZE, 0, true);
      if (r !== Res.SUCCESS) return r;
      inode = new Inode(buf);
      if (inode.isSnapshot()) {
        sdErr(`Failed to create snapshot for ${vdiname}, maybe snapshot id (${d.snapshotId}) or tag (${d.snapshotTag}) is existed`);
        return EXIT_FAILURE;
      }
    } else if (f.result === Res.NO_TAG) {
      const r = await ctx.readVdiObj(vdiname, 0, '', SD_INODE_HEADER_SIZE);
      if (r.ret !== EXIT_SUCCESS) return r.ret;
      vid = r.vid;
      inode = r.inode!;
    } else {
      sdErr(`Failed to create snapshot for ${vdiname}: ${resultString(f.result)}`);
      return EXIT_FAILURE;
    }

    if (inode.h.storePolicy) {
      sdErr('creating a snapshot of hypervolume is not supported');
      return EXIT_FAILURE;
    }

    if (d.reduceIdenticalSnapshots) {
      const r = await hasOwnObjects(ctx, vid);
      if (r.ret !== Res.SUCCESS) return r.ret;
      if (!r.result) {
        if (ctx.verbose) sdInfo(`VDI ${vdiname} doesn't have its own objects, skipping creation of snapshot`);
        return r.ret;
      }
    }

    const tagBuf = Buffer.alloc(SD_MAX_VDI_TAG_LEN);
    pstrcpy(tagBuf, 0, SD_MAX_VDI_TAG_LEN, d.snapshotTag);
    const w = await ctx.writeObject(vidToVdiOid(vid), 0n, tagBuf, InodeOff.tag, 0, inode.h.nrCopies, inode.h.copyPolicy, false, false);
    if (w !== Res.SUCCESS) return w;

    const c = await ctx.doVdiCreate(vdiname, inode.h.vdiSize, vid, true, inode.h.nrCopies, inode.h.copyPolicy, inode.h.storePolicy, inode.h.blockSizeShift);
    if (c.ret === EXIT_SUCCESS && ctx.verbose) {
      if (ctx.raw) out(`${hex(c.vid)} ${hex(vid)}\n`);
      else out(`new VID of original VDI: ${hex(c.vid)}, VDI ID of newly created snapshot: ${hex(vid)}\n`);
    }
    return c.ret;
  }

  async function vdiClone(ctx: RunContext, argv: Argv): Promise<number> {
    const src = argv.next()!;
    const dst = argv.cur;
    if (dst === undefined) {
      sdErr('Destination VDI name must be specified');
      return EXIT_USAGE;
    }
    if (!d.snapshotId && !d.snapshotTag) {
      sdErr('Only snapshot VDIs can be cloned');
      sdErr("Please specify the '-s' option");
      return EXIT_USAGE;
    }
    const r = await ctx.readVdiObj(src, d.snapshotId, d.snapshotTag, SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) return r.ret;
    const inode = r.inode!;
    const baseVid = d.noShare ? 0 : r.vid;
    const objectSize = inode.objectSize;
    const c = await ctx.doVdiCreate(dst, inode.h.vdiSize, baseVid, false, inode.h.nrCopies, inode.h.copyPolicy, inode.h.storePolicy, inode.h.blockSizeShift);
    let ret = c.ret;
    const newVid = c.vid;
    if (ret === EXIT_SUCCESS && (d.prealloc || d.noShare)) {
      ret = await (async () => {
        const nr = await ctx.readVdiObj(dst, 0, '', SD_INODE_HEADER_SIZE);
        if (nr.ret !== EXIT_SUCCESS) return nr.ret;
        const newInode = new Inode(Buffer.concat([nr.inode!.buf, Buffer.alloc(4 * SD_INODE_DATA_INDEX)]));
        if (newInode.isHyper()) {
          sdErr('copying into a hyper volume is not supported by this dog');
          return EXIT_FAILURE;
        }
        const buf = Buffer.alloc(objectSize);
        const maxIdx = inode.nrDataObjs;
        let idx = 0;
        for (; idx < maxIdx; idx++) {
          progress(ctx, BigInt(idx) * BigInt(objectSize), inode.h.vdiSize);
          const vdiId = inode.getVid(idx);
          let data: Uint8Array;
          if (vdiId) {
            const rr = await ctx.readObject(vidToDataOid(vdiId, idx), buf, objectSize, 0, true);
            if (rr) return EXIT_FAILURE;
            data = buf;
          } else {
            if (d.noShare && !d.prealloc) continue;
            data = new Uint8Array(0);
          }
          const w = await ctx.writeObject(vidToDataOid(newVid, idx), 0n, data, 0, 0, inode.h.nrCopies, inode.h.copyPolicy, true, true);
          if (w !== Res.SUCCESS) return EXIT_FAILURE;
          newInode.setVid(idx, newVid);
          if ((await ctx.inodeWriteVid(newInode, idx, newVid, newVid, 0, false, true)) !== Res.SUCCESS) return EXIT_FAILURE;
        }
        progress(ctx, BigInt(idx) * BigInt(objectSize), inode.h.vdiSize);
        return EXIT_SUCCESS;
      })();
    }
    if (ret === EXIT_SUCCESS && ctx.verbose) {
      if (ctx.raw) out(`${hex(newVid)}\n`);
      else out(`VDI ID of newly created clone: ${hex(newVid)}\n`);
    }
    return ret;
  }

  async function vdiResize(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    if (argv.cur === undefined) {
      sdErr('Please specify the new size for the VDI');
      return EXIT_USAGE;
    }
    const newSize = parseSize(argv.cur);
    if (newSize === null) return EXIT_USAGE;
    const r = await ctx.readVdiObj(vdiname, 0, '', SD_INODE_HEADER_SIZE);
    if (r.ret !== EXIT_SUCCESS) return r.ret;
    const inode = r.inode!;
    const oldMax = BigInt(inode.objectSize) * OLD_MAX_DATA_OBJS;
    if (inode.h.storePolicy === 0) {
      if (newSize > oldMax) {
        sdErr(`New VDI size is too large. This volume's max size is ${oldMax}`);
        return EXIT_USAGE;
      }
    } else if (newSize > SD_MAX_VDI_SIZE) {
      sdErr(`New VDI size is too large This volume's max size is ${SD_MAX_VDI_SIZE}`);
      return EXIT_USAGE;
    }
    if (newSize < inode.h.vdiSize) {
      sdErr('Shrinking VDIs is not implemented');
      return EXIT_USAGE;
    }
    const hdr = Buffer.from(inode.buf.subarray(0, SD_INODE_HEADER_SIZE));
    hdr.writeBigUInt64LE(newSize, InodeOff.vdiSize);
    const w = await ctx.writeObject(vidToVdiOid(r.vid), 0n, hdr, 0, 0, inode.h.nrCopies, inode.h.copyPolicy, false, true);
    if (w !== Res.SUCCESS) {
      sdErr('Failed to update an inode header');
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  // -------------------------------------------------------------------------------------------
  // delete / rollback
  // -------------------------------------------------------------------------------------------

  /**
   * do_vdi_delete(): zero data_vdi_id[] in batches (the gateway drops the references), then
   * DEL_VDI. As in Sheepdog 1.0 the function reports success whatever happened; the errors are
   * only printed.
   */
  async function doVdiDelete(ctx: DogContext, vdiname: string, snapId: number, snapTag: string | null): Promise<number> {
    const batch = d.nrBatchedReclamation || NR_BATCHED_RECLAMATION_DEFAULT;
    const f = await ctx.findVdiName(vdiname, snapId, snapTag);
    if (f.result !== Res.SUCCESS) {
      sdErr(`Failed to open VDI ${vdiname} (snapshot id: ${snapId} snapshot tag: ${snapTag ?? '(null)'}): ${resultString(f.result)}`);
      return EXIT_SUCCESS;
    }
    const vid = f.vid;
    const buf = Buffer.alloc(SD_INODE_SIZE);
    if ((await ctx.readObject(vidToVdiOid(vid), buf, SD_INODE_SIZE, 0, false)) !== Res.SUCCESS) {
      sdErr(`failed to read inode object: ${hex16(vidToVdiOid(vid))}`);
      return EXIT_SUCCESS;
    }
    const inode = new Inode(buf);
    const nrObjs = Math.min(inode.nrDataObjs, SD_INODE_DATA_INDEX);
    const entry = (i: number) => buf.readUInt32LE(SD_INODE_HEADER_SIZE + 4 * i);
    let i = 0;
    let nrReclaimed = 0;
    while (i < nrObjs) {
      if (d.nrMaxReclaim && d.nrMaxReclaim <= nrReclaimed) break;
      while (i < nrObjs && !entry(i)) i++;
      const start = i;
      let filled = 0;
      while (i < nrObjs && filled < batch) {
        if (entry(i)) {
          buf.writeUInt32LE(0, SD_INODE_HEADER_SIZE + 4 * i);
          filled++;
          nrReclaimed++;
        }
        i++;
        if (d.nrMaxReclaim && d.nrMaxReclaim <= nrReclaimed) break;
      }
      const part = buf.subarray(SD_INODE_HEADER_SIZE + 4 * start, SD_INODE_HEADER_SIZE + 4 * i);
      const w = await ctx.writeObject(vidToVdiOid(vid), 0n, part, SD_INODE_HEADER_SIZE + 4 * start, 0, inode.h.nrCopies, inode.h.copyPolicy, false, true);
      if (w !== Res.SUCCESS) {
        sdErr(`failed to update inode for discarding objects: ${hex16(vidToVdiOid(vid))}`);
        return EXIT_SUCCESS;
      }
      if (i < nrObjs && d.reclamationInterval) await sleep(d.reclamationInterval * 1000);
    }
    if (d.nrMaxReclaim) return EXIT_SUCCESS;

    const data = Buffer.alloc(SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN);
    pstrcpy(data, 0, SD_MAX_VDI_LEN, vdiname);
    if (snapTag !== null) pstrcpy(data, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN, snapTag);
    const rsp = await ctx.exec({ opcode: Op.DEL_VDI, flags: Flag.CMD_WRITE, vdi: { snapid: snapId } }, data);
    if (!rsp) return EXIT_SUCCESS;
    if (rsp.result !== Res.SUCCESS) sdErr(`Failed to delete ${vdiname}: ${resultString(rsp.result)}`);
    return EXIT_SUCCESS;
  }

  async function vdiDelete(ctx: RunContext, argv: Argv): Promise<number> {
    return doVdiDelete(ctx, argv.cur!, d.snapshotId, d.snapshotTag);
  }

  async function vdiRollback(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    if (!d.snapshotId && !d.snapshotTag) {
      sdErr("Please specify the '-s' option");
      return EXIT_USAGE;
    }
    const r = await ctx.readVdiObj(vdiname, d.snapshotId, d.snapshotTag, SD_INODE_HEADER_SIZE);
    if (r.ret !== EXIT_SUCCESS) return r.ret;
    const inode = r.inode!;
    if (!d.force) await ctx.confirm('This operation discards any changes made since the previous\nsnapshot was taken.  Continue? [yes/no]: ');
    const del = await doVdiDelete(ctx, vdiname, 0, null);
    if (del !== Res.SUCCESS) {
      sdErr('Failed to delete the current state');
      return EXIT_FAILURE;
    }
    const c = await ctx.doVdiCreate(vdiname, inode.h.vdiSize, r.vid, false, inode.h.nrCopies, inode.h.copyPolicy, inode.h.storePolicy, inode.h.blockSizeShift);
    if (c.ret === EXIT_SUCCESS && ctx.verbose) {
      if (ctx.raw) out(`${hex(c.vid)}\n`);
      else out(`New VDI ID of rollbacked VDI: ${hex(c.vid)}\n`);
    }
    return c.ret;
  }

  // -------------------------------------------------------------------------------------------
  // object location / map / dump-inode, track
  // -------------------------------------------------------------------------------------------

  async function objectMap(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.cur!;
    const r = await ctx.readVdiObj(vdiname, d.snapshotId, d.snapshotTag, SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) {
      sdErr(`FATAL: ${vdiname} not found`);
      return r.ret;
    }
    const inode = r.inode!;
    out('Index       VID\n');
    if (d.index !== NO_INDEX) {
      const idx = d.index < BigInt(SD_INODE_DATA_INDEX) ? Number(d.index) : -1;
      out(`${pad0(d.index, 8)} ${padL(hex(idx >= 0 ? inode.getVid(idx) : 0), 8)}\n`);
    } else {
      const max = inode.nrDataObjs;
      for (let idx = 0; idx < max; idx++) {
        const vid = inode.getVid(idx);
        if (vid) out(`${pad0(idx, 8)} ${padL(hex(vid), 8)}\n`);
      }
    }
    return r.ret;
  }

  async function forEachNodePrint(ctx: RunContext, oid: bigint): Promise<void> {
    for (const n of ctx.nodes) {
      const rsp = await ctx.exec({ opcode: Op.EXIST, epoch: ctx.epoch, obj: { oid } }, undefined, n.nid);
      if (!rsp) continue;
      const sheep = formatAddrPort(n.nid.addr, n.nid.port);
      switch (rsp.result) {
        case Res.SUCCESS:
          out(`${sheep} has the object\n`);
          break;
        case Res.NO_OBJ:
          out(`${sheep} doesn't have the object\n`);
          break;
        case Res.OLD_NODE_VER:
        case Res.NEW_NODE_VER:
          sdErr('The node list has changed: please try again');
          break;
        default:
          sdErr(`${sheep}: hit an unexpected error (${resultString(rsp.result)})`);
      }
    }
  }

  function expectedLocation(ctx: RunContext, oid: bigint, copies: number): void {
    if (ctx.nodesNr < copies) {
      out(
        `\nBecause number of nodes (${ctx.nodesNr}) is less than number of copies (${copies}), ` +
          'the object should be located at every nodes.\n',
      );
      return;
    }
    out('\nAccording to sheepdog algorithm, the object should be located at:\n');
    const ring = buildVnodeRing(ctx.nodes.map(toRingNode));
    const idx = placeObject(ring, oid, copies);
    out(idx.map((i) => formatAddrPort(ctx.nodes[i]!.nid.addr, ctx.nodes[i]!.nid.port)).join(' ') + '\n');
  }

  async function objectLocation(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.cur!;
    const r = await ctx.readVdiObj(vdiname, d.snapshotId, d.snapshotTag, SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) {
      sdErr('FATAL: no inode objects');
      return r.ret;
    }
    const inode = r.inode!;
    const vid = inode.h.vdiId;
    if (d.index === NO_INDEX) {
      out(`Looking for the inode object 0x${hex(vid)} with ${ctx.nodesNr} nodes\n\n`);
      await forEachNodePrint(ctx, vidToVdiOid(vid));
      expectedLocation(ctx, vidToVdiOid(vid), inode.h.nrCopies);
      return EXIT_SUCCESS;
    }
    if (d.index >= BigInt(MAX_DATA_OBJS)) {
      out('The offset is too large!\n');
      return EXIT_FAILURE;
    }
    const idx = Number(d.index);
    const vdiId = inode.getVid(idx);
    const oid = vidToDataOid(vdiId, idx);
    if (vdiId) {
      out(`Looking for the object ${hex16(oid)} (vid 0x${hex(vid)} idx ${idx}, ${inode.h.nrCopies} copies) with ${ctx.nodesNr} nodes\n\n`);
      await forEachNodePrint(ctx, oid);
      expectedLocation(ctx, oid, inode.h.nrCopies);
    } else out(`The inode object 0x${hex(vid)} idx ${idx} is not allocated\n`);
    return EXIT_SUCCESS;
  }

  async function objectDumpInode(_ctx: RunContext, argv: Argv): Promise<number> {
    let buf: Buffer;
    try {
      buf = readFileSync(argv.cur!);
    } catch (e) {
      sdErr(`failed to open inode object file: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
      return EXIT_FAILURE;
    }
    if (buf.length < SD_INODE_SIZE) {
      sdErr('failed to read inode object file: Success');
      return EXIT_FAILURE;
    }
    const h = decodeInodeHeader(buf);
    let s = '';
    s += `name: ${h.name}\n`;
    s += `tag: ${h.tag}\n`;
    s += `create_time: ${hex(h.createTime)}\n`;
    s += `snap_ctime: ${hex(h.snapCtime)}\n`;
    s += `vm_clock_nsec: ${hex(h.vmClockNsec)}\n`;
    s += `vdi_size: ${h.vdiSize}\n`;
    s += `vm_state_size: ${h.vmStateSize}\n`;
    s += `copy_policy: ${h.copyPolicy}\n`;
    s += `store_policy: ${h.storePolicy}\n`;
    s += `nr_copies: ${h.nrCopies}\n`;
    s += `block_size_shift: ${h.blockSizeShift}\n`;
    s += `snap_id: ${h.snapId}\n`;
    s += `vdi_id: ${hex(h.vdiId)}\n`;
    s += `parent_vdi_id: ${hex(h.parentVdiId)}\n`;
    s += `btree_counter: ${h.btreeCounter}\n`;
    s += 'data_vdi_id:\n';
    const vidAt = (i: number) => buf.readUInt32LE(SD_INODE_HEADER_SIZE + 4 * i);
    for (let i = 0; i < SD_INODE_DATA_INDEX; i++) if (vidAt(i)) s += `${i}: ${hex(vidAt(i))}\n`;
    s += 'gref:\n';
    const gref = (i: number) => ({
      g: buf.readInt32LE(InodeOff.gref + 8 * i),
      c: buf.readInt32LE(InodeOff.gref + 8 * i + 4),
    });
    for (let i = 0; i < SD_INODE_DATA_INDEX; i++) {
      const g = gref(i);
      if (!vidAt(i)) {
        if (g.g || g.c) s += `WARNING: index ${i} doesn't have data vdi ID but its generation and count is not zero(${g.g}, ${g.c})`;
        continue;
      }
      s += `${i}: ${hex(vidAt(i))}, ${g.g}, ${g.c}\n`;
    }
    out(s);
    return EXIT_SUCCESS;
  }

  const objectCmd: Subcommand[] = [
    { name: 'location', desc: 'show object location information', flags: CMD_NEED_NODELIST | CMD_NEED_ARG, fn: objectLocation },
    { name: 'map', desc: 'show object map information', flags: CMD_NEED_ARG, fn: objectMap },
    { name: 'dump-inode', desc: 'dump inode information', flags: CMD_NEED_ARG, fn: objectDumpInode },
  ];

  async function doTrackObject(ctx: RunContext, oid: bigint, nrCopies: number): Promise<number> {
    let nodesNr = ctx.nodesNr;
    let rsp;
    for (let tries = 0; ; tries++) {
      const len = ctx.epoch * (EPOCH_LOG_HEADER_SIZE + nodesNr * SD_NODE_SIZE);
      rsp = await ctx.exec({ opcode: Op.STAT_CLUSTER, dataLength: len, cluster: { nodesNr } });
      if (!rsp) return EXIT_SYSFAIL;
      if (rsp.result === Res.BUFFER_SMALL && tries < 16) {
        nodesNr = Math.max(1, nodesNr) * 2;
        continue;
      }
      break;
    }
    if (rsp.result !== Res.SUCCESS) {
      out(`${resultString(rsp.result)}\n`);
      return EXIT_SYSFAIL;
    }
    const logs = decodeEpochLogs(rsp.data, nodesNr);
    let cur = 0; // upstream only advances after a full placement (see below)
    for (let i = logs.length - 1; i >= 0; i--) {
      const log = logs[cur]!;
      out(`\nobj ${hex16(oid)} locations at epoch ${log.epoch}, copies = ${nrCopies}\n`);
      out('---------------------------------------------------\n');
      if (log.nodes.length < nrCopies) {
        for (const n of log.nodes) out(`${formatAddrPort(n.nid.addr, n.nid.port)}\n`);
        continue;
      }
      const nodes = sortNodes(log.nodes);
      const ring = buildVnodeRing(nodes.map(toRingNode));
      for (const k of placeObject(ring, oid, nrCopies)) out(`${formatAddrPort(nodes[k]!.nid.addr, nodes[k]!.nid.port)}\n`);
      cur++;
    }
    return EXIT_SUCCESS;
  }

  async function vdiTrack(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.cur!;
    const r = await ctx.readVdiObj(vdiname, d.snapshotId, d.snapshotTag, SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) {
      sdErr('FATAL: no inode objects');
      return EXIT_FAILURE;
    }
    const inode = r.inode!;
    const vid = inode.h.vdiId;
    let oid = d.oid;
    if (!oid) {
      if (d.index === NO_INDEX) {
        out(`Tracking the inode object 0x${hex(vid)} with ${ctx.nodesNr} nodes\n`);
        return doTrackObject(ctx, vidToVdiOid(vid), inode.h.nrCopies);
      }
      const idx = Number(d.index & 0xffffffffn);
      if (idx >= MAX_DATA_OBJS) {
        out('The offset is too large!\n');
        return EXIT_FAILURE;
      }
      oid = vidToDataOid(inode.getVid(idx), idx);
      out(`Tracking the object ${hex16(oid)} (the inode vid 0x${hex(vid)} idx ${idx}) with ${ctx.nodesNr} nodes\n`);
    } else out(`Tracking the object ${hex16(oid)} (the inode vid 0x${hex(vid)}) with ${ctx.nodesNr} nodes\n`);
    return doTrackObject(ctx, oid, inode.h.nrCopies);
  }

  // -------------------------------------------------------------------------------------------
  // attributes
  // -------------------------------------------------------------------------------------------

  async function findVdiAttrOid(
    ctx: RunContext,
    vdiname: string,
    key: string,
    value: Buffer | null,
    create: boolean,
    excl: boolean,
    del: boolean,
  ): Promise<{ result: number; vid: number; oid: bigint; copies: number }> {
    const vattr = Buffer.alloc(SD_ATTR_OBJ_SIZE);
    pstrcpy(vattr, VdiAttrOff.name, SD_MAX_VDI_LEN, vdiname);
    pstrcpy(vattr, VdiAttrOff.tag, SD_MAX_VDI_TAG_LEN, d.snapshotTag);
    vattr.writeUInt32LE(d.snapshotId >>> 0, VdiAttrOff.snapId);
    pstrcpy(vattr, VdiAttrOff.key, SD_MAX_VDI_ATTR_KEY_LEN, key);
    if (value && value.length) {
      vattr.writeUInt32LE(value.length, VdiAttrOff.valueLen);
      value.copy(vattr, VdiAttrOff.value, 0, Math.min(value.length, SD_MAX_VDI_ATTR_VALUE_LEN));
    }
    let flags = Flag.CMD_WRITE;
    if (create) flags |= Flag.CMD_CREAT;
    if (excl) flags |= Flag.CMD_EXCL;
    if (del) flags |= Flag.CMD_DEL;
    const rsp = await ctx.exec({ opcode: Op.GET_VDI_ATTR, flags, vdi: { snapid: d.snapshotId } }, vattr);
    if (!rsp) return { result: Res.EIO, vid: 0, oid: 0n, copies: 0 };
    if (rsp.result !== Res.SUCCESS) return { result: rsp.result, vid: 0, oid: 0n, copies: 0 };
    const v = readVdiRsp(rsp.raw);
    return { result: Res.SUCCESS, vid: v.vdiId, oid: vidToAttrOid(v.vdiId, v.attrId), copies: v.copies };
  }

  async function vdiSetattr(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    const key = argv.next();
    if (key === undefined) {
      sdErr('Please specify the attribute key');
      return EXIT_USAGE;
    }
    let value: Buffer | null = argv.cur !== undefined ? Buffer.from(argv.cur, 'utf8') : null;
    argv.optind++;
    if (!value && !d.delete) value = await ctx.stdin.read(SD_MAX_VDI_ATTR_VALUE_LEN);
    if (value) {
      const nul = value.indexOf(0);
      if (nul >= 0) value = value.subarray(0, nul); // strlen()
    }
    const r = await findVdiAttrOid(ctx, vdiname, key, value, !d.delete, d.exclusive, d.delete);
    if (r.result) {
      if (r.result === Res.VDI_EXIST) {
        sdErr(`The attribute '${key}' already exists`);
        return EXIT_EXISTS;
      } else if (r.result === Res.NO_OBJ) {
        sdErr(`Attribute '${key}' not found`);
        return EXIT_MISSING;
      } else if (r.result === Res.NO_VDI) {
        sdErr('VDI not found');
        return EXIT_MISSING;
      }
      sdErr(`Failed to set attribute: ${resultString(r.result)}`);
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  async function vdiGetattr(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    const key = argv.next();
    if (key === undefined) {
      sdErr('Please specify the attribute key');
      return EXIT_USAGE;
    }
    const r = await findVdiAttrOid(ctx, vdiname, key, null, false, false, false);
    if (r.result === Res.NO_OBJ) {
      sdErr(`Attribute '${key}' not found`);
      return EXIT_MISSING;
    } else if (r.result === Res.NO_VDI) {
      sdErr('VDI not found');
      return EXIT_MISSING;
    } else if (r.result) {
      sdErr(`Failed to find attribute oid: ${resultString(r.result)}`);
      return EXIT_MISSING;
    }
    const vattr = Buffer.alloc(SD_ATTR_OBJ_SIZE);
    const rr = await ctx.readObject(r.oid, vattr, SD_ATTR_OBJ_SIZE, 0, true);
    if (rr !== Res.SUCCESS) {
      sdErr(`Failed to read attribute oid: ${resultString(rr)}`);
      return EXIT_SYSFAIL;
    }
    const len = Math.min(vattr.readUInt32LE(VdiAttrOff.valueLen), SD_MAX_VDI_ATTR_VALUE_LEN);
    await getSink().outAsync(vattr.subarray(VdiAttrOff.value, VdiAttrOff.value + len));
    return EXIT_SUCCESS;
  }

  // -------------------------------------------------------------------------------------------
  // read / write
  // -------------------------------------------------------------------------------------------

  async function parseRange(argv: Argv): Promise<{ offset: bigint; total: bigint } | null> {
    let offset = 0n;
    let total = (1n << 64n) - 1n;
    if (argv.cur !== undefined) {
      const o = parseSize(argv.next()!);
      if (o === null) return null;
      offset = o;
      if (argv.cur !== undefined) {
        const t = parseSize(argv.next()!);
        if (t === null) return null;
        total = t;
      }
    }
    return { offset, total };
  }

  async function vdiRead(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    const range = await parseRange(argv);
    if (!range) return EXIT_USAGE;
    const r = await ctx.readVdiObj(vdiname, d.snapshotId, d.snapshotTag, SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) return r.ret;
    const inode = r.inode!;
    if (inode.h.vdiSize < range.offset) {
      sdErr('Read offset is beyond the end of the VDI');
      return EXIT_FAILURE;
    }
    const objectSize = BigInt(inode.objectSize);
    const buf = Buffer.alloc(inode.objectSize);
    const total = range.total < inode.h.vdiSize - range.offset ? range.total : inode.h.vdiSize - range.offset;
    let idx = Number(range.offset / objectSize);
    let offset = range.offset % objectSize;
    let done = 0n;
    while (done < total) {
      const rest = total - done;
      const len = Number(rest < objectSize - offset ? rest : objectSize - offset);
      const vdiId = inode.getVid(idx);
      const chunk = buf.subarray(0, len);
      if (vdiId) {
        const rr = await ctx.readObject(vidToDataOid(vdiId, idx), chunk, len, Number(offset), false);
        if (rr !== Res.SUCCESS) {
          sdErr('Failed to read VDI');
          return EXIT_FAILURE;
        }
      } else chunk.fill(0);
      try {
        await getSink().outAsync(Buffer.from(chunk));
      } catch (e) {
        sdErr(`Failed to write to stdout: ${(e as Error).message}`);
        return EXIT_SYSFAIL;
      }
      offset = 0n;
      idx++;
      done += BigInt(len);
    }
    return EXIT_SUCCESS;
  }

  async function vdiWrite(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    const range = await parseRange(argv);
    if (!range) return EXIT_USAGE;
    const r = await ctx.readVdiObj(vdiname, 0, '', SD_INODE_SIZE);
    if (r.ret !== EXIT_SUCCESS) return r.ret;
    const inode = r.inode!;
    const vid = r.vid;
    if (inode.h.vdiSize < range.offset) {
      sdErr('Write offset is beyond the end of the VDI');
      return EXIT_FAILURE;
    }
    if (inode.isHyper()) {
      sdErr('writing to a hyper volume is not supported by this dog');
      return EXIT_FAILURE;
    }
    const objectSize = BigInt(inode.objectSize);
    let total = range.total < inode.h.vdiSize - range.offset ? range.total : inode.h.vdiSize - range.offset;
    let idx = Number(range.offset / objectSize);
    let offset = range.offset % objectSize;
    let done = 0n;
    while (done < total) {
      let create = false;
      let oldOid = 0n;
      let flags = 0;
      const rest = total - done;
      const len = Number(rest < objectSize - offset ? rest : objectSize - offset);
      const vdiId = inode.getVid(idx);
      if (!vdiId) create = true;
      else if (vdiId !== inode.h.vdiId) {
        create = true;
        oldOid = vidToDataOid(vdiId, idx);
      }
      if (d.writeback) flags |= Flag.CMD_CACHE;
      const got = await ctx.stdin.read(len);
      let data = got;
      if (got.length < len) {
        // exit after this buffer is sent (the rest of the chunk is zero-filled, as upstream)
        data = Buffer.concat([got, Buffer.alloc(len - got.length)]);
        total = done + BigInt(len);
      }
      inode.setVid(idx, inode.h.vdiId);
      const w = await ctx.writeObject(vidToDataOid(inode.h.vdiId, idx), oldOid, data, Number(offset), flags, inode.h.nrCopies, inode.h.copyPolicy, create, false);
      if (w !== Res.SUCCESS) {
        sdErr('Failed to write VDI');
        return EXIT_FAILURE;
      }
      if (create) {
        const iw = await ctx.inodeWriteVid(inode, idx, vid, vid, flags, false, false);
        if (iw) return EXIT_FAILURE;
      }
      offset += BigInt(len);
      if (offset === objectSize) {
        offset = 0n;
        idx++;
      }
      done += BigInt(len);
    }
    return EXIT_SUCCESS;
  }

  // -------------------------------------------------------------------------------------------
  // alter-copy, lock
  // -------------------------------------------------------------------------------------------

  async function vdiAlterCopy(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.next()!;
    if (d.copyPolicy !== 0) {
      sdErr('Changing redundancy level of erasure coded vdi is not supported yet.');
      return EXIT_USAGE;
    }
    if (!d.nrCopies) {
      d.nrCopies = SD_DEFAULT_COPIES;
      out(`The vdi's redundancy level is not specified, use ${SD_DEFAULT_COPIES} as default.\n`);
    }
    if (!d.force && d.nrCopies > ctx.nodesNr) {
      await ctx.confirm(
        `Number of copies (${d.nrCopies}) is larger than number of nodes (${ctx.nodesNr}).\n` +
          'Are you sure you want to continue? [yes/no]: ',
      );
    }
    const r = await ctx.readVdiObj(vdiname, 0, '', SD_INODE_HEADER_SIZE);
    if (r.ret !== EXIT_SUCCESS) {
      sdErr(`Reading ${vdiname}'s vdi object failure.`);
      return EXIT_FAILURE;
    }
    const inode = r.inode!;
    if (inode.h.copyPolicy) {
      sdErr(`${vdiname}'s copy policy is erasure code, changing it is not supported yet.`);
      return EXIT_FAILURE;
    }
    const old = inode.h.nrCopies;
    if (old === d.nrCopies) {
      sdErr(`${vdiname}'s redundancy level is already set to ${old}, nothing changed.`);
      return EXIT_FAILURE;
    }
    const tree = new VdiTree();
    if ((await ctx.parseVdi((vid, name, tag, _s, _f, i) => tree.add(name, tag, vid, i.h.parentVdiId, false), false)) < 0) return EXIT_SYSFAIL;
    const me = tree.findFromRoot(r.vid, inode.h.name);
    if (!me) sdErr('failed to construct vdi tree');
    if (!me || me.pvid || me.children) {
      sdErr('Only standalone vdi supports changing redundancy level.');
      sdErr(`Please clone ${vdiname} with -n (--no-share) option first.`);
      return EXIT_FAILURE;
    }
    if (!d.force) await ctx.confirm(ALTER_VDI_COPY_PRINT);
    const hdr = Buffer.from(inode.buf.subarray(0, SD_INODE_HEADER_SIZE));
    hdr[InodeOff.nrCopies] = d.nrCopies;
    const w = await ctx.writeObject(vidToVdiOid(r.vid), 0n, hdr, 0, 0, old, inode.h.copyPolicy, false, true);
    if (w !== Res.SUCCESS) {
      sdErr(`Overwrite the vdi object's header of ${vdiname} failure while setting its redundancy level.`);
      return EXIT_FAILURE;
    }
    const { ret } = await ctx.sendLightReq({
      opcode: Op.ALTER_VDI_COPY,
      vdiState: { newVid: r.vid, copies: d.nrCopies, copyPolicy: d.copyPolicy, blockSizeShift: inode.h.blockSizeShift },
    });
    if (ret === 0) {
      sdInfo(`${vdiname}'s redundancy level is set to ${d.nrCopies}, the old one was ${old}.`);
      return EXIT_SUCCESS;
    }
    sdErr(`Changing ${vdiname}'s redundancy level failure.`);
    return EXIT_FAILURE;
  }

  async function lockList(ctx: RunContext): Promise<number> {
    const vs = await getVdiState(ctx);
    if (!vs) {
      sdErr('Failed to get VDI state');
      return EXIT_SYSFAIL;
    }
    const byVid = new Map(vs.map((s) => [s.vid, s]));
    out('  Name         Id  VDI id  Tag            Owner node(s)\n');
    const ret = await ctx.parseVdi((vid, name, tag, snapid, _f, inode) => {
      const found = byVid.get(vid);
      if (!found || found.lockState === LockState.UNLOCKED) return;
      const isClone = inode.h.snapId === 1 && inode.h.parentVdiId !== 0;
      let s = `${inode.isSnapshot() ? 's' : isClone ? 'c' : ' '} ${padR(name, 8)}  ${padL(snapid, 5)}  ${padL(hex(vid), 6)}  ${padR(tag, 13)} `;
      if (found.lockState === LockState.LOCKED) {
        out(s + ` ${nodeIdToStr(found.lockOwner)}\n`);
        return;
      }
      found.participants.forEach((p, j) => {
        s += ` ${nodeIdToStr(p)}`;
        const st = found.participantsState[j]!;
        s += st === 0 ? '(modified)' : st === 1 ? '(shared)' : st === 2 ? '(invalidated)' : `(UNKNOWN ${st}, BUG!)`;
      });
      out(s + '\n');
    }, true);
    return ret ? EXIT_SYSFAIL : EXIT_SUCCESS;
  }

  function describeVdi(name: string, snapid: number, tag: string, vid: number): string {
    if (vid) {
      if (snapid > 0) return `${name} (snapid=${snapid}, vid=${hex(vid)})`;
      if (tag) return `${name} (tag=${tag}, vid=${hex(vid)})`;
      return `${name} (vid=${hex(vid)})`;
    }
    if (snapid > 0) return `${name} (snapid=${snapid})`;
    if (tag) return `${name} (tag=${tag})`;
    return name;
  }

  async function lockUnlock(ctx: RunContext, argv: Argv): Promise<number> {
    const vdiname = argv.cur;
    if (vdiname === undefined) {
      sdErr('VDI name must be specified');
      return EXIT_USAGE;
    }
    const f = await ctx.findVdiName(vdiname, d.snapshotId, d.snapshotTag);
    const desc = describeVdi(vdiname, d.snapshotId, d.snapshotTag, f.vid);
    if (f.result !== Res.SUCCESS) {
      sdErr(`Failed to find VDI ${desc}: ${resultString(f.result)}`);
      return EXIT_FAILURE;
    }
    const vs = await getVdiState(ctx);
    if (!vs) {
      sdErr('Failed to get VDI state');
      return EXIT_SYSFAIL;
    }
    const found = vs.find((s) => s.vid === f.vid);
    if (!found) {
      sdErr(`Failed to find VDI state ${desc}`);
      return EXIT_SYSFAIL;
    }
    let type: number;
    switch (found.lockState) {
      case LockState.UNLOCKED:
        sdErr(`VDI ${desc} is not locked`);
        return EXIT_FAILURE;
      case LockState.LOCKED:
        type = LockType.NORMAL;
        break;
      case LockState.SHARED:
        type = LockType.SHARED;
        break;
      default:
        sdErr(`VDI ${desc} unknown lock state (${found.lockState})`);
        return EXIT_SYSFAIL;
    }
    const rsp = await ctx.exec({ opcode: Op.RELEASE_VDI, vdi: { baseVdiId: f.vid, type } });
    return rsp ? EXIT_SUCCESS : EXIT_FAILURE;
  }

  const lockCmd: Subcommand[] = [
    { name: 'list', desc: 'list locked VDIs', flags: 0, fn: lockList },
    { name: 'unlock', arg: '<vdiname>', desc: 'unlock locked VDI forcibly', flags: CMD_NEED_ARG, fn: lockUnlock },
  ];

  const backup = (ctx: RunContext, argv: Argv) => vdiBackup(ctx, argv, d);
  const restore = (ctx: RunContext, argv: Argv) => vdiRestore(ctx, argv, d, (c, name) => doVdiDelete(c, name, 0, null));
  const check = (ctx: RunContext, argv: Argv) => vdiCheck(ctx, argv.cur!, { snapshotId: d.snapshotId, snapshotTag: d.snapshotTag, exist: d.exist });

  const O = VDI_OPTIONS;
  const sub: Subcommand[] = [
    { name: 'check', arg: '<vdiname>', opts: 'seaphT', desc: "check and repair image's consistency", flags: CMD_NEED_NODELIST | CMD_NEED_ARG, fn: check, options: O },
    { name: 'create', arg: '<vdiname> <size>', opts: 'PycaphrvzT', desc: 'create an image', flags: CMD_NEED_NODELIST | CMD_NEED_ARG, fn: vdiCreate, options: O },
    { name: 'snapshot', arg: '<vdiname>', opts: 'saphrvTR', desc: 'create a snapshot', flags: CMD_NEED_ARG, fn: vdiSnapshot, options: O },
    { name: 'clone', arg: '<src vdi> <dst vdi>', opts: 'sPnaphrvT', desc: 'clone an image', flags: CMD_NEED_ARG, fn: vdiClone, options: O },
    { name: 'delete', arg: '<vdiname>', opts: 'saphTBIm', desc: 'delete an image', flags: CMD_NEED_ARG, fn: vdiDelete, options: O },
    { name: 'rollback', arg: '<vdiname>', opts: 'saphfrvTBI', desc: 'rollback to a snapshot', flags: CMD_NEED_ARG, fn: vdiRollback, options: O },
    { name: 'list', arg: '[vdiname]', opts: 'aprhoT', desc: 'list images', flags: 0, fn: vdiList, options: O },
    { name: 'tree', opts: 'aphT', desc: 'show images in tree view format', flags: 0, fn: vdiTree, options: O },
    { name: 'graph', opts: 'aphT', desc: 'show images in Graphviz dot format', flags: 0, fn: vdiGraph, options: O },
    {
      name: 'object',
      arg: '<vdiname>',
      opts: 'isaphT',
      desc: 'show object information in the image',
      sub: objectCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(objectCmd, ctx, argv),
      options: O,
    },
    { name: 'track', arg: '<vdiname>', opts: 'isaphoT', desc: 'show the object epoch trace in the image', flags: CMD_NEED_NODELIST | CMD_NEED_ARG, fn: vdiTrack, options: O },
    { name: 'setattr', arg: '<vdiname> <key> [value]', opts: 'dxaphT', desc: 'set a VDI attribute', flags: CMD_NEED_ARG, fn: vdiSetattr, options: O },
    { name: 'getattr', arg: '<vdiname> <key>', opts: 'aphT', desc: 'get a VDI attribute', flags: CMD_NEED_ARG, fn: vdiGetattr, options: O },
    { name: 'resize', arg: '<vdiname> <new size>', opts: 'aphT', desc: 'resize an image', flags: CMD_NEED_ARG, fn: vdiResize, options: O },
    { name: 'read', arg: '<vdiname> [<offset> [<len>]]', opts: 'saphT', desc: 'read data from an image', flags: CMD_NEED_ARG, fn: vdiRead, options: O },
    { name: 'write', arg: '<vdiname> [<offset> [<len>]]', opts: 'apwhT', desc: 'write data to an image', flags: CMD_NEED_ARG, fn: vdiWrite, options: O },
    {
      name: 'backup',
      arg: '<vdiname>',
      opts: 'sFaphT',
      desc: 'create an incremental backup between two snapshots and outputs to STDOUT',
      flags: CMD_NEED_NODELIST | CMD_NEED_ARG,
      fn: backup,
      options: O,
    },
    {
      name: 'restore',
      arg: '<vdiname>',
      opts: 'saphTBI',
      desc: 'restore snapshot images from a backup provided in STDIN',
      flags: CMD_NEED_NODELIST | CMD_NEED_ARG,
      fn: restore,
      options: O,
    },
    { name: 'alter-copy', arg: '<vdiname>', opts: 'caphTf', desc: "set the vdi's redundancy level", flags: CMD_NEED_ARG | CMD_NEED_NODELIST, fn: vdiAlterCopy, options: O },
    {
      name: 'lock',
      opts: 'saphT',
      desc: "See 'dog vdi lock' for more information",
      sub: lockCmd,
      flags: CMD_NEED_ARG,
      fn: (ctx, argv) => doGenericSubcommand(lockCmd, ctx, argv),
      options: O,
    },
  ];

  function parser(ch: string, opt: string | undefined): void {
    const o = opt ?? '';
    switch (ch) {
      case 'P':
        d.prealloc = true;
        break;
      case 'n':
        d.noShare = true;
        break;
      case 'i': {
        const r = o.startsWith('0x') ? strtol(o, 16) : strtol(o, 10);
        if (r.end === 0) {
          sdErr('The index must be a decimal integer or a hexadecimal integer started with 0x');
          exit(EXIT_FAILURE);
        }
        d.index = BigInt.asUintN(64, BigInt(r.value));
        break;
      }
      case 's': {
        const r = strtol(o, 10);
        if (r.end === 0 || r.end !== o.length) {
          d.snapshotId = 0;
          d.snapshotTag = Buffer.from(o, 'utf8').subarray(0, SD_MAX_VDI_TAG_LEN - 1).toString('utf8');
        } else {
          d.snapshotId = r.value | 0;
          if (d.snapshotId === 0) {
            getSink().err('The snapshot id must be larger than zero\n');
            exit(EXIT_FAILURE);
          }
        }
        break;
      }
      case 'x':
        d.exclusive = true;
        break;
      case 'd':
        d.delete = true;
        break;
      case 'w':
        d.writeback = true;
        break;
      case 'c': {
        const r = parseCopy(o);
        d.nrCopies = r.copies;
        d.copyPolicy = r.copyPolicy;
        if (!d.nrCopies) {
          sdErr(COPY_ERROR(o));
          exit(EXIT_FAILURE);
        }
        break;
      }
      case 'F': {
        const r = strtol(o, 10);
        d.fromSnapshotId = r.value | 0;
        if (r.end === 0 || r.end !== o.length) {
          d.fromSnapshotId = 0;
          d.fromSnapshotTag = o.slice(0, SD_MAX_VDI_TAG_LEN - 1);
        }
        break;
      }
      case 'f':
        d.force = true;
        break;
      case 'y':
        d.storePolicy = 1;
        if (d.blockSizeShift) {
          sdInfo("Don't specify both -y and -z options, please");
          exit(EXIT_FAILURE);
        }
        break;
      case 'o': {
        const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)/.exec(o);
        if (!m) {
          sdErr('object id must be a hex integer');
          exit(EXIT_FAILURE);
        }
        d.oid = BigInt.asUintN(64, BigInt('0x' + m[1]!.slice(-16)));
        break;
      }
      case 'e':
        d.exist = true;
        break;
      case 'z': {
        const bss = atoi(o) & 0xff;
        if (bss > 31) {
          sdErr('Object Size is limited to 2^31. Please set shift bit lower than 31');
          exit(EXIT_FAILURE);
        } else if (bss < 20) {
          sdErr('Object Size is larger than 2^20. Please set shift bit larger than 20');
          exit(EXIT_FAILURE);
        }
        if (d.storePolicy === 1) {
          sdInfo("Don't specify both -y and -z options, please");
          exit(EXIT_FAILURE);
        }
        d.blockSizeShift = bss;
        break;
      }
      case 'R':
        d.reduceIdenticalSnapshots = true;
        break;
      case 'B': {
        const r = strtol(o, 10);
        if (r.end === 0) {
          sdErr(`The number of batched reclamation is invalid: ${o}`);
          exit(EXIT_FAILURE);
        }
        d.nrBatchedReclamation = r.value | 0;
        if (d.nrBatchedReclamation <= 0) {
          sdErr('The number of batched reclamation must bepositive integer');
          exit(EXIT_FAILURE);
        }
        break;
      }
      case 'I': {
        const r = strtol(o, 10);
        if (r.end === 0) {
          sdErr(`The interval of batched reclamation is invalid: ${o}`);
          exit(EXIT_FAILURE);
        }
        d.reclamationInterval = r.value | 0;
        if (d.reclamationInterval <= 0) {
          sdErr('The interval of batched reclamation must bepositive integer');
          exit(EXIT_FAILURE);
        }
        break;
      }
      case 'm': {
        const r = strtol(o, 10);
        if (r.end === 0) {
          sdErr(`The maximum number of reclamation is invalid: ${o}`);
          exit(EXIT_FAILURE);
        }
        d.nrMaxReclaim = r.value | 0;
        if (d.nrMaxReclaim <= 0) {
          sdErr('The maximum number of reclamation must bepositive integer');
          exit(EXIT_FAILURE);
        }
        break;
      }
    }
  }

  return { name: 'vdi', sub, parser };
}

export { vdiRow };

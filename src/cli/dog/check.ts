// `dog vdi check` and `dog cluster check` (dog/vdi.c do_vdi_check / do_vdi_check_exist,
// dog/cluster.c cluster_check).
//
// For the inode and every allocated data object, every replica that placement assigns
// (min(copies, zones) nodes on the current ring) is asked for the SHA-1 of its copy (GET_HASH).
// A Boyer–Moore majority vote picks the good copy; replicas that are missing or differ from it
// are rewritten from it directly on their node with a peer write at the current epoch
// (CREATE_AND_WRITE_PEER for a missing copy, WRITE_PEER for a divergent one) and reported as
// "fixed missing <oid>" / "fixed replica <oid>". `-e` only asks every node which of the objects
// it should hold are missing.

import { Flag, Op, Res, SD_INODE_SIZE, resultString } from '../../proto/constants.js';
import { readHashRsp } from '../../proto/header.js';
import { vidToDataOid, vidToVdiOid } from '../../proto/oid.js';
import { formatAddrPort, type SdNode } from '../../proto/structs.js';
import { buildVnodeRing, placeObject, toRingNode, type VnodeRing } from '../../placement/ring.js';
import { EXIT_FAILURE, EXIT_SUCCESS, EXIT_SYSFAIL, exit, hex16, out, sdErr, showProgress } from './common.js';
import type { DogContext, Inode } from './ctx.js';

/** One replica of the object under check (struct vdi_check_work). */
export interface ReplicaState {
  found: boolean;
  /** SHA-1 digest (20 bytes) when found */
  hash: Uint8Array;
}

export const VDI_CHECK_NO_OBJ_FOUND = 0;
export const VDI_CHECK_NO_MAJORITY_FOUND = 1;
export const VDI_CHECK_SUCCESS = 2;

/**
 * vote_majority_object(): Boyer–Moore linear majority vote over the replicas that exist, then a
 * recount when the survivor's lead is not already a strict majority. Returns the index of the
 * majority replica (or -1) and the vdi_check_result.
 */
export function voteMajority(reps: readonly ReplicaState[]): { majority: number; result: number } {
  const same = (a: ReplicaState, b: ReplicaState) => Buffer.compare(Buffer.from(a.hash), Buffer.from(b.hash)) === 0;
  let count = 0;
  let live = 0;
  let majority = -1;
  for (let i = 0; i < reps.length; i++) {
    const r = reps[i]!;
    if (!r.found) continue;
    live++;
    if (!count) majority = i;
    if (same(reps[majority]!, r)) count++;
    else count--;
  }
  if (count > 0 && count <= Math.floor(live / 2)) {
    count = 0;
    for (const r of reps) if (r.found && same(reps[majority]!, r)) count++;
  }
  if (majority < 0) return { majority: -1, result: VDI_CHECK_NO_OBJ_FOUND };
  if (count > Math.floor(live / 2)) return { majority, result: VDI_CHECK_SUCCESS };
  return { majority: -1, result: VDI_CHECK_NO_MAJORITY_FOUND };
}

/** How many objects are checked at once (upstream: a dynamic work queue). */
const CHECK_WINDOW = 8;

interface CheckEnv {
  ctx: DogContext;
  ring: VnodeRing;
  inode: Inode;
  nrCopies: number;
}

function nodeName(n: SdNode): string {
  return formatAddrPort(n.nid.addr, n.nid.port);
}

function objectSizeOf(inode: Inode, oid: bigint): number {
  return oid === vidToVdiOid(inode.h.vdiId) ? SD_INODE_SIZE : inode.objectSize;
}

/** vdi_check_object_work(): GET_HASH of one replica. */
async function hashReplica(env: CheckEnv, node: SdNode, oid: bigint): Promise<ReplicaState> {
  const rsp = await env.ctx.exec({ opcode: Op.GET_HASH, obj: { oid, tgtEpoch: env.ctx.epoch } }, undefined, node.nid);
  if (!rsp) exit(EXIT_SYSFAIL);
  switch (rsp.result) {
    case Res.SUCCESS:
      return { found: true, hash: readHashRsp(rsp.raw).digest };
    case Res.NO_OBJ:
      return { found: false, hash: new Uint8Array(20) };
    default:
      sdErr(`failed to read ${hex16(oid)} from ${nodeName(node)}, ${resultString(rsp.result)}`);
      exit(EXIT_FAILURE);
  }
}

/** vdi_repair_work(): copy the majority replica onto `dst` with a peer write. */
async function repairReplica(env: CheckEnv, src: SdNode, dst: SdNode, oid: bigint, create: boolean): Promise<void> {
  const ctx = env.ctx;
  const size = objectSizeOf(env.inode, oid);
  const rd = await ctx.exec({ opcode: Op.READ_PEER, epoch: ctx.epoch, dataLength: size, obj: { oid } }, undefined, src.nid);
  if (!rd) exit(EXIT_SYSFAIL);
  if (rd.result !== Res.SUCCESS) {
    sdErr(`FATAL: failed to read ${hex16(oid)}, ${resultString(rd.result)}`);
    exit(EXIT_FAILURE);
  }
  const data = rd.data.length === size ? rd.data : Buffer.concat([rd.data, Buffer.alloc(Math.max(0, size - rd.data.length))]);
  const wr = await ctx.exec(
    { opcode: create ? Op.CREATE_AND_WRITE_PEER : Op.WRITE_PEER, epoch: ctx.epoch, flags: Flag.CMD_WRITE, obj: { oid, ecIndex: 0 } },
    data,
    dst.nid,
  );
  if (!wr) exit(EXIT_SYSFAIL);
  if (wr.result !== Res.SUCCESS) {
    sdErr(`FATAL: failed to write ${hex16(oid)}, ${resultString(wr.result)}`);
    exit(EXIT_FAILURE);
  }
}

/** One object: hash every replica, vote, repair. Resolves to the lines for stdout. */
async function checkObject(env: CheckEnv, oid: bigint): Promise<string> {
  const nodes = placeObject(env.ring, oid, env.nrCopies).map((i) => env.ctx.nodes[i]!);
  const reps = await Promise.all(nodes.map((n) => hashReplica(env, n, oid)));
  const { majority, result } = voteMajority(reps);
  if (majority < 0) {
    if (result === VDI_CHECK_NO_OBJ_FOUND) sdErr(`no node has ${hex16(oid)}`);
    else sdErr(`no majority of ${hex16(oid)}`);
    return '';
  }
  const fixes: Promise<string>[] = [];
  for (let i = 0; i < reps.length; i++) {
    if (i === majority) continue;
    const r = reps[i]!;
    if (r.found && Buffer.compare(Buffer.from(r.hash), Buffer.from(reps[majority]!.hash)) === 0) continue;
    fixes.push(repairReplica(env, nodes[majority]!, nodes[i]!, oid, !r.found).then(() => (r.found ? `fixed replica ${hex16(oid)}\n` : `fixed missing ${hex16(oid)}\n`)));
  }
  return (await Promise.all(fixes)).join('');
}

/** Runs checks with a bounded window, printing each object's lines in queue order. */
class CheckQueue {
  private inFlight: Promise<string>[] = [];
  constructor(private readonly env: CheckEnv) {}

  async push(oid: bigint, onDone?: () => void): Promise<void> {
    const p = checkObject(this.env, oid).then((s) => {
      onDone?.();
      return s;
    });
    p.catch(() => undefined); // awaited below; keeps an early exit() from being "unhandled"
    this.inFlight.push(p);
    if (this.inFlight.length >= CHECK_WINDOW) await this.shift();
  }

  private async shift(): Promise<void> {
    const s = await this.inFlight.shift()!;
    if (s) out(s);
  }

  async drain(): Promise<void> {
    while (this.inFlight.length) await this.shift();
  }
}

function ringOf(ctx: DogContext): VnodeRing {
  return buildVnodeRing(ctx.nodes.map(toRingNode));
}

/** do_vdi_check(): check and repair the inode and every allocated data object. */
export async function doVdiCheck(ctx: DogContext, inode: Inode): Promise<number> {
  const nrCopies = Math.min(inode.h.nrCopies, ctx.zonesNr);
  const size = inode.h.vdiSize;
  if (inode.h.copyPolicy > 0 && ctx.zonesNr < inode.h.nrCopies) {
    sdErr('ABORT: Not enough active zones for consistency-checking erasure coded VDI');
    return EXIT_FAILURE;
  }
  if (inode.h.copyPolicy > 0) {
    sdErr('checking erasure coded VDIs is not supported by this dog');
    return EXIT_FAILURE;
  }
  const env: CheckEnv = { ctx, ring: ringOf(ctx), inode, nrCopies };
  const q = new CheckQueue(env);
  const objectSize = BigInt(inode.objectSize);
  let done = 0n;

  await q.push(vidToVdiOid(inode.h.vdiId));
  const hyper = inode.hyperEntries();
  if (!hyper) {
    const max = inode.nrDataObjs;
    showProgress(done, size, false);
    for (let idx = 0; idx < max; idx++) {
      const vid = inode.getVid(idx);
      if (vid) {
        await q.push(vidToDataOid(vid, idx), () => {
          done += objectSize;
          showProgress(done, size, false);
        });
      } else {
        done += objectSize;
        showProgress(done, size, false);
      }
    }
  } else {
    for (const [idx, vid] of hyper) {
      if (!vid) continue;
      done = BigInt(idx) * objectSize;
      showProgress(done, size, false);
      await q.push(vidToDataOid(vid, idx));
    }
    showProgress(size, size, false);
  }
  await q.drain();
  out(`finish check&repair ${inode.h.name}\n`);
  return EXIT_SUCCESS;
}

/** The objects of a VDI that -e looks for: the inode, then data objects in index order. */
function vdiOids(inode: Inode): bigint[] {
  const oids = [vidToVdiOid(inode.h.vdiId)];
  const hyper = inode.hyperEntries();
  if (hyper) {
    for (const [idx, vid] of hyper) if (vid) oids.push(vidToDataOid(vid, idx));
  } else {
    const max = inode.nrDataObjs;
    for (let idx = 0; idx < max; idx++) {
      const vid = inode.getVid(idx);
      if (vid) oids.push(vidToDataOid(vid, idx));
    }
  }
  return oids;
}

/**
 * The oids of `list` that `node` lacks: OIDS_EXIST (one piggyback request), or one EXIST per
 * object when the node does not know OIDS_EXIST.
 */
async function missingOn(ctx: DogContext, node: SdNode, list: bigint[]): Promise<bigint[]> {
  const buf = Buffer.alloc(8 * list.length);
  list.forEach((o, i) => buf.writeBigUInt64LE(o, 8 * i));
  const rsp = await ctx.exec({ opcode: Op.OIDS_EXIST, flags: Flag.CMD_WRITE | Flag.CMD_PIGGYBACK, dataLength: buf.length }, buf, node.nid);
  if (!rsp) exit(EXIT_SYSFAIL);
  if (rsp.result === Res.SUCCESS || rsp.result === Res.NO_OBJ) {
    const n = Math.floor(rsp.data.length / 8);
    const res: bigint[] = [];
    for (let i = 0; i < n; i++) res.push(rsp.data.readBigUInt64LE(8 * i));
    return res;
  }
  const res: bigint[] = [];
  const answers = await Promise.all(list.map((oid) => ctx.exec({ opcode: Op.EXIST, epoch: ctx.epoch, obj: { oid } }, undefined, node.nid)));
  answers.forEach((a, i) => {
    if (!a) exit(EXIT_SYSFAIL);
    if (a.result !== Res.SUCCESS) res.push(list[i]!);
  });
  return res;
}

/** do_vdi_check_exist(): "[node] oid X is missing." per missing replica, then the verdict. */
export async function doVdiCheckExist(ctx: DogContext, inode: Inode): Promise<number> {
  const copies = Math.min(inode.h.nrCopies, ctx.zonesNr);
  const ring = ringOf(ctx);
  const perNode: bigint[][] = ctx.nodes.map(() => []);
  for (const oid of vdiOids(inode)) for (const i of placeObject(ring, oid, copies)) perNode[i]!.push(oid);
  let total = 0;
  for (let i = 0; i < ctx.nodes.length; i++) {
    const node = ctx.nodes[i]!;
    const missing = await missingOn(ctx, node, perNode[i]!);
    total += missing.length;
    for (const oid of missing) out(`[${nodeName(node)}] oid ${hex16(oid)} is missing.\n`);
  }
  if (total === 0) {
    out(`${inode.h.name} is fine, no object is missing.\n`);
    return EXIT_SUCCESS;
  }
  out(`${inode.h.name} lost ${total} object(s).\n`);
  return EXIT_FAILURE;
}

export interface CheckOptions {
  snapshotId: number;
  snapshotTag: string;
  exist: boolean;
}

/** vdi_check() */
export async function vdiCheck(ctx: DogContext, vdiname: string, o: CheckOptions): Promise<number> {
  const r = await ctx.readVdiObj(vdiname, o.snapshotId, o.snapshotTag, SD_INODE_SIZE);
  if (r.ret !== EXIT_SUCCESS) {
    sdErr('FATAL: no inode objects');
    return r.ret;
  }
  return o.exist ? doVdiCheckExist(ctx, r.inode!) : doVdiCheck(ctx, r.inode!);
}

/** cluster_check(): vdi check over every VDI, snapshots included. */
export async function clusterCheck(ctx: DogContext): Promise<number> {
  const ret = await ctx.parseVdi(async (_vid, name, tag, snapid, _flags, inode) => {
    if (inode.isSnapshot()) out(`fix snapshot ${name} (id: ${snapid}, tag: "${tag}")\n`);
    else out(`fix vdi ${name}\n`);
    await doVdiCheck(ctx, inode);
  }, true);
  return ret < 0 ? EXIT_SYSFAIL : EXIT_SUCCESS;
}

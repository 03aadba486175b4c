// `dog cluster format -F` (SD_CLUSTER_FLAG_AVOID_DISKFULL): before a recovery job pulls anything, every
// node checks whether each member could hold the data objects the new placement gives it; if one could
// not, recovery is skipped (the cluster keeps running with lower redundancy) rather than filling a disk.
// As upstream, only data objects count: inodes and attributes are small next to them, and copies set aside
// in .stale are not counted (doc/option_-F_avoiding_diskfull_caused_by_recovery_process.txt).
import { ClusterFlag } from '../proto/constants.js';
import { isDataObj } from '../proto/oid.js';
import type { SdNode } from '../proto/structs.js';
import type { Sheep } from './sheep.js';

export interface DiskfullRisk {
  readonly node: SdNode;
  /** Bytes of data objects the node would hold after recovery. */
  readonly need: bigint;
}

/**
 * Members whose announced space (sd_node.space) is smaller than the data objects placed on them.
 * `oids`: every object any member holds; `place` gives an object's replica nodes at the new epoch.
 */
export function diskfullRisks(members: readonly SdNode[], oids: Iterable<bigint>, place: (oid: bigint) => readonly SdNode[], sizeOf: (oid: bigint) => number): DiskfullRisk[] {
  const need = new Map<SdNode, bigint>();
  for (const oid of oids) {
    if (!isDataObj(oid)) continue;
    const size = BigInt(sizeOf(oid));
    for (const n of place(oid)) need.set(n, (need.get(n) ?? 0n) + size);
  }
  const risks: DiskfullRisk[] = [];
  for (const n of members) {
    if (n.nrVnodes === 0) continue; // gateways hold nothing
    const bytes = need.get(n) ?? 0n;
    if (bytes > n.space) risks.push({ node: n, need: bytes });
  }
  return risks;
}

/**
 * True when the cluster avoids disk-full (-F) and recovery at this node's epoch would overfill a member:
 * logs, as upstream, each such member and that recovery is cancelled. Every node sees the same lists and
 * placement, so all of them skip the job.
 */
export function recoveryWouldFillDisk(sheep: Sheep, oids: Iterable<bigint>): boolean {
  if (!(sheep.format.flags & ClusterFlag.AVOID_DISKFULL)) return false;
  const risks = diskfullRisks(sheep.members, oids, (oid) => sheep.placement(oid, sheep.copiesOf(oid)), (oid) => sheep.objectSizeOf(oid));
  if (risks.length === 0) return false;
  for (const r of risks) sheep.log('error', `node ${r.node.nid.addr}:${r.node.nid.port} (space: ${r.node.space}) cannot store the ${r.need} bytes it needs after recovery: it would cause disk full`);
  sheep.log('error', `epoch ${sheep.epoch}: canceling recovery because of disk full`);
  return true;
}

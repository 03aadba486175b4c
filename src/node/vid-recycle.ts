// `dog cluster format -R` (SD_CLUSTER_FLAG_RECYCLE_VID), as sheep/vdi.c does it: once every member of a
// VDI family (the root, reached through parent links, and all its clones and snapshots) is deleted, the
// family's vids leave both bitmaps and their objects are removed, so new VDIs can take the ids again.
// Without the flag deleted vids stay taken forever.
import type { VdiSummary } from '../actors/vdi/machine.js';

/** All vids of the family `vid` belongs to, root first. */
export function familyOf(vdis: ReadonlyMap<number, VdiSummary>, vid: number): number[] {
  let root = vid;
  const climbed = new Set([root]);
  for (;;) {
    const parent = vdis.get(root)?.parentVid ?? 0;
    if (parent === 0 || !vdis.has(parent) || climbed.has(parent)) break;
    climbed.add(parent);
    root = parent;
  }
  const family = [root];
  for (let i = 0; i < family.length; i++) {
    for (const v of vdis.values()) if (v.parentVid === family[i] && v.vid !== root && !family.includes(v.vid)) family.push(v.vid);
  }
  return family;
}

/** The family of `vid` when all its members are deleted (their vids can be recycled), otherwise null. */
export function deadFamily(vdis: ReadonlyMap<number, VdiSummary>, vid: number): number[] | null {
  const family = familyOf(vdis, vid);
  return family.every((v) => vdis.get(v)?.deleted === true) ? family : null;
}

// `dog vm list` (not in Sheepdog 1.0): one line per working VDI with its size, the space it owns,
// the space it shares with snapshots/parents, its redundancy and who holds it open (the VDI
// lock owner, from GET_VDI_COPIES). Laid out like `dog vdi list`; -r and -j work as usual.

import { LockState } from '../../proto/constants.js';
import { formatAddrPort, type NodeId, type VdiState } from '../../proto/structs.js';
import type { Command, RunContext, Subcommand } from './command.js';
import { EXIT_SUCCESS, EXIT_SYSFAIL, hex, out, padL, padR, redundancyScheme, sdErr, strnumberRaw } from './common.js';
import { rawEscape, getVdiState } from './vdi.js';

export const VM_LIST_HEADER = '  Name        Size    Used  Shared  Copies  In use by\n';

const SHARED_STATE = ['modified', 'shared', 'invalidated'];

export interface VmRow {
  clone: boolean;
  name: string;
  vid: number;
  size: bigint;
  used: bigint;
  shared: bigint;
  copies: number;
  copyPolicy: number;
  lockState: number;
  owners: { node: NodeId; state?: number }[];
}

function ownersText(r: VmRow, raw: boolean): string {
  if (r.lockState === LockState.LOCKED && r.owners.length) return formatAddrPort(r.owners[0]!.node.addr, r.owners[0]!.node.port);
  if (r.lockState === LockState.SHARED && r.owners.length)
    return r.owners
      .map((o) => `${formatAddrPort(o.node.addr, o.node.port)}(${SHARED_STATE[o.state ?? 0] ?? 'unknown'})`)
      .join(raw ? ',' : ', ');
  return r.lockState === LockState.INIT ? '?' : '-';
}

/** One row of `dog vm list`. */
export function formatVmListLine(r: VmRow, raw: boolean): string {
  const redundancy = redundancyScheme(r.copies, r.copyPolicy);
  if (raw)
    return (
      `${r.clone ? 'c' : '='} ${rawEscape(r.name)} ${strnumberRaw(r.size, true)} ${strnumberRaw(r.used, true)} ` +
      `${strnumberRaw(r.shared, true)} ${redundancy} ${ownersText(r, true)}\n`
    );
  return (
    `${r.clone ? 'c' : ' '} ${padR(r.name, 8)} ${padL(strnumberRaw(r.size, false), 7)} ${padL(strnumberRaw(r.used, false), 7)} ` +
    `${padL(strnumberRaw(r.shared, false), 7)} ${padL(redundancy, 6)}  ${ownersText(r, false)}\n`
  );
}

export function vmCommand(): Command {
  async function vmList(ctx: RunContext): Promise<number> {
    // lock states; a daemon without GET_VDI_COPIES still gets a listing, with unknown owners
    const states = await getVdiState(ctx);
    if (!states) sdErr('VDI lock state unavailable; the "In use by" column shows ?');
    const byVid = new Map<number, VdiState>((states ?? []).map((s) => [s.vid, s]));
    const rows: VmRow[] = [];
    const ret = await ctx.parseVdi((vid, name, _tag, _snapid, _f, inode) => {
      if (inode.isSnapshot()) return;
      const { my, cow } = inode.stat();
      const os = BigInt(inode.objectSize);
      const st = byVid.get(vid);
      const lockState = states ? (st?.lockState ?? LockState.UNLOCKED) : LockState.INIT;
      const owners =
        lockState === LockState.LOCKED && st
          ? [{ node: st.lockOwner }]
          : lockState === LockState.SHARED && st
            ? st.participants.map((p, i) => ({ node: p, state: st.participantsState[i] }))
            : [];
      rows.push({
        clone: inode.h.snapId === 1 && inode.h.parentVdiId !== 0,
        name,
        vid,
        size: inode.h.vdiSize,
        used: BigInt(my) * os,
        shared: BigInt(cow) * os,
        copies: inode.h.nrCopies,
        copyPolicy: inode.h.copyPolicy,
        lockState,
        owners,
      });
    }, true);
    if (ret < 0) return EXIT_SYSFAIL;
    if (ctx.json) {
      const doc = rows.map((r) => ({
        name: r.name,
        vdi_id: hex(r.vid),
        clone: r.clone,
        size: Number(r.size),
        used: Number(r.used),
        shared: Number(r.shared),
        copies: redundancyScheme(r.copies, r.copyPolicy),
        in_use: r.lockState === LockState.INIT ? null : r.lockState === LockState.LOCKED || r.lockState === LockState.SHARED,
        lock:
          r.lockState === LockState.LOCKED ? 'locked' : r.lockState === LockState.SHARED ? 'shared' : r.lockState === LockState.INIT ? 'unknown' : 'unlocked',
        owners: r.owners.map((o) => ({ host: o.node.addr, port: o.node.port, ...(o.state !== undefined ? { state: SHARED_STATE[o.state] ?? o.state } : {}) })),
      }));
      out(JSON.stringify(doc) + '\n');
      return EXIT_SUCCESS;
    }
    if (!ctx.raw) out(VM_LIST_HEADER);
    for (const r of rows) out(formatVmListLine(r, ctx.raw));
    return EXIT_SUCCESS;
  }

  const sub: Subcommand[] = [
    { name: 'list', opts: 'aprhT', desc: 'list VDIs with their usage and the node holding them open', flags: 0, fn: vmList },
  ];
  return { name: 'vm', sub };
}

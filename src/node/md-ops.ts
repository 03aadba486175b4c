// MD_INFO, MD_PLUG and MD_UNPLUG (sheep/ops.c local_md_info / local_md_plug / local_md_unplug): this node's
// disks. Plug and unplug take "PATH[,PATH...]\0"; bad input changes nothing, answers INVALID_PARMS and says
// why in sheep.log; a request that changes no disk answers UNKNOWN, as upstream's do_plug_unplug.
import { Res } from '../proto/constants.js';
import { encodeMdInfo } from '../proto/structs.js';
import { MultiDiskStore } from '../store/md.js';
import { StoreError } from '../store/object-store.js';
import type { Sheep } from './sheep.js';

/** The MD_INFO payload: the disks of a multi-disk store, or the one store directory otherwise. */
export async function mdInfoPayload(sheep: Sheep): Promise<Buffer> {
  if (sheep.opts.gatewayOnly) return encodeMdInfo([]);
  if (sheep.store instanceof MultiDiskStore) return encodeMdInfo(await sheep.store.info());
  const cap = await sheep.capacity(); // honours the STORE/capacity file
  return encodeMdInfo([{ idx: 0, free: cap.free, used: cap.used, path: sheep.opts.dir }]);
}

/** Disk paths from a plug/unplug payload: up to the NUL, comma-separated, empty items skipped (strtok). */
export function parseDiskList(data: Buffer): string[] {
  const nul = data.indexOf(0);
  const text = data.subarray(0, nul < 0 ? data.length : nul).toString('utf8');
  return text.split(',').filter((p) => p !== '');
}

export async function mdPlugUnplug(sheep: Sheep, data: Buffer, plug: boolean): Promise<number> {
  const what = plug ? 'plug' : 'unplug';
  if (sheep.opts.gatewayOnly || !(sheep.store instanceof MultiDiskStore)) return Res.NO_SUPPORT;
  const paths = parseDiskList(data);
  if (paths.length === 0) {
    sheep.log('error', `md ${what}: no disk path given`);
    return Res.INVALID_PARMS;
  }
  try {
    const changed = plug ? await sheep.store.plug(paths) : await sheep.store.unplug(paths);
    return changed > 0 ? Res.SUCCESS : Res.UNKNOWN;
  } catch (err) {
    if (!(err instanceof StoreError) || err.code === 'EIO') throw err;
    sheep.log('error', `md ${what} ${paths.join(',')}: ${err.message}`);
    return err.code === 'NO_SPACE' ? Res.NO_SPACE : Res.INVALID_PARMS;
  }
}

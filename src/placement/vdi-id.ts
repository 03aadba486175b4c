// VDI name hashing (sheet section 4; sheep/vdi.c).
//   sd_hash_vdi(name) = fnv_64a_buf(name, strlen(name), INIT) & (2^24 - 1)
//   get_vdi_bitmap_range() starts its search at that hash, bumped from 0 to 1 (vid 0 is never used)
//   GET_VDI_ATTR uses the *unbumped* sd_hash_vdi(name) as the attr objects' vid, and
//   attr id = low 32 bits of FNV-1a over name[256] ‖ tag[256] ‖ snap_id (u32 LE) ‖ key[256].

import { SD_MAX_VDI_ATTR_KEY_LEN, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN, SD_NR_VDIS } from '../proto/constants.js';
import { VdiAttrOff } from '../proto/structs.js';
import { FNV1A_INIT_HI, FNV1A_INIT_LO, fnv64aBytesHL } from './fnv.js';

const scratch = new Uint32Array(2);

/** Bytes hashed for a name: UTF-8 text, or raw bytes up to the first NUL (strlen semantics). */
function nameBytes(name: string | Uint8Array): Uint8Array {
  if (typeof name === 'string') return Buffer.from(name, 'utf8');
  const nul = name.indexOf(0);
  return nul < 0 ? name : name.subarray(0, nul);
}

/** sd_hash_vdi(): 24-bit FNV-1a of the name; may be 0. */
export function sdHashVdi(name: string | Uint8Array): number {
  const b = nameBytes(name);
  fnv64aBytesHL(b, 0, b.length, FNV1A_INIT_HI, FNV1A_INIT_LO, scratch);
  return scratch[1]! & (SD_NR_VDIS - 1);
}

/** First bit of the name's run in the in-use bitmap: sd_hash_vdi(name), with 0 bumped to 1. */
export function hashVdiName(name: string | Uint8Array): number {
  return sdHashVdi(name) || 1;
}

/** The vid GET_VDI_ATTR stores attributes under (unbumped name hash). */
export function vdiAttrVid(name: string | Uint8Array): number {
  return sdHashVdi(name);
}

function hashField(buf: Uint8Array, off: number, len: number, h: Uint32Array): void {
  fnv64aBytesHL(buf, off, len, h[0]!, h[1]!, h);
}

/**
 * Starting attr id of an attribute, computed from the fields of a sheepdog_vdi_attr buffer
 * exactly as sheep hashes them (the whole 256-byte fields, whatever follows the NUL).
 */
export function vdiAttrIdFromStruct(attr: Uint8Array): number {
  const h = scratch;
  h[0] = FNV1A_INIT_HI;
  h[1] = FNV1A_INIT_LO;
  hashField(attr, VdiAttrOff.name, SD_MAX_VDI_LEN, h);
  hashField(attr, VdiAttrOff.tag, SD_MAX_VDI_TAG_LEN, h);
  hashField(attr, VdiAttrOff.snapId, 4, h);
  hashField(attr, VdiAttrOff.key, SD_MAX_VDI_ATTR_KEY_LEN, h);
  return h[1]!;
}

/** Starting attr id for (name, tag, snapId, key) with NUL-padded fields (as dog sends them). */
export function vdiAttrId(name: string, tag: string, snapId: number, key: string): number {
  const b = Buffer.alloc(VdiAttrOff.value);
  const put = (s: string, off: number, len: number): void => {
    const n = Buffer.byteLength(s, 'utf8');
    if (n > len) throw new RangeError(`attr field of ${n} bytes does not fit in ${len}`);
    b.write(s, off, n, 'utf8');
  };
  put(name, VdiAttrOff.name, SD_MAX_VDI_LEN);
  put(tag, VdiAttrOff.tag, SD_MAX_VDI_TAG_LEN);
  b.writeUInt32LE(snapId >>> 0, VdiAttrOff.snapId);
  put(key, VdiAttrOff.key, SD_MAX_VDI_ATTR_KEY_LEN);
  return vdiAttrIdFromStruct(b);
}

// Object ids (u64 as bigint): bit layout of /work/shared/sheepdog-protocol.md section 3.
//   bits 0-31 index / attr id / btree node id, 32-55 VDI id, 59 LEDGER, 60 VDI_BTREE,
//   61 VDI_ATTR, 62 VMSTATE, 63 VDI (inode).

import {
  SD_ATTR_OBJ_SIZE,
  SD_DEFAULT_BLOCK_SIZE_SHIFT,
  SD_INODE_DATA_INDEX_SIZE,
  SD_INODE_SIZE,
  SD_LEDGER_OBJ_SIZE,
} from './constants.js';

export const VDI_SPACE_SHIFT = 32n;
export const VDI_BIT = 1n << 63n;
export const VMSTATE_BIT = 1n << 62n;
export const VDI_ATTR_BIT = 1n << 61n;
export const VDI_BTREE_BIT = 1n << 60n;
export const LEDGER_BIT = 1n << 59n;
export const SD_VDI_MASK = 0x00ffffff00000000n;
const LOW32 = 0xffffffffn;
const TYPE_BITS = VDI_BIT | VMSTATE_BIT | VDI_ATTR_BIT | VDI_BTREE_BIT | LEDGER_BIT;

const vidPart = (vid: number): bigint => BigInt(vid >>> 0) << VDI_SPACE_SHIFT;
const low = (n: number | bigint): bigint => (typeof n === 'bigint' ? n : BigInt(n >>> 0)) & LOW32;

export function vidToVdiOid(vid: number): bigint {
  return VDI_BIT | vidPart(vid);
}
export function vidToDataOid(vid: number, idx: number | bigint): bigint {
  return vidPart(vid) | low(idx);
}
export function vidToAttrOid(vid: number, attrId: number): bigint {
  return vidPart(vid) | VDI_ATTR_BIT | low(attrId);
}
export function vidToBtreeOid(vid: number, btreeId: number): bigint {
  return vidPart(vid) | VDI_BTREE_BIT | low(btreeId);
}
export function vidToVmstateOid(vid: number, idx: number): bigint {
  return VMSTATE_BIT | vidPart(vid) | low(idx);
}
/** Ledger (refcount) object of a data object. */
export function ledgerOid(dataOid: bigint): bigint {
  return dataOid | LEDGER_BIT;
}
export function ledgerToDataOid(ledger: bigint): bigint {
  return ledger & ~LEDGER_BIT;
}

/** VDI id (bits 32..55). */
export function oidToVid(oid: bigint): number {
  return Number((oid & SD_VDI_MASK) >> VDI_SPACE_SHIFT);
}
/** Low 32 bits: data index, attr id, btree node id or vmstate index. */
export function dataOidIndex(oid: bigint): number {
  return Number(oid & LOW32);
}

export function isVdiObj(oid: bigint): boolean {
  return (oid & VDI_BIT) !== 0n;
}
export function isVmstateObj(oid: bigint): boolean {
  return (oid & VMSTATE_BIT) !== 0n;
}
export function isAttrObj(oid: bigint): boolean {
  return (oid & VDI_ATTR_BIT) !== 0n;
}
export function isBtreeObj(oid: bigint): boolean {
  return (oid & VDI_BTREE_BIT) !== 0n;
}
export function isLedgerObj(oid: bigint): boolean {
  return (oid & LEDGER_BIT) !== 0n;
}
/** A plain data object: none of the five type bits set. */
export function isDataObj(oid: bigint): boolean {
  return (oid & TYPE_BITS) === 0n;
}

/**
 * Full size of the object (get_objsize): inode 12,587,576; attr 66,320; btree node and
 * ledger 4 MiB; data and vmstate objects 2^blockSizeShift. Checks run in upstream's order.
 */
export function objectSize(oid: bigint, blockSizeShift: number = SD_DEFAULT_BLOCK_SIZE_SHIFT): number {
  if (isVdiObj(oid)) return SD_INODE_SIZE;
  if (isAttrObj(oid)) return SD_ATTR_OBJ_SIZE;
  if (isBtreeObj(oid)) return SD_INODE_DATA_INDEX_SIZE;
  if (isLedgerObj(oid)) return SD_LEDGER_OBJ_SIZE;
  return 2 ** blockSizeShift;
}

/** 16 lower-case hex digits: the object's file name in `obj/`. */
export function oidToHex(oid: bigint): string {
  return BigInt.asUintN(64, oid).toString(16).padStart(16, '0');
}

const HEX16 = /^[0-9a-fA-F]{16}$/;
/** Inverse of oidToHex; throws on anything but exactly 16 hex digits. */
export function parseOidHex(s: string): bigint {
  if (!HEX16.test(s)) throw new SyntaxError(`not an object id: ${JSON.stringify(s)}`);
  return BigInt('0x' + s);
}

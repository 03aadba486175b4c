import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers.js';
import {
  CLUSTER_INFO_SIZE,
  ClusterFlag,
  ClusterStatus,
  FORCE_OPS,
  Flag,
  LockState,
  MAX_DATA_OBJS,
  Op,
  Res,
  SD_ATTR_OBJ_SIZE,
  SD_INODE_GREF_OFFSET,
  SD_INODE_HEADER_SIZE,
  SD_INODE_SIZE,
  SD_MAX_COPIES,
  SD_MAX_NODES,
  SD_MD_INFO_SIZE,
  SD_NR_VDIS,
  SD_PROTO_VER,
  SD_SHEEP_PROTO_VER,
  VDI_STATE_SIZE,
  defaultProtoVer,
  isForceOp,
  isKnownOp,
  isValidBlockSizeShift,
  opClass,
  opName,
  resultName,
  resultString,
} from '../src/proto/constants.js';
import {
  decodeReqHeader,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  encodeSimpleResponse,
  readClusterDefaultRsp,
  readClusterReq,
  readForwReq,
  readHashRsp,
  readInodeCoherenceReq,
  readNodeRsp,
  readObjReq,
  readObjRsp,
  readRefReq,
  readReqOid,
  readVdiReq,
  readVdiRsp,
  readVdiStateCheckpointReq,
  readVdiStateReq,
} from '../src/proto/header.js';
import {
  LEDGER_BIT,
  VDI_ATTR_BIT,
  VDI_BIT,
  VDI_BTREE_BIT,
  VMSTATE_BIT,
  dataOidIndex,
  isAttrObj,
  isBtreeObj,
  isDataObj,
  isLedgerObj,
  isVdiObj,
  isVmstateObj,
  ledgerOid,
  ledgerToDataOid,
  objectSize,
  oidToHex,
  oidToVid,
  parseOidHex,
  vidToAttrOid,
  vidToBtreeOid,
  vidToDataOid,
  vidToVdiOid,
  vidToVmstateOid,
} from '../src/proto/oid.js';
import {
  addrToBytes,
  bytesToAddr,
  compareNodeId,
  decodeClusterInfo,
  decodeEpochLog,
  decodeInodeHeader,
  decodeMdInfo,
  decodeNodeId,
  decodeRecoveryState,
  decodeRecoveryThrottling,
  decodeSdNode,
  decodeSdNodes,
  decodeVdiAttr,
  decodeVdiState,
  encodeClusterInfo,
  encodeEpochLog,
  encodeInodeHeader,
  encodeMdInfo,
  encodeNodeId,
  encodeRecoveryState,
  encodeRecoveryThrottling,
  encodeSdNode,
  encodeSdNodes,
  encodeVdiAttr,
  encodeVdiState,
  epochLogSize,
  formatAddrPort,
  inodeGetGref,
  inodeGetVid,
  inodeSetGref,
  inodeSetVid,
  newInodeBuffer,
  readCString,
  sortNodes,
  writeCString,
  type InodeHeader,
} from '../src/proto/structs.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ---------------------------------------------------------------------------------------------
// constants
// ---------------------------------------------------------------------------------------------

test('sizes and versions', timed(() => {
  assert.is(SD_PROTO_VER, 0x02);
  assert.is(SD_SHEEP_PROTO_VER, 0x0a);
  assert.is(SD_INODE_SIZE, 12_587_576);
  assert.is(SD_INODE_HEADER_SIZE, 4664);
  assert.is(SD_INODE_GREF_OFFSET, 4_198_968);
  assert.is(SD_ATTR_OBJ_SIZE, 66_320);
  assert.is(CLUSTER_INFO_SIZE, 491_568);
  assert.is(VDI_STATE_SIZE, 1428);
  assert.is(SD_MD_INFO_SIZE, 263_688);
  assert.is(SD_NR_VDIS, 2 ** 24);
  assert.is(MAX_DATA_OBJS, 2 ** 20);
  assert.is(SD_MAX_NODES, 6144);
  assert.is(SD_MAX_COPIES, 31);
  assert.ok(isValidBlockSizeShift(20) && isValidBlockSizeShift(31) && isValidBlockSizeShift(22));
  assert.not.ok(isValidBlockSizeShift(19) || isValidBlockSizeShift(32) || isValidBlockSizeShift(22.5));
  assert.equal(ClusterStatus, { OK: 1, WAIT: 2, SHUTDOWN: 3, KILLED: 4 });
  assert.is(ClusterFlag.AUTO_VNODES, 0x04);
  assert.is(LockState.LOCKED, 2);
}));

test('opcodes, names, classes, force ops', timed(() => {
  assert.is(Op.CREATE_AND_WRITE_OBJ, 0x01);
  assert.is(Op.GET_CLUSTER_DEFAULT, 0x18);
  assert.is(Op.CLUSTER_INFO, 0xbe);
  assert.is(Op.GET_VNODES, 0xcd);
  assert.is(opName(0x02), 'READ_OBJ');
  assert.is(opName(0xc9), 'READ_DEL_VDIS');
  assert.is(opName(0x7f), 'UNKNOWN_0x7f');
  assert.ok(isKnownOp(0x87));
  assert.not.ok(isKnownOp(0x83));
  assert.is(defaultProtoVer(Op.READ_OBJ), 0x02);
  assert.is(defaultProtoVer(Op.STAT_CLUSTER), 0x0a);
  assert.is(opClass(Op.READ_OBJ), 'gateway');
  assert.is(opClass(Op.READ_PEER), 'peer');
  assert.is(opClass(Op.NEW_VDI), 'cluster');
  assert.is(opClass(Op.READ_VDIS), 'local');
  assert.is(opClass(Op.SNAPSHOT), undefined);
  assert.is(opClass(0xa7), undefined);
  assert.is(FORCE_OPS.size, 26);
  for (const op of [Op.MAKE_FS, Op.STAT_CLUSTER, Op.GET_NODE_LIST, Op.CLUSTER_INFO, Op.GET_CLUSTER_DEFAULT, Op.SET_RECOVERY]) {
    assert.ok(isForceOp(op), opName(op));
  }
  for (const op of [Op.READ_OBJ, Op.NEW_VDI, Op.STAT_SHEEP, Op.STAT_RECOVERY, Op.GET_VDI_INFO]) assert.not.ok(isForceOp(op), opName(op));
  assert.is(Flag.CMD_PIGGYBACK, 0x10);
  assert.is(Flag.CMD_CREAT, Flag.CMD_WILDCARD);
}));

test('result codes print exactly as sd_strerror', timed(() => {
  assert.is(resultString(Res.SUCCESS), 'Success');
  assert.is(resultString(0x16), 'Waiting for cluster to be formatted');
  assert.is(resultString(0x17), 'Waiting for other nodes to join cluster');
  assert.is(resultString(Res.NO_VDI), 'No VDI found');
  assert.is(resultString(Res.VDI_EXIST), 'VDI exists already');
  assert.is(resultString(Res.VDI_LOCKED), 'VDI is already locked');
  assert.is(resultString(Res.NO_TAG), 'Failed to find requested tag');
  assert.is(resultString(Res.HALT), 'IO has halted as there are not enough living nodes');
  assert.is(resultString(Res.READONLY), 'Object is read-only');
  assert.is(resultString(Res.OLD_NODE_VER), 'Request has an old epoch');
  assert.is(resultString(Res.FORCE_RECOVER), 'Cluster is running/halted and cannot be force recovered');
  assert.is(resultString(Res.NO_STORE), 'Targeted backend store is not found');
  assert.is(resultString(Res.BUFFER_SMALL), 'The buffer is too small');
  assert.is(resultString(Res.GATEWAY_MODE), 'Targeted node is gateway mode');
  assert.is(resultString(Res.INVALID_VNODES_STRATEGY), 'Invalid cluster vnodes strategy');
  // codes without a table entry fall back like upstream
  assert.is(resultString(Res.VDI_NOT_EMPTY), 'Invalid error code 92');
  assert.is(resultString(0x1b), 'Invalid error code 1b');
  assert.is(resultName(0x02), 'NO_OBJ');
  assert.is(resultName(0x99), 'NO_CHECKPOINT_ENTRY');
}));

// ---------------------------------------------------------------------------------------------
// headers
// ---------------------------------------------------------------------------------------------

test('request header prefix round trip and offsets', timed(() => {
  const b = encodeRequest({ opcode: Op.WRITE_OBJ, flags: Flag.CMD_WRITE | Flag.CMD_DIRECT, epoch: 7, id: 0xdeadbeef, dataLength: 4096 });
  assert.is(b.length, 48);
  assert.is(b[0], SD_PROTO_VER); // default proto_ver by opcode
  assert.is(b[1], 0x03);
  assert.is(b.readUInt16LE(2), 0x09);
  assert.is(b.readUInt32LE(4), 7);
  assert.is(b.readUInt32LE(8), 0xdeadbeef);
  assert.is(b.readUInt32LE(12), 4096);
  const h = decodeReqHeader(b);
  assert.equal({ ...h, raw: undefined }, { protoVer: 2, opcode: 3, flags: 9, epoch: 7, id: 0xdeadbeef, dataLength: 4096, raw: undefined });
  assert.is(h.raw.length, 48);
  assert.is(encodeRequest({ opcode: Op.GET_NODE_LIST })[0], 0x0a);
  assert.is(encodeRequest({ opcode: Op.READ_OBJ, protoVer: 0 })[0], 0); // QEMU I/O
  // decode at an offset inside a bigger buffer; encode into a caller buffer
  const big = Buffer.alloc(100, 0xff);
  encodeRequest({ opcode: Op.READ_OBJ, id: 5, obj: { oid: 0x007c2b2500000001n } }, big, 10);
  assert.is(big[9], 0xff);
  assert.is(big[58], 0xff);
  const d = decodeReqHeader(big, 10);
  assert.is(d.id, 5);
  assert.is(readReqOid(d.raw), 0x007c2b2500000001n);
  assert.throws(() => decodeReqHeader(Buffer.alloc(47)));
}));

test('obj request union', timed(() => {
  const obj = { oid: 0x807c2b2500000000n, cowOid: 0x007b000000000003n, copies: 3, copyPolicy: 0x22, ecIndex: 4, tgtEpoch: 9, offset: 4_000_000 };
  const b = encodeRequest({ opcode: Op.CREATE_AND_WRITE_OBJ, obj });
  assert.is(b.readBigUInt64LE(16), obj.oid);
  assert.is(b.readBigUInt64LE(24), obj.cowOid);
  assert.is(b[32], 3);
  assert.is(b[33], 0x22);
  assert.is(b[34], 4);
  assert.is(b.readUInt32LE(36), 9);
  assert.is(b.readUInt32LE(40), 4_000_000);
  assert.is(b.readUInt32LE(44), 0);
  assert.equal(readObjReq(b), obj);
  // QEMU writes offset as a u64 at 40 with reserved bytes zero: same reading
  const q = Buffer.alloc(48);
  q[1] = Op.READ_OBJ;
  q.writeBigUInt64LE(0x007c2b2500000001n, 16);
  q[32] = 2;
  q.writeBigUInt64LE(123456n, 40);
  assert.equal(readObjReq(q), { oid: 0x007c2b2500000001n, cowOid: 0n, copies: 2, copyPolicy: 0, ecIndex: 0, tgtEpoch: 0, offset: 123456 });
}));

test('vdi request union', timed(() => {
  const vdi = { vdiSize: 1n << 40n, baseVdiId: 0x7c2b25, copies: 2, copyPolicy: 0x12, storePolicy: 1, blockSizeShift: 23, snapid: 5, type: 1 };
  const b = encodeRequest({ opcode: Op.NEW_VDI, flags: Flag.CMD_WRITE, dataLength: 256, vdi });
  assert.is(b.readBigUInt64LE(16), 1n << 40n);
  assert.is(b.readUInt32LE(24), 0x7c2b25);
  assert.is(b[28], 2);
  assert.is(b[29], 0x12);
  assert.is(b[30], 1);
  assert.is(b[31], 23);
  assert.is(b.readUInt32LE(32), 5);
  assert.is(b.readUInt32LE(36), 1);
  assert.equal(readVdiReq(b), vdi);
}));

test('cluster, vdi_state, ref, forw, checkpoint, coherence request unions', timed(() => {
  const cluster = { oid: 0n, ctime: (1700000000n << 32n) | 123000n, copies: 3, copyPolicy: 0, flags: 0x0c, tag: 0, nodesNr: 6, blockSizeShift: 22 };
  const c = encodeRequest({ opcode: Op.MAKE_FS, cluster });
  assert.is(c[0], 0x0a);
  assert.is(c.readBigUInt64LE(24), cluster.ctime);
  assert.is(c[32], 3);
  assert.is(c.readUInt16LE(34), 0x0c);
  assert.is(c.readUInt32LE(40), 6);
  assert.is(c[44], 22);
  assert.equal(readClusterReq(c), cluster);

  const vdiState = { oldVid: 1, newVid: 0x7c2b26, copies: 2, setBitmap: 1, copyPolicy: 0, blockSizeShift: 22 };
  const v = encodeRequest({ opcode: Op.NOTIFY_VDI_ADD, vdiState });
  assert.is(v.readUInt32LE(20), 0x7c2b26);
  assert.is(v[24], 2);
  assert.is(v[25], 1);
  assert.is(v[27], 22);
  assert.equal(readVdiStateReq(v), vdiState);

  const ref = { oid: ledgerOid(0x007c2b2500000001n), generation: 2, count: 3 };
  const r = encodeRequest({ opcode: Op.DECREF_OBJ, ref });
  assert.is(r.readUInt32LE(24), 2);
  assert.is(r.readUInt32LE(28), 3);
  assert.equal(readRefReq(r), ref);

  const forw = { oid: 5n, addr: addrToBytes('127.0.0.1'), port: 7002 };
  const f = encodeRequest({ opcode: Op.REPAIR_REPLICA, forw });
  assert.is(hex(f.subarray(24, 40)), '000000000000000000000000' + '7f000001');
  assert.is(f.readUInt16LE(40), 7002);
  assert.equal(readForwReq(f), forw);

  const ck = { get: 1, tgtEpoch: 4, vid: 77 };
  assert.equal(readVdiStateCheckpointReq(encodeRequest({ opcode: Op.VDI_STATE_CHECKPOINT_CTL, vdiStateCheckpoint: ck })), ck);
  const ic = { vid: 78, validate: 1 };
  assert.equal(readInodeCoherenceReq(encodeRequest({ opcode: Op.INODE_COHERENCE, inodeCoherence: ic })), ic);
}));

test('response header and unions', timed(() => {
  const base = { opcode: Op.GET_VDI_INFO, epoch: 3, id: 42, dataLength: 0, result: Res.SUCCESS };
  const v = encodeResponse({ ...base, vdi: { vdiId: 0x7c2b25, attrId: 0x1234, copies: 3, blockSizeShift: 22 } });
  assert.is(v[0], 0); // proto_ver comes back 0
  assert.is(v.readUInt16LE(2), 0);
  assert.is(v.readUInt32LE(16), 0);
  assert.is(v.readUInt32LE(24), 0x7c2b25); // vdi_id at 24
  assert.is(v.readUInt32LE(28), 0x1234);
  assert.is(v[32], 3);
  assert.is(v[33], 22);
  const dv = decodeResponse(v);
  assert.equal({ ...dv, raw: undefined }, { protoVer: 0, opcode: 0x14, flags: 0, epoch: 3, id: 42, dataLength: 0, result: 0, raw: undefined });
  assert.equal(readVdiRsp(dv.raw), { rsvd: 0, vdiId: 0x7c2b25, attrId: 0x1234, copies: 3, blockSizeShift: 22 });

  const n = encodeResponse({ opcode: Op.STAT_SHEEP, result: 0, node: { nrNodes: 5, storeSize: 1n << 40n, storeFree: 12345n } });
  assert.is(n.readUInt32LE(20), 5);
  assert.is(n.readBigUInt64LE(32), 1n << 40n);
  assert.is(n.readBigUInt64LE(40), 12345n);
  assert.equal(readNodeRsp(n), { nrNodes: 5, storeSize: 1n << 40n, storeFree: 12345n });

  const digest = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex');
  const h = encodeResponse({ opcode: Op.GET_HASH, hash: { digest } });
  assert.is(hex(h.subarray(24, 44)), digest.toString('hex'));
  assert.equal(readHashRsp(h).digest, digest);

  const cd = encodeResponse({ opcode: Op.GET_CLUSTER_DEFAULT, clusterDefault: { nrCopies: 3, copyPolicy: 0, blockSizeShift: 22 } });
  assert.is(cd[20], 3);
  assert.is(cd[22], 22);
  assert.equal(readClusterDefaultRsp(cd), { nrCopies: 3, copyPolicy: 0, blockSizeShift: 22 });

  const o = encodeResponse({ opcode: Op.READ_OBJ, result: Res.NO_OBJ, obj: { copies: 2, offset: 77n } });
  assert.is(o.readUInt32LE(16), Res.NO_OBJ);
  assert.equal(readObjRsp(o), { copies: 2, offset: 77n });

  const s = encodeSimpleResponse(Op.STAT_CLUSTER, 9, 4, Res.WAIT_FOR_FORMAT, 48);
  const ds = decodeResponse(s);
  assert.is(ds.result, 0x16);
  assert.is(ds.dataLength, 48);
  assert.is(ds.id, 9);

  const out = Buffer.alloc(60, 0xaa);
  encodeResponse({ opcode: Op.READ_OBJ, id: 1 }, out, 12);
  assert.is(out[11], 0xaa);
  assert.is(decodeResponse(out, 12).id, 1);
}));

// ---------------------------------------------------------------------------------------------
// oids
// ---------------------------------------------------------------------------------------------

test('oid helpers', timed(() => {
  const vid = 0x7c2b25;
  assert.is(oidToHex(vidToDataOid(vid, 1)), '007c2b2500000001');
  assert.is(oidToHex(vidToVdiOid(vid)), '807c2b2500000000');
  assert.is(oidToHex(vidToAttrOid(vid, 0xabcdef01)), '207c2b25abcdef01');
  assert.is(oidToHex(vidToBtreeOid(vid, 2)), '107c2b2500000002');
  assert.is(oidToHex(vidToVmstateOid(vid, 3)), '407c2b2500000003');
  assert.is(oidToHex(ledgerOid(vidToDataOid(vid, 1))), '087c2b2500000001');
  assert.is(ledgerToDataOid(ledgerOid(vidToDataOid(vid, 1))), vidToDataOid(vid, 1));
  assert.is(VDI_BIT | VMSTATE_BIT | VDI_ATTR_BIT | VDI_BTREE_BIT | LEDGER_BIT, 0xf800000000000000n);
  assert.is(oidToVid(vidToAttrOid(vid, 5)), vid);
  assert.is(oidToVid(vidToVdiOid(0xffffff)), 0xffffff);
  assert.is(dataOidIndex(vidToDataOid(vid, 0xfffff)), 0xfffff);
  assert.is(dataOidIndex(vidToDataOid(vid, 2 ** 32 - 1)), 2 ** 32 - 1);

  const d = vidToDataOid(vid, 1);
  assert.ok(isDataObj(d) && !isVdiObj(d) && !isAttrObj(d) && !isLedgerObj(d));
  assert.ok(isVdiObj(vidToVdiOid(vid)) && !isDataObj(vidToVdiOid(vid)));
  assert.ok(isAttrObj(vidToAttrOid(vid, 1)));
  assert.ok(isBtreeObj(vidToBtreeOid(vid, 1)));
  assert.ok(isVmstateObj(vidToVmstateOid(vid, 1)) && !isDataObj(vidToVmstateOid(vid, 1)));
  assert.ok(isLedgerObj(ledgerOid(d)) && !isDataObj(ledgerOid(d)));

  assert.is(objectSize(vidToVdiOid(vid)), 12_587_576);
  assert.is(objectSize(vidToAttrOid(vid, 1)), 66_320);
  assert.is(objectSize(vidToBtreeOid(vid, 1)), 4 << 20);
  assert.is(objectSize(ledgerOid(d), 20), 4 << 20);
  assert.is(objectSize(d), 4 << 20);
  assert.is(objectSize(d, 20), 1 << 20);
  assert.is(objectSize(vidToVmstateOid(vid, 0), 23), 8 << 20);
  assert.is(objectSize(d, 31), 2 ** 31);

  assert.is(parseOidHex('007c2b2500000001'), d);
  assert.is(parseOidHex('807C2B2500000000'), vidToVdiOid(vid));
  assert.is(parseOidHex(oidToHex(0xffffffffffffffffn)), 0xffffffffffffffffn);
  assert.throws(() => parseOidHex('7c2b2500000001'));
  assert.throws(() => parseOidHex('007c2b2500000001.tmp'));
}));

// ---------------------------------------------------------------------------------------------
// structs
// ---------------------------------------------------------------------------------------------

test('addresses: IPv4 as 12 zero bytes + 4, IPv6 as 16; text as dog prints it', timed(() => {
  assert.is(hex(addrToBytes('127.0.0.1')), '000000000000000000000000' + '7f000001');
  assert.is(bytesToAddr(addrToBytes('127.0.0.1')), '127.0.0.1');
  assert.is(bytesToAddr(addrToBytes('10.20.30.40')), '10.20.30.40');
  assert.is(hex(addrToBytes('::1')), '00000000000000000000000000000001');
  assert.is(bytesToAddr(addrToBytes('::1')), '::1');
  assert.is(hex(addrToBytes('fe80::1:2')), 'fe800000000000000000000000010002');
  assert.is(bytesToAddr(addrToBytes('FE80:0:0:0:0:0:1:2')), 'fe80::1:2');
  assert.is(bytesToAddr(addrToBytes('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
  assert.is(bytesToAddr(addrToBytes('2001:db8::')), '2001:db8::');
  assert.is(bytesToAddr(addrToBytes('1:0:2:3:4:5:6:7')), '1:0:2:3:4:5:6:7');
  assert.is(bytesToAddr(addrToBytes('::ffff:1.2.3.4')), '::ffff:1.2.3.4');
  assert.is(hex(addrToBytes('::ffff:1.2.3.4')), '00000000000000000000ffff01020304');
  assert.is(bytesToAddr(new Uint8Array(16)), '::');
  assert.is(hex(addrToBytes('')), '0'.repeat(32));
  assert.throws(() => addrToBytes('1.2.3'));
  assert.throws(() => addrToBytes('fe80::1%eth0'));
  assert.throws(() => addrToBytes('1::2::3'));
  assert.is(formatAddrPort('127.0.0.1', 7000), '127.0.0.1:7000');
}));

test('node_id and sd_node layouts', timed(() => {
  const nid = encodeNodeId({ addr: '127.0.0.1', port: 7001, ioAddr: '192.168.0.5', ioPort: 7101 });
  assert.is(nid.length, 40);
  assert.is(hex(nid.subarray(12, 16)), '7f000001');
  assert.is(nid.readUInt16LE(16), 7001);
  assert.is(hex(nid.subarray(30, 34)), 'c0a80005');
  assert.is(nid.readUInt16LE(34), 7101);
  assert.equal(decodeNodeId(nid), { addr: '127.0.0.1', port: 7001, ioAddr: '192.168.0.5', ioPort: 7101 });

  const node = { nid: { addr: '127.0.0.1', port: 7000, ioAddr: '', ioPort: 0 }, nrVnodes: 128, zone: 0x0100007f, space: 5n << 30n };
  const b = encodeSdNode(node);
  assert.is(b.length, 80);
  assert.is(hex(b.subarray(0, 24)), '00'.repeat(24)); // rb_node
  assert.is(hex(b.subarray(24 + 12, 24 + 16)), '7f000001');
  assert.is(b.readUInt16LE(40), 7000);
  assert.is(b.readUInt16LE(64), 128);
  assert.is(b.readUInt32LE(68), 0x0100007f); // zone at 68
  assert.is(b.readBigUInt64LE(72), 5n << 30n);
  assert.equal(decodeSdNode(b), node);
  // garbage in rb_node bytes is ignored on decode
  b.fill(0x5a, 0, 24);
  assert.equal(decodeSdNode(b), node);

  const list = [node, { ...node, nid: { ...node.nid, port: 7001 }, zone: 1 }];
  const lb = encodeSdNodes(list);
  assert.is(lb.length, 160);
  assert.equal(decodeSdNodes(lb, 2), list);

  const unsorted = [
    { nid: { addr: '10.0.0.2', port: 7000 } },
    { nid: { addr: '10.0.0.1', port: 7001 } },
    { nid: { addr: '10.0.0.1', port: 7000 } },
    { nid: { addr: '::1', port: 7000 } },
  ];
  assert.equal(sortNodes(unsorted).map((n) => `${n.nid.addr}:${n.nid.port}`), ['::1:7000', '10.0.0.1:7000', '10.0.0.1:7001', '10.0.0.2:7000']);
  assert.ok(compareNodeId({ addr: '10.0.0.1', port: 7000 }, { addr: '10.0.0.1', port: 7001 }) < 0);
  assert.is(compareNodeId({ addr: '10.0.0.1', port: 7000 }, { addr: '10.0.0.1', port: 7000 }), 0);
}));

const mkNode = (port: number, zone: number): { nid: { addr: string; port: number; ioAddr: string; ioPort: number }; nrVnodes: number; zone: number; space: bigint } => ({
  nid: { addr: '127.0.0.1', port, ioAddr: '', ioPort: 0 },
  nrVnodes: 128,
  zone,
  space: BigInt(port) << 20n,
});

test('epoch_log layout', timed(() => {
  const log = {
    ctime: (1700000000n << 32n) | 5000n,
    time: 1700000123n,
    epoch: 4,
    disableRecovery: true,
    nrCopies: 3,
    copyPolicy: 0x22,
    flags: 0x0c,
    drvName: 'zookeeper',
    nodes: [mkNode(7000, 0), mkNode(7001, 1), mkNode(7002, 2)],
  };
  const b = encodeEpochLog(log, 5);
  assert.is(b.length, epochLogSize(5));
  assert.is(b.length, 48 + 5 * 80);
  assert.is(b.readBigUInt64LE(0), log.ctime);
  assert.is(b.readBigUInt64LE(8), log.time);
  assert.is(b.readUInt32LE(16), 4);
  assert.is(b.readUInt32LE(20), 3); // nr_nodes
  assert.is(b[24], 1);
  assert.is(b[25], 3);
  assert.is(b[26], 0x22);
  assert.is(b.readUInt16LE(30), 0x0c);
  assert.is(readCString(b, 32, 16), 'zookeeper');
  assert.is(b.readUInt16LE(48 + 24 + 16), 7000); // first node's port
  assert.is(b.readUInt32LE(48 + 80 + 68), 1); // second node's zone
  assert.is(hex(b.subarray(48 + 3 * 80)), '00'.repeat(160)); // unused slots
  assert.equal(decodeEpochLog(b), log);
  assert.throws(() => encodeEpochLog(log, 2));
}));

test('cluster_info layout', timed(() => {
  const ci = {
    protoVer: 0x0a,
    disableRecovery: false,
    epoch: 9,
    ctime: 0x1234567800001000n,
    flags: ClusterFlag.AUTO_VNODES | ClusterFlag.USE_LOCK,
    nrCopies: 3,
    copyPolicy: 0,
    status: ClusterStatus.OK,
    blockSizeShift: 22,
    defaultStore: 'tree',
    nodes: [mkNode(7000, 0), mkNode(7001, 1)],
  };
  const b = encodeClusterInfo(ci);
  assert.is(b.length, 491_568);
  assert.is(b[0], 0x0a);
  assert.is(b.readInt16LE(2), 2);
  assert.is(b.readUInt32LE(4), 9);
  assert.is(b.readBigUInt64LE(8), ci.ctime);
  assert.is(b.readUInt16LE(16), 0x0c);
  assert.is(b[18], 3);
  assert.is(b[20], 1); // status
  assert.is(b[21], 22); // block_size_shift
  assert.is(readCString(b, 25, 16), 'tree'); // default_store at 25
  assert.is(b.readUInt16LE(48 + 64), 128); // nodes[0].nr_vnodes
  assert.equal(decodeClusterInfo(b), ci);
  assert.equal(decodeClusterInfo(b.subarray(0, 48 + 160)), ci);
}));

test('vdi_state layout', timed(() => {
  const vs = {
    vid: 0x7c2b25,
    nrCopies: 3,
    snapshot: true,
    deleted: false,
    copyPolicy: 0,
    blockSizeShift: 22,
    parentVid: 0x7c2b24,
    lockState: LockState.LOCKED,
    lockOwner: { addr: '127.0.0.1', port: 7002, ioAddr: '', ioPort: 0 },
    participantsState: [1, 2],
    participants: [
      { addr: '127.0.0.1', port: 7000, ioAddr: '', ioPort: 0 },
      { addr: '::1', port: 7001, ioAddr: '', ioPort: 0 },
    ],
  };
  const b = encodeVdiState(vs);
  assert.is(b.length, 1428);
  assert.is(b.readUInt32LE(0), 0x7c2b25);
  assert.is(b[4], 3);
  assert.is(b[5], 1);
  assert.is(b[8], 22);
  assert.is(b.readUInt32LE(12), 0x7c2b24);
  assert.is(b.readUInt32LE(16), 2); // lock_state
  assert.is(b.readUInt16LE(20 + 16), 7002); // lock_owner.port
  assert.is(b.readUInt32LE(60), 2); // nr_participants
  assert.is(b.readUInt32LE(64 + 4), 2); // participants_state[1]
  assert.is(b.readUInt16LE(188 + 40 + 16), 7001); // participants[1].port
  assert.equal(decodeVdiState(b), vs);
}));

test('recovery_state, recovery_throttling, vdi attr, md_info', timed(() => {
  const rs = { inRecovery: true, state: 1, nrFinished: 10n, nrTotal: 99n };
  const r = encodeRecoveryState(rs);
  assert.is(r.length, 24);
  assert.is(r.readUInt32LE(4), 1);
  assert.is(r.readBigUInt64LE(16), 99n);
  assert.equal(decodeRecoveryState(r), rs);

  const rt = { maxExecCount: 4, queueWorkInterval: 1000n, throttling: true };
  const t = encodeRecoveryThrottling(rt);
  assert.is(t.length, 24);
  assert.is(t.readBigUInt64LE(8), 1000n);
  assert.is(t[16], 1);
  assert.equal(decodeRecoveryThrottling(t), rt);

  const attr = { name: 'test', tag: 'snap', ctime: 77n, snapId: 2, valueLen: 5, key: 'k', value: Buffer.from('hello') };
  const a = encodeVdiAttr(attr);
  assert.is(a.length, 66_320);
  assert.is(readCString(a, 256, 256), 'snap');
  assert.is(a.readBigUInt64LE(512), 77n);
  assert.is(a.readUInt32LE(520), 2);
  assert.is(a.readUInt32LE(524), 5);
  assert.is(readCString(a, 528, 256), 'k');
  assert.is(a.subarray(784, 789).toString(), 'hello');
  assert.equal(decodeVdiAttr(a), attr);

  const disks = [
    { idx: 0, free: 1n << 30n, used: 5n, path: '/var/lib/sheepdog/d0' },
    { idx: 1, free: 2n << 30n, used: 0n, path: '/mnt/d1' },
  ];
  const m = encodeMdInfo(disks);
  assert.is(m.length, 263_688);
  assert.is(m.readBigUInt64LE(4120 + 8), 2n << 30n);
  assert.is(readCString(m, 4120 + 24, 4096), '/mnt/d1');
  assert.is(m.readInt32LE(64 * 4120), 2);
  assert.equal(decodeMdInfo(m), disks);
}));

test('C strings', timed(() => {
  const b = Buffer.alloc(8, 0x41);
  writeCString(b, 2, 4, 'ab');
  assert.is(hex(b), '4141616200004141');
  assert.is(readCString(b, 2, 4), 'ab');
  assert.is(readCString(Buffer.from('abcdef'), 1, 3), 'bcd'); // no NUL: bounded by len
  assert.throws(() => writeCString(b, 0, 2, 'abc'));
  const u = Buffer.alloc(16);
  writeCString(u, 0, 16, 'δοκιμή');
  assert.is(readCString(u, 0, 16), 'δοκιμή');
}));

test('sd_inode header and index', timed(() => {
  const h: InodeHeader = {
    name: 'test',
    tag: 'snap1',
    createTime: (1700000000n << 32n) | 1000n,
    snapCtime: 5n,
    vmClockNsec: 6n,
    vdiSize: 10n << 30n,
    vmStateSize: 7n,
    copyPolicy: 0x22,
    storePolicy: 1,
    nrCopies: 3,
    blockSizeShift: 22,
    snapId: 2,
    vdiId: 0x7c2b25,
    parentVdiId: 0x7c2b24,
    btreeCounter: 9,
  };
  const b = encodeInodeHeader(h);
  assert.is(b.length, 4664);
  assert.is(readCString(b, 0, 256), 'test');
  assert.is(readCString(b, 256, 256), 'snap1');
  assert.is(b.readBigUInt64LE(512), h.createTime);
  assert.is(b.readBigUInt64LE(520), 5n);
  assert.is(b.readBigUInt64LE(536), 10n << 30n);
  assert.is(b[552], 0x22);
  assert.is(b[553], 1);
  assert.is(b[554], 3);
  assert.is(b[555], 22);
  assert.is(b.readUInt32LE(556), 2);
  assert.is(b.readUInt32LE(560), 0x7c2b25);
  assert.is(b.readUInt32LE(564), 0x7c2b24);
  assert.is(b.readUInt32LE(568), 9);
  assert.equal(decodeInodeHeader(b), h);
  // a 568-byte header read (no btree_counter) still decodes
  assert.is(decodeInodeHeader(b.subarray(0, 568)).vdiId, 0x7c2b25);

  const full = newInodeBuffer(h);
  assert.is(full.length, 12_587_576);
  assert.equal(decodeInodeHeader(full), h);
  inodeSetVid(full, 0, 0x7c2b25);
  inodeSetVid(full, 1, 0xabcdef);
  inodeSetVid(full, MAX_DATA_OBJS - 1, 0xffffff);
  assert.is(full.readUInt32LE(4664), 0x7c2b25); // data_vdi_id[0] at 4664
  assert.is(full.readUInt32LE(4668), 0xabcdef);
  assert.is(full.readUInt32LE(4664 + 4 * (MAX_DATA_OBJS - 1)), 0xffffff);
  assert.is(inodeGetVid(full, 1), 0xabcdef);
  inodeSetGref(full, 1, 3, -1);
  assert.is(full.readInt32LE(4_198_968 + 8), 3); // gref[1].generation
  assert.is(full.readInt32LE(4_198_968 + 12), -1);
  assert.equal(inodeGetGref(full, 1), { generation: 3, count: -1 });
  assert.throws(() => inodeGetVid(full, MAX_DATA_OBJS));
  assert.throws(() => inodeSetVid(full, -1, 1));
  // re-encoding the header over a full inode leaves the index alone
  encodeInodeHeader({ ...h, vdiSize: 1n }, full);
  assert.is(inodeGetVid(full, 0), 0x7c2b25);
  assert.is(decodeInodeHeader(full).vdiSize, 1n);
}));

test.run();

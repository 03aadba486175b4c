// Part of npm run bench: how fast a lost node is noticed, and how fast its data comes back.
// 3 sheep processes (local driver), copies 3, BENCH_RECOVERY_MIB (default 1024) MiB written.
//  1. SIGKILL one node: time until another node's GET_NODE_LIST no longer lists it.
//  2. Restart it with an empty store (a replaced disk): time until recovery ends, and MB/s pulled.
//  3. Kill and restart it again with its data: time to verify its copies by hash instead of pulling them.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { Op, Res, SD_INODE_DATA_VDI_ID_OFFSET } from '../src/proto/constants.js';
import { vidToDataOid, vidToVdiOid } from '../src/proto/oid.js';
import { decodeClusterInfo, decodeRecoveryState } from '../src/proto/structs.js';
import { createVdi, format, LocalCluster, randomPortBase, waitForMembers, waitForRunning } from '../test/cluster-harness.js';
import { removeDir, tempDir } from '../test/helpers.js';
import { ZooKeeperServer, zooKeeperMissing } from '../test/zk-harness.js';

const MIB = Number(process.env.BENCH_RECOVERY_MIB ?? 1024);
const OBJ = 4 << 20;

async function recoveryDone(port: number, epochAtLeast: number): Promise<boolean> {
  const c = await SheepClient.connect('127.0.0.1', port);
  try {
    const info = decodeClusterInfo((await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data);
    const rec = decodeRecoveryState((await c.request({ opcode: Op.STAT_RECOVERY, dataLength: 24 })).data);
    return info.status === 1 && info.epoch >= epochAtLeast && !rec.inRecovery;
  } finally {
    c.close();
  }
}

async function epochOf(port: number): Promise<number> {
  const c = await SheepClient.connect('127.0.0.1', port);
  try {
    return decodeClusterInfo((await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data).epoch;
  } finally {
    c.close();
  }
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const start = Date.now();
  while (!(await cond().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function runRecoveryBench(emit: (o: object) => void): Promise<void> {
  const dir = tempDir('sheep-rbench-');
  const cluster = new LocalCluster(dir, randomPortBase());
  try {
    await cluster.start(3);
    const c = await SheepClient.connect('127.0.0.1', cluster.basePort);
    await format(c, 3);
    const { vid } = await createVdi(c, 'rbench', BigInt(MIB) << 20n);
    const data = Buffer.alloc(OBJ);
    const entry = Buffer.alloc(4);
    entry.writeUInt32LE(vid, 0);
    for (let i = 0; i < MIB / 4; i++) {
      data.fill(i & 0xff);
      data.writeUInt32LE(i, 0);
      const r = await c.request({ opcode: Op.CREATE_AND_WRITE_OBJ, obj: { oid: vidToDataOid(vid, i) } }, data);
      if (r.result !== Res.SUCCESS) throw new Error('fill failed');
      await c.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToVdiOid(vid), offset: SD_INODE_DATA_VDI_ID_OFFSET + 4 * i } }, entry);
    }

    // 1. detection
    let t0 = performance.now();
    await cluster.kill(2, 'SIGKILL');
    await waitForMembers(cluster.basePort, 2, 60_000);
    const detectMs = performance.now() - t0;
    emit({ case: 'node loss detected (SIGKILL → gone from node list), local driver', ms: +detectMs.toFixed(1), reference_ms_zookeeper: 3700 });

    // 2. replaced disk: pull everything
    rmSync(join(cluster.nodes[2]!.dir, 'obj'), { recursive: true, force: true });
    const epochBefore = await epochOf(cluster.basePort);
    t0 = performance.now();
    await cluster.startNode(2);
    await waitForRunning(cluster.basePort + 2, 60_000);
    await waitUntil('recovery after replacement', () => recoveryDone(cluster.basePort + 2, epochBefore + 1));
    let secs = (performance.now() - t0) / 1000;
    const bytes = (MIB + 12) * 1024 * 1024; // data plus the (sparse) inode
    emit({ case: `re-replication of ${MIB} MiB onto a replaced node (copies 3)`, seconds: +secs.toFixed(2), mb_per_s: +(bytes / 1e6 / secs).toFixed(1), reference_mb_per_s: +(32 * 1.048576 / 2.4).toFixed(1) });

    // 3. node returns with its data: copies verified by hash, not pulled again
    await cluster.kill(2, 'SIGKILL');
    await waitForMembers(cluster.basePort, 2, 60_000);
    const epochMid = await epochOf(cluster.basePort);
    t0 = performance.now();
    await cluster.startNode(2);
    await waitForRunning(cluster.basePort + 2, 60_000);
    await waitUntil('recovery after restart', () => recoveryDone(cluster.basePort + 2, epochMid + 1));
    secs = (performance.now() - t0) / 1000;
    emit({ case: `returning node verifies ${MIB} MiB by SHA-1 instead of pulling`, seconds: +secs.toFixed(2), mb_per_s: +(bytes / 1e6 / secs).toFixed(1) });
    c.close();
  } finally {
    await cluster.stop();
    removeDir(dir);
  }
  await zooKeeperDetection(emit);
}

/** The reference figure is for ZooKeeper (session timeout 3000 ms, tickTime 1000): measure the same. */
async function zooKeeperDetection(emit: (o: object) => void): Promise<void> {
  if (zooKeeperMissing()) {
    emit({ case: 'node loss detected, zookeeper driver', skipped: 'install the Debian package zookeeper' });
    return;
  }
  const zk = await ZooKeeperServer.start({ tickTime: 1000 });
  const dir = tempDir('sheep-rbench-zk-');
  const cluster = new LocalCluster(dir, randomPortBase(), `zookeeper:${zk.connectString},timeout=3000,path=/bench${Date.now()}`);
  try {
    await cluster.start(3);
    const t0 = performance.now();
    await cluster.kill(2, 'SIGKILL');
    await waitForMembers(cluster.basePort, 2, 60_000);
    emit({ case: 'node loss detected (SIGKILL → gone from node list), zookeeper driver, timeout 3000 ms', ms: Math.round(performance.now() - t0), reference_ms: 3700 });
  } finally {
    await cluster.stop();
    await zk.stop();
    removeDir(dir);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runRecoveryBench((o) => process.stdout.write(`${JSON.stringify(o)}\n`));

// Helpers shared by the failure tests on real sheep processes (recovery.test.ts with the local driver,
// recovery-zk.test.ts with ZooKeeper, disk-eio.test.ts): verifiable block contents, cluster state over
// the wire, waiting for recovery to settle, checking that every object sits on its placement, and a
// continuous verified read/write load.
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SheepClient } from '../src/client/sheep-client.js';
import { readVdi, writeVdi } from '../src/client/vdi-io.js';
import { Op, Res } from '../src/proto/constants.js';
import { decodeClusterInfo, decodeRecoveryState } from '../src/proto/structs.js';
import { buildVnodeRing, placeObject, toRingNode } from '../src/placement/ring.js';
import { nodeList, type LocalCluster } from './cluster-harness.js';

export const BLOCK = 4096;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A 4 KiB block that names its block number and generation, so a read can be checked exactly. */
export function blockData(blk: number, gen: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.writeUInt32LE(blk, 0);
  b.writeUInt32LE(gen, 4);
  for (let i = 8; i < BLOCK; i++) b[i] = (blk * 7 + gen * 13 + i) & 0xff;
  return b;
}

export async function clusterState(port: number): Promise<{ epoch: number; status: number; recovering: boolean }> {
  const c = await SheepClient.connect('127.0.0.1', port);
  try {
    const info = decodeClusterInfo((await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 })).data);
    const rec = await c.request({ opcode: Op.STAT_RECOVERY, dataLength: 24 });
    // (a waiting node answers STAT_RECOVERY with WAIT_FOR_JOIN: not settled, but keep its epoch and status)
    return { epoch: info.epoch, status: info.status, recovering: rec.result !== Res.SUCCESS || decodeRecoveryState(rec.data).inRecovery };
  } finally {
    c.close();
  }
}

/** Waits until every live node is at the same epoch, running, and not recovering — twice in a row. */
export async function waitRecovered(cluster: LocalCluster, timeoutMs = 30_000): Promise<number> {
  const start = Date.now();
  let calm = 0;
  for (;;) {
    const live = cluster.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    const states = await Promise.all(live.map((n) => clusterState(n.port).catch(() => null)));
    const ok = states.every((s) => s && s.status === 1 && !s.recovering && s.epoch === states[0]!.epoch);
    calm = ok ? calm + 1 : 0;
    if (calm >= 3) return states[0]!.epoch;
    if (Date.now() - start > timeoutMs) throw new Error(`recovery did not settle: ${JSON.stringify(states)}`);
    await sleep(200);
  }
}

/** Every object file on any live node sits exactly on its placement's nodes, all copies identical. */
export async function assertPlacement(cluster: LocalCluster, c: SheepClient, copies: number): Promise<number> {
  const nodes = await nodeList(c);
  const ring = buildVnodeRing(nodes.map(toRingNode));
  const all = new Set<string>();
  for (const n of cluster.nodes) for (const f of readdirSync(join(n.dir, 'obj'))) if (/^[0-9a-f]{16}$/.test(f)) all.add(f);
  for (const hex of all) {
    const oid = BigInt(`0x${hex}`);
    const expected = placeObject(ring, oid, copies).map((i) => nodes[i]!.nid.port - cluster.basePort).sort();
    const actual = cluster.nodes.map((n, i) => (existsSync(join(n.dir, 'obj', hex)) ? i : -1)).filter((i) => i >= 0);
    assert.equal(actual, expected, `replicas of ${hex}`);
    const bytes = actual.map((i) => readFileSync(join(cluster.nodes[i]!.dir, 'obj', hex)));
    assert.ok(bytes.every((b) => b.equals(bytes[0]!)), `copies of ${hex} identical`);
  }
  return all.size;
}

/**
 * A continuous verified load on the first `blocks` blocks of a VDI: writers write numbered generations,
 * readers check every acknowledged block reads back exactly. Errors are collected, not thrown, so a test
 * can report all of them. `stop()` ends the load and returns what happened.
 */
export function verifiedLoad(c: SheepClient, vid: number, blocks: number, opts: { writers?: number; readers?: number } = {}) {
  const acked = new Map<number, number>();
  const errors: string[] = [];
  let gen = 1;
  let stop = false;
  let reads = 0;
  let maxLatencyMs = 0;
  const timed = async <T>(p: Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await p;
    } finally {
      maxLatencyMs = Math.max(maxLatencyMs, Date.now() - t);
    }
  };
  const writer = async () => {
    while (!stop) {
      const blk = Math.floor(Math.random() * blocks);
      if (acked.get(blk) === -1) continue;
      const g = gen++;
      acked.set(blk, -1); // in flight: not checked until acknowledged
      try {
        await timed(writeVdi(c, vid, blk * BLOCK, blockData(blk, g)));
        acked.set(blk, g);
      } catch (e) {
        errors.push(`write block ${blk}: ${(e as Error).message}`);
        acked.delete(blk);
        await sleep(50);
      }
    }
  };
  const reader = async () => {
    while (!stop) {
      const blk = Math.floor(Math.random() * blocks);
      const g = acked.get(blk);
      if (g === undefined || g === -1) {
        await sleep(1);
        continue;
      }
      try {
        const data = await timed(readVdi(c, vid, blk * BLOCK, BLOCK));
        reads++;
        if (acked.get(blk) === g && !data.equals(blockData(blk, g))) errors.push(`block ${blk} gen ${g}: wrong bytes (gen ${data.readUInt32LE(4)})`);
      } catch (e) {
        errors.push(`read block ${blk}: ${(e as Error).message}`);
        await sleep(50);
      }
    }
  };
  const running = Promise.all([...Array.from({ length: opts.writers ?? 3 }, writer), ...Array.from({ length: opts.readers ?? 2 }, reader)]);
  return {
    acked,
    errors,
    async stop(): Promise<{ acked: Map<number, number>; errors: string[]; writes: number; reads: number; maxLatencyMs: number }> {
      stop = true;
      await running;
      return { acked, errors, writes: gen - 1, reads, maxLatencyMs };
    },
  };
}

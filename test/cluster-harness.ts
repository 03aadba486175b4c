// Starts real sheep processes on loopback for tests, and offers small wire-protocol helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { SheepClient } from '../src/client/sheep-client.js';
import { Op, Res } from '../src/proto/constants.js';
import { decodeSdNodes } from '../src/proto/structs.js';

const BIN = new URL('../src/bin/', import.meta.url).pathname;

/** TCP ports this machine has in use (any state), from /proc/net/tcp{,6}. */
function portsInUse(): Set<number> {
  const used = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local) used.add(parseInt(local.slice(local.lastIndexOf(':') + 1), 16));
    }
  }
  return used;
}

/**
 * A base port for a test cluster: base..base+99 all free. Below 32768, where the kernel hands out ephemeral
 * client ports, and checked against the ports in use so parallel runs do not collide.
 */
export function randomPortBase(): number {
  // TEST_PORT_BASE pins the ports, and with them every placement, to reproduce a run.
  if (process.env.TEST_PORT_BASE) return Number(process.env.TEST_PORT_BASE);
  const used = portsInUse();
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 120) * 100;
    let free = true;
    for (let p = base; p < base + 100 && free; p++) if (used.has(p)) free = false;
    if (free) return base;
  }
  throw new Error('no free block of 100 ports between 20000 and 32000');
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > timeoutMs) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SheepProcess {
  readonly port: number;
  readonly dir: string;
  readonly zone: number;
  child: ChildProcess;
}

/** A cluster of sheep processes using the local driver on a private hub socket. */
export class LocalCluster {
  readonly nodes: SheepProcess[] = [];
  readonly hub: string;

  /** `driver`: a sheep -c value; default the local driver on a private hub socket. */
  constructor(
    readonly baseDir: string,
    readonly basePort: number,
    readonly driver?: string,
  ) {
    this.hub = join(baseDir, 'hub.sock');
  }

  /** `disks`: object disks after the node's directory (sheep DIR,DISK1,...: multi-disk). */
  async startNode(i: number, extra: string[] = [], disks: string[] = []): Promise<SheepProcess> {
    const dir = join(this.baseDir, String(i));
    const port = this.basePort + i;
    // SHEEP_NODE_FLAGS: node flags for every sheep (profiling: --cpu-prof --cpu-prof-dir=DIR)
    const nodeFlags = (process.env.SHEEP_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...nodeFlags, join(BIN, 'sheep.js'), [dir, ...disks].join(','), '-p', String(port), '-z', String(i), '-c', this.driver ?? `local:path=${this.hub}`, '-b', '127.0.0.1', '-f', ...extra], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.once('exit', (code) => {
      if (code && code !== 0 && code !== 143) process.stderr.write(`sheep ${port} exited ${code}: ${stderr}\n`);
    });
    await waitForPort(port);
    const node = { port, dir, zone: i, child };
    this.nodes[i] = node;
    return node;
  }

  async start(n: number, extra: string[] = []): Promise<void> {
    for (let i = 0; i < n; i++) await this.startNode(i, extra);
    await waitForMembers(this.basePort, n);
  }

  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.nodes[i];
    if (!node || node.child.exitCode !== null || node.child.signalCode !== null) return;
    const exited = new Promise((r) => node.child.once('exit', r));
    node.child.kill(signal);
    await exited;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
  }
}

/** Waits until the node on `port` lists `n` members. */
export async function waitForMembers(port: number, n: number, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const c = await SheepClient.connect('127.0.0.1', port);
    try {
      const r = await c.request({ opcode: Op.GET_NODE_LIST, dataLength: 6144 * 80 });
      if (r.raw.readUInt32LE(20) === n) return;
    } finally {
      c.close();
    }
    if (Date.now() - start > timeoutMs) throw new Error(`node ${port} did not see ${n} members within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function nodeList(c: SheepClient) {
  const r = await c.request({ opcode: Op.GET_NODE_LIST, dataLength: 6144 * 80 });
  return decodeSdNodes(r.data, r.raw.readUInt32LE(20), 0);
}

export function nameBuf(name: string, tag?: string): Buffer {
  const b = Buffer.alloc(tag === undefined ? 256 : 512);
  b.write(name, 0);
  if (tag !== undefined) b.write(tag, 256);
  return b;
}

export async function format(c: SheepClient, copies = 3, flags = 0): Promise<void> {
  const r = await c.request({ opcode: Op.MAKE_FS, cluster: { copies, flags, blockSizeShift: 22 } }, Buffer.from('plain\0'));
  if (r.result !== Res.SUCCESS) throw new Error(`format failed: 0x${r.result.toString(16)}`);
}

export async function createVdi(c: SheepClient, name: string, size: bigint, opts: { copies?: number; base?: number; snapid?: number } = {}): Promise<{ result: number; vid: number }> {
  const r = await c.request({ opcode: Op.NEW_VDI, vdi: { vdiSize: size, copies: opts.copies ?? 0, baseVdiId: opts.base ?? 0, snapid: opts.snapid ?? 0 } }, nameBuf(name));
  return { result: r.result, vid: r.raw.readUInt32LE(24) };
}

export async function vdiInfo(c: SheepClient, name: string, opts: { tag?: string; snapid?: number } = {}): Promise<{ result: number; vid: number }> {
  const r = await c.request({ opcode: Op.GET_VDI_INFO, vdi: { snapid: opts.snapid ?? 0 } }, nameBuf(name, opts.tag));
  return { result: r.result, vid: r.raw.readUInt32LE(24) };
}

/** Waits until the node on `port` reports a running cluster (status OK) — a restarted node first syncs. */
export async function waitForRunning(port: number, timeoutMs = 15_000): Promise<void> {
  const { decodeClusterInfo } = await import('../src/proto/structs.js');
  const start = Date.now();
  for (;;) {
    const c = await SheepClient.connect('127.0.0.1', port);
    try {
      const r = await c.request({ opcode: Op.CLUSTER_INFO, dataLength: 491568 });
      if (decodeClusterInfo(r.data).status === 1) return;
    } finally {
      c.close();
    }
    if (Date.now() - start > timeoutMs) throw new Error(`node ${port} did not reach a running cluster within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

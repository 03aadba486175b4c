// Everything a sheep touches outside its own memory, as injected services (etcd-raft style): time, its
// disk (objects and the node's config/epoch files), the connections to its peers, CPU pools, logging,
// and whether it listens on TCP. `realEnv` is production; the simulator supplies virtual ones, so the
// same node code runs on a virtual clock, a simulated network and simulated disks.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SheepTransport } from '../client/transport.js';
import type { SdNode } from '../proto/structs.js';
import { MultiDiskStore } from '../store/md.js';
import type { Store } from '../store/store.js';
import { readConfig, readEpochFiles, readUnverifiedFile, writeConfig, writeEpochFile, writeUnverifiedFile, type NodeConfig } from './cluster-state.js';
import { PeerPool } from './peers.js';

export interface NodeClock {
  /** Milliseconds, monotonic (deadlines). */
  now(): number;
  /** Milliseconds since the Unix epoch (epoch log times, ctime, VDI times). */
  wallMs(): number;
  sleep(ms: number): Promise<void>;
  /** Runs `fn` after the current work (where production used setImmediate). */
  defer(fn: () => void): void;
}

/** DIR/config and DIR/epoch/%08u. */
export interface NodeMeta {
  readConfig(): Promise<NodeConfig | null>;
  writeConfig(c: NodeConfig): Promise<void>;
  writeEpochFile(epoch: number, nodes: readonly SdNode[], time: bigint): Promise<void>;
  readEpochFiles(): Promise<Map<number, { nodes: SdNode[]; time: bigint }>>;
  /**
   * Copies this node holds unverified since it came back, with the epoch up to which each is known
   * current (DIR/unverified). Kept across restarts: a copy still unverified when the node stopped must
   * not be taken, at the next start, for one as current as the node's last epoch.
   */
  readUnverified(): Promise<Map<bigint, number>>;
  writeUnverified(copies: ReadonlyMap<bigint, number>): Promise<void>;
}

export interface PeerConnection extends SheepTransport {
  readonly closed?: boolean;
}

export interface PeerTransport {
  get(addr: string, port: number): Promise<PeerConnection>;
  /** Closes the connection to a node that left: its in-flight requests fail at once (and are retried). */
  drop(key: string): void;
  closeAll(): void;
}

/** SHA-1 of object bytes (GET_HASH, recovery checks). */
export interface Hasher {
  sha1Shared(sab: SharedArrayBuffer, offset: number, length: number, paddedLength?: number): Promise<string>;
  close(): Promise<void>;
}

export interface NodeEnv {
  readonly clock: NodeClock;
  readonly store: Store;
  readonly meta: NodeMeta;
  readonly peers: PeerTransport;
  /** One formatted log line (already filtered by level). */
  readonly log: (line: string) => void;
  /** Whether the node opens its TCP listener (the simulator delivers requests itself). */
  readonly listen: boolean;
  /** Shared hasher; without it the node starts a piscina pool of its own. */
  readonly hasher?: Hasher;
}

export const realClock: NodeClock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  defer: (fn) => void setImmediate(fn),
};

export function fileMeta(dir: string): NodeMeta {
  return {
    readConfig: () => readConfig(dir),
    writeConfig: (c) => writeConfig(dir, c),
    writeEpochFile: (e, nodes, time) => writeEpochFile(dir, e, nodes, time),
    readEpochFiles: () => readEpochFiles(dir),
    readUnverified: () => readUnverifiedFile(dir),
    writeUnverified: (copies) => writeUnverifiedFile(dir, copies),
  };
}

/**
 * Production: files under `dir`, TCP peers, the wall clock, sheep.log in `logDir`. Objects go to DIR/obj,
 * or spread over `disks` when given (sheep DIR,DISK1,DISK2...).
 */
export function realEnv(dir: string, opts: { noSync: boolean; logDir?: string; disks?: readonly string[] }): NodeEnv {
  const logFile = join(opts.logDir ?? dir, 'sheep.log');
  return {
    clock: realClock,
    store: new MultiDiskStore(opts.disks?.length ? opts.disks : [join(dir, 'obj')], { noSync: opts.noSync, metaDir: dir }),
    meta: fileMeta(dir),
    peers: new PeerPool(),
    listen: true,
    log: (line) => {
      try {
        appendFileSync(logFile, line);
      } catch {
        process.stderr.write(line);
      }
    },
  };
}

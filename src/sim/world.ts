// The simulated world: N sheep in one thread on simulated time, each with its own simulated disk, all
// joined through one in-process membership hub, talking over the simulated network. Nodes crash (their
// pending work simply never happens, as in a dead process), restart from their disks, lose their disk to
// EIO, run out of space, get slow, or are cut off (and, cut off long enough, expelled as a ZooKeeper
// session expiry would). The production Sheep, its actors and its driver run unchanged.
import { createHash } from 'node:crypto';
import { Hub } from '../cluster/hub.js';
import { InProcessDriver } from '../cluster/in-process.js';
import type { ClusterDriver, ClusterEvent, Member } from '../cluster/driver.js';
import type { Hasher, NodeEnv } from '../node/env.js';
import { Sheep } from '../node/sheep.js';
import { ActorSystem } from '../runtime/system.js';
import { IncarnationClock, type Scheduler } from './scheduler.js';
import { SimDisk, trimmedLength } from './sim-disk.js';
import { SimNetwork } from './sim-network.js';
import type { Rng } from './rng.js';

const ACTOR_KINDS = new URL('../actors/index.js', import.meta.url).href;

/**
 * The simulator's object hash, in the calling thread (a worker pool would make completion order depend on
 * the OS scheduler). SHA-1 of the bytes up to the last non-zero one, and the length: equal exactly when
 * the bytes are, like SHA-1 of the whole, without hashing megabytes of sparse zeros (inodes are 12 MB).
 */
const inlineHasher: Hasher = {
  async sha1Shared(sab, offset, length, paddedLength = length) {
    const bytes = new Uint8Array(sab, offset, length);
    const h = createHash('sha1').update(bytes.subarray(0, trimmedLength(bytes)));
    h.update(String(paddedLength));
    return h.digest('hex');
  },
  async close() {},
};

/** The membership driver of one incarnation: a crashed node neither sends nor receives. */
class IncarnationDriver implements ClusterDriver {
  readonly name = 'sim';
  private readonly inner: InProcessDriver;

  constructor(
    hub: Hub,
    private readonly clock: IncarnationClock,
  ) {
    this.inner = new InProcessDriver(hub);
  }

  join(self: Member, onEvent: (ev: ClusterEvent) => void): Promise<void> {
    return this.inner.join(self, (ev) => {
      if (this.clock.alive) onEvent(ev);
    });
  }

  async leave(): Promise<void> {
    if (this.clock.alive) await this.inner.leave();
  }

  notify(msg: Uint8Array): void {
    if (this.clock.alive) this.inner.notify(msg);
  }

  block(): number {
    return this.clock.alive ? this.inner.block() : -1;
  }

  unblock(msg: Uint8Array): void {
    if (this.clock.alive) this.inner.unblock(msg);
  }
}

export type NodeState = 'up' | 'down';

export interface Incarnation {
  readonly n: number;
  readonly sheep: Sheep;
  readonly clock: IncarnationClock;
  readonly actors: ActorSystem;
}

export class SimNode {
  state: NodeState = 'down';
  current: Incarnation | null = null;
  incarnations = 0;
  /** Why it is down (for the step log), and whether the fault that took it down still holds. */
  downReason = '';
  constructor(
    readonly index: number,
    readonly id: string,
    readonly port: number,
    readonly disk: SimDisk,
  ) {}
}

export interface WorldParams {
  readonly nodes: number;
  readonly diskCapacity: number;
  readonly latencyMs: readonly [number, number];
  readonly dropRate: number;
  readonly logLevel: number;
}

export class World {
  readonly hub = new Hub();
  readonly net: SimNetwork;
  readonly nodes: SimNode[] = [];
  /** Every actor system made, shut down when the run ends. */
  private readonly systems: ActorSystem[] = [];
  /** Starts that need the (real) actor system set up first; the run loop does them between steps. */
  private readonly pendingStarts: SimNode[] = [];
  readonly logLines: string[] = [];

  constructor(
    readonly sched: Scheduler,
    private readonly rng: Rng,
    private readonly params: WorldParams,
    private readonly onStep: (what: string) => void,
  ) {
    this.net = new SimNetwork(sched, rng.fork(), { latencyMs: params.latencyMs, dropRate: params.dropRate });
    for (let i = 0; i < params.nodes; i++) {
      const port = 7000 + i;
      this.nodes.push(new SimNode(i, `127.0.0.1:${port}`, port, new SimDisk(`n${i}`, rng.fork(), params.diskCapacity)));
    }
  }

  log(line: string): void {
    this.logLines.push(line);
  }

  up(): SimNode[] {
    return this.nodes.filter((n) => n.state === 'up');
  }

  /** Asks for a node to start (from its disk); the run loop performs it. */
  requestStart(node: SimNode): void {
    if (node.state === 'up' || this.pendingStarts.includes(node)) return;
    this.pendingStarts.push(node);
  }

  hasPendingStarts(): boolean {
    return this.pendingStarts.length > 0;
  }

  /** Called by the run loop between steps: builds each pending node's actor system, then starts it. */
  async performStarts(): Promise<void> {
    while (this.pendingStarts.length > 0) {
      const node = this.pendingStarts.shift()!;
      const clock = new IncarnationClock(this.sched);
      const actors = await ActorSystem.start({ workers: 0, kindModules: [ACTOR_KINDS], clock, slab: { slotSize: 4096, slots: 1 }, onFailure: (r) => this.log(`actor ${r.address} failed: ${r.error} (${r.action})`) });
      this.systems.push(actors);
      if (this.params.logLevel >= 7) node.disk.trace = (what) => this.log(`[t=${(this.sched.now() / 1000).toFixed(3)}s] disk ${node.id}: ${what}`);
      const { store, meta } = node.disk.attach(clock);
      const env: NodeEnv = { clock, store, meta, peers: this.net.peersOf(node.id, clock), listen: false, hasher: inlineHasher, log: (line) => this.log(line.trimEnd()) };
      const n = ++node.incarnations;
      const sheep = new Sheep({
        dir: `/sim/${node.index}`,
        port: node.port,
        addr: '127.0.0.1',
        bind: '127.0.0.1',
        zone: node.index,
        gatewayOnly: false,
        noSync: false,
        driver: new IncarnationDriver(this.hub, clock),
        actors,
        env,
        logLevel: this.params.logLevel,
        onStop: (why) => this.stopped(node, n, why),
      });
      node.current = { n, sheep, clock, actors };
      node.state = 'up';
      node.downReason = '';
      this.net.attach(node.id, sheep, clock, n);
      this.onStep(`start ${node.id} (incarnation ${n})`);
      sheep.start().catch((err: Error) => {
        this.log(`${node.id}: start failed: ${err.message}`);
        this.crash(node, `start failed: ${err.message}`);
      });
    }
  }

  /** The node's process dies: nothing it had in flight completes; the membership notices after `detectMs`. */
  crash(node: SimNode, why: string, detectMs = 0): void {
    const inc = node.current;
    if (!inc || node.state === 'down') return;
    inc.clock.alive = false;
    node.state = 'down';
    node.downReason = why;
    this.net.detach(node.id);
    this.onStep(`crash ${node.id}: ${why}`);
    // The failure detector (ZooKeeper session, corosync token) reports the leave a little later.
    this.sched.schedule(() => {
      if (node.current === inc) this.hub.leave(node.id);
    }, detectMs, null);
  }

  /** A sheep stopped itself (disk error, kill, shutdown): from here on it is down like a crashed one. */
  private stopped(node: SimNode, n: number, why: string): void {
    if (node.current?.n !== n || node.state === 'down') return;
    this.crash(node, `stopped: ${why}`);
  }

  async shutdown(): Promise<void> {
    for (const n of this.nodes) if (n.current) n.current.clock.alive = false;
    await Promise.all(this.systems.map((s) => s.shutdown().catch(() => undefined)));
  }
}

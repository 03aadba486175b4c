// Seeded fault injection for the simulator. At random moments it kills or restarts a node, cuts the
// network (one node off, expelled if it stays off past the session timeout; or the cluster split in two),
// fails a disk with EIO, fills a disk, or slows one down. It never takes down more nodes at once than the
// copies can stand (copies - 1), so every object keeps a live replica and the cluster can always heal.
import type { Rng } from './rng.js';
import type { Scheduler } from './scheduler.js';
import type { SimNode, World } from './world.js';

export const FAULT_KINDS = ['kill', 'restart', 'partition', 'disk-eio', 'disk-full', 'slow'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How long a node may be unreachable before the membership service expels it (ZooKeeper session timeout). */
export const SESSION_TIMEOUT_MS = 2000;

export function parseFaults(spec: string): FaultKind[] {
  if (spec === '' || spec === 'none') return [];
  if (spec === 'all') return [...FAULT_KINDS];
  const out: FaultKind[] = [];
  for (const f of spec.split(',')) {
    if (!(FAULT_KINDS as readonly string[]).includes(f)) throw new Error(`unknown fault '${f}' (known: ${FAULT_KINDS.join(', ')}, all, none)`);
    if (!out.includes(f as FaultKind)) out.push(f as FaultKind);
  }
  return out;
}

export class FaultInjector {
  private active = false;
  /** Nodes a fault currently holds down (or cut off), with what brings them back. */
  private readonly held = new Set<SimNode>();
  injected = 0;

  constructor(
    private readonly world: World,
    private readonly sched: Scheduler,
    private readonly rng: Rng,
    private readonly kinds: readonly FaultKind[],
    private readonly maxDown: number,
    private readonly step: (what: string) => void,
    private readonly diskCapacity: number,
  ) {}

  start(): void {
    if (this.kinds.length === 0) return;
    this.active = true;
    this.scheduleNext();
  }

  private scheduleNext(): void {
    this.sched.schedule(() => this.tick(), this.rng.int(300, 1500), null);
  }

  private candidates(): SimNode[] {
    return this.world.nodes.filter((n) => n.state === 'up' && !this.held.has(n) && !this.world.net.isolated.has(n.id));
  }

  private tick(): void {
    if (!this.active) return;
    this.scheduleNext();
    const kind = this.rng.pick(this.kinds);
    const up = this.candidates();
    if (up.length === 0) return;
    const node = this.rng.pick(up);
    const canTakeDown = this.held.size < this.maxDown;
    this.injected++;
    switch (kind) {
      case 'kill':
      case 'restart': {
        if (!canTakeDown) return;
        const detect = this.rng.int(100, 1500);
        const back = kind === 'kill' ? this.rng.int(3000, 10000) : this.rng.int(300, 2500);
        this.held.add(node);
        this.world.crash(node, `${kind} fault`, detect);
        this.after(detect + back, () => this.bringBack(node));
        return;
      }
      case 'disk-eio': {
        if (!canTakeDown) return;
        this.held.add(node);
        node.disk.faults.eio = true;
        this.step(`fault disk-eio ${node.id}`);
        this.after(this.rng.int(2000, 8000), () => {
          node.disk.faults.eio = false;
          this.step(`disk of ${node.id} replaced`);
          this.bringBack(node);
        });
        return;
      }
      case 'partition': {
        const duration = this.rng.int(200, 4000);
        if (this.rng.chance(0.5) && canTakeDown) {
          this.held.add(node);
          this.world.net.isolated.add(node.id);
          this.step(`fault partition: ${node.id} cut off for ${duration} ms`);
          if (duration > SESSION_TIMEOUT_MS) this.after(SESSION_TIMEOUT_MS, () => this.world.crash(node, 'session expired (cut off)'));
          this.after(duration, () => {
            this.world.net.isolated.delete(node.id);
            this.step(`partition healed: ${node.id}`);
            this.bringBack(node);
          });
        } else {
          const nodes = this.world.nodes;
          const side = nodes.filter(() => this.rng.chance(0.5));
          if (side.length === 0 || side.length === nodes.length) return;
          const other = nodes.filter((n) => !side.includes(n));
          for (const a of side) for (const b of other) this.world.net.cut(a.id, b.id);
          this.step(`fault partition: {${side.map((n) => n.index).join(',')}} | {${other.map((n) => n.index).join(',')}} for ${duration} ms`);
          this.after(duration, () => {
            this.world.net.healCuts();
            this.step('partition healed');
          });
        }
        return;
      }
      case 'disk-full': {
        node.disk.faults.capacity = node.disk.usedBytes() + 64 * 1024;
        this.step(`fault disk-full ${node.id}`);
        this.after(this.rng.int(1000, 5000), () => {
          node.disk.faults.capacity = this.diskCapacity;
          this.step(`disk of ${node.id} has space again`);
        });
        return;
      }
      case 'slow': {
        node.disk.faults.slowMs = this.rng.int(5, 60);
        this.step(`fault slow disk ${node.id} (${node.disk.faults.slowMs} ms)`);
        this.after(this.rng.int(1000, 5000), () => {
          node.disk.faults.slowMs = 0;
          this.step(`disk of ${node.id} is fast again`);
        });
        return;
      }
    }
  }

  private after(ms: number, fn: () => void): void {
    this.sched.schedule(fn, ms, null);
  }

  private bringBack(node: SimNode): void {
    this.held.delete(node);
    if (node.state === 'down') this.world.requestStart(node);
  }

  /** No more faults: heal the network, fix every disk, restart every node that is down. */
  stop(): void {
    this.active = false;
    this.world.net.healAll();
    for (const n of this.world.nodes) {
      n.disk.faults.eio = false;
      n.disk.faults.slowMs = 0;
      n.disk.faults.capacity = this.diskCapacity;
      if (n.state === 'down') this.world.requestStart(n);
    }
    this.held.clear();
    this.step('faults stopped; every node healed');
  }
}

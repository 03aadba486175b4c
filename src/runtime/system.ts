// The actor system: a home shard (the thread that creates the system and owns its services) plus N shard
// workers. Actors are placed by a stable hash of their address (or pinned home by their kind). Shards talk
// through a full mesh of SharedArrayBuffer rings carrying msgpackr envelopes; each shard sleeps on one
// doorbell for all its inbound rings. Delivery between actors of one shard skips serialization.
// The control plane (inspect, stats, digest, shutdown) uses comlink over a separate MessagePort.
import { MessageChannel, Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { AnyEventObject } from 'xstate';
import { type Address, addressKey, parseAddressKey, shardOf } from './address.js';
import { ActorHost, type Command, type FailureReport, type Router, type Services } from './actor-host.js';
import { actorKind } from './actor-kind.js';
import { Channel, ChannelWriter, Inbox, type ChannelSpec } from './channel.js';
import { type Clock, RealClock } from './clock.js';
import { Doorbell } from './doorbell.js';
import { createEventLog, EventLogWriter } from './event-log.js';
import { SlabPool } from './slab.js';

/** What crosses between shards. `a` = address key. */
export type Envelope =
  | { m: 'spawn'; a: string; input: unknown }
  | { m: 'tell'; a: string; ev: AnyEventObject }
  | { m: 'ask'; a: string; ev: AnyEventObject; id: number }
  | { m: 'reply'; id: number; v: unknown }
  | { m: 'stop'; a: string }
  | { m: 'fx'; a: string; cmd: Command }
  | { m: 'failure'; report: FailureReport };

export const HOME_SHARD = 0;
/** Ask ids carry their origin shard in the low byte, so a reply finds its way back. */
const ASK_SHARD_BITS = 256;
export const MAX_SHARDS = ASK_SHARD_BITS;
export const DEFAULT_RING_BYTES = 1 << 20;
export const DEFAULT_ASK_TIMEOUT_MS = 10_000;

export class AskTimeoutError extends Error {
  constructor(to: string, type: string, ms: number) {
    super(`ask to ${to} (${type}) timed out after ${ms} ms`);
    this.name = 'AskTimeoutError';
  }
}

/** The wiring one shard needs; structured-cloneable so it can be workerData. */
export interface ShardWiring {
  readonly shard: number;
  readonly workerCount: number;
  readonly doorbellSab: SharedArrayBuffer;
  readonly inbound: ChannelSpec[];
  /** Indexed by target shard; null for self. */
  readonly outbound: Array<ChannelSpec | null>;
  readonly kindModules: string[];
  readonly servicesModule?: string;
  readonly recordPath?: string;
  readonly slabSab: SharedArrayBuffer;
}

/** Where an address lives, given the number of workers. */
export function placeActor(addr: Address, workerCount: number): number {
  const spec = actorKind(addr.kind);
  if (spec.placement === 'home' || workerCount === 0) return HOME_SHARD;
  return 1 + shardOf(addr, workerCount);
}

/**
 * One shard's runtime: its ActorHost, its inbox, its writers to every other shard and its pending asks.
 * Used by the home thread (inside ActorSystem) and by each shard worker.
 */
export class ShardRuntime {
  readonly host: ActorHost;
  readonly slab: SlabPool;
  private readonly inbox: Inbox;
  private readonly writers: Array<ChannelWriter | null>;
  private readonly pendingAsks = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: unknown }>();
  private readonly clock: Clock;
  private nextAsk = 1;
  private readonly recorder?: EventLogWriter;
  private loop?: Promise<void>;

  constructor(
    readonly wiring: ShardWiring,
    opts: { clock: Clock; services?: Services; onFailure?: (r: FailureReport) => void },
  ) {
    this.clock = opts.clock;
    this.slab = new SlabPool(wiring.slabSab);
    this.inbox = new Inbox(wiring.doorbellSab);
    for (const spec of wiring.inbound) this.inbox.attach(spec);
    this.writers = wiring.outbound.map((spec) => (spec ? new ChannelWriter(spec) : null));
    if (wiring.recordPath) this.recorder = new EventLogWriter(wiring.recordPath, wiring.shard);
    const router: Router = {
      tell: (_from, to, event) => this.tell(to, event),
      reply: (askId, value) => this.reply(askId, value),
      forwardEffect: wiring.shard === HOME_SHARD ? undefined : (self, cmd) => this.send(HOME_SHARD, { m: 'fx', a: addressKey(self), cmd }),
    };
    const onFailure =
      wiring.shard === HOME_SHARD ? opts.onFailure : (report: FailureReport) => this.send(HOME_SHARD, { m: 'failure', report });
    this.host = new ActorHost({ shard: wiring.shard, clock: opts.clock, services: opts.services, router, recorder: this.recorder, onFailure });
  }

  start(): void {
    this.loop = this.inbox.start((msg) => {
      // One bad envelope must not stop the shard: report it and keep draining.
      try {
        this.receive(msg as Envelope);
      } catch (err) {
        const report: FailureReport = { address: `shard/${this.wiring.shard}`, error: String((err as Error)?.message ?? err), action: 'restarted', restarts: 0 };
        if (this.wiring.shard === HOME_SHARD) this.onFailureReport?.(report);
        else this.send(HOME_SHARD, { m: 'failure', report });
      }
    });
  }

  shardOf(addr: Address): number {
    return placeActor(addr, this.wiring.workerCount);
  }

  spawn(addr: Address, input: unknown): void {
    const target = this.shardOf(addr);
    if (target === this.wiring.shard) this.host.spawn(addr, input);
    else this.send(target, { m: 'spawn', a: addressKey(addr), input });
  }

  tell(addr: Address, event: AnyEventObject): void {
    const target = this.shardOf(addr);
    if (target === this.wiring.shard) this.host.deliver(addr, event);
    else this.send(target, { m: 'tell', a: addressKey(addr), ev: event });
  }

  stop(addr: Address): void {
    const target = this.shardOf(addr);
    if (target === this.wiring.shard) this.host.stop(addr);
    else this.send(target, { m: 'stop', a: addressKey(addr) });
  }

  /** Request/response: the machine answers by emitting { type: 'reply', ask: event.$ask, value }. */
  ask<T = unknown>(addr: Address, event: AnyEventObject, timeoutMs = DEFAULT_ASK_TIMEOUT_MS): Promise<T> {
    const id = this.nextAsk++ * ASK_SHARD_BITS + this.wiring.shard;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pendingAsks.delete(id);
        reject(new AskTimeoutError(addressKey(addr), event.type, timeoutMs));
      }, timeoutMs);
      this.pendingAsks.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const target = this.shardOf(addr);
      if (target === this.wiring.shard) this.host.deliverAsk(addr, event, id);
      else this.send(target, { m: 'ask', a: addressKey(addr), ev: event, id });
    });
  }

  private reply(askId: number, value: unknown): void {
    const origin = askId % ASK_SHARD_BITS;
    if (origin === this.wiring.shard) this.settleAsk(askId, value);
    else this.send(origin, { m: 'reply', id: askId, v: value });
  }

  private settleAsk(id: number, value: unknown): void {
    const pending = this.pendingAsks.get(id);
    if (!pending) return; // timed out already
    this.pendingAsks.delete(id);
    this.clock.clearTimeout(pending.timer);
    pending.resolve(value);
  }

  send(target: number, env: Envelope): void {
    const w = this.writers[target];
    if (!w) throw new Error(`shard ${this.wiring.shard} has no channel to shard ${target}`);
    w.send(env);
  }

  /** Hook for effects forwarded to this (home) shard. */
  onForwardedEffect?: (self: Address, cmd: Command) => void;
  onFailureReport?: (r: FailureReport) => void;

  private receive(env: Envelope): void {
    switch (env.m) {
      case 'spawn':
        this.host.spawn(parseAddressKey(env.a), env.input);
        break;
      case 'tell':
        this.host.deliver(parseAddressKey(env.a), env.ev);
        break;
      case 'ask':
        this.host.deliverAsk(parseAddressKey(env.a), env.ev, env.id);
        break;
      case 'reply':
        this.settleAsk(env.id, env.v);
        break;
      case 'stop':
        this.host.stop(parseAddressKey(env.a));
        break;
      case 'fx':
        this.onForwardedEffect?.(parseAddressKey(env.a), env.cmd);
        break;
      case 'failure':
        this.onFailureReport?.(env.report);
        break;
      default:
        throw new Error(`shard ${this.wiring.shard}: unknown envelope ${JSON.stringify(env)}`);
    }
  }

  async close(): Promise<void> {
    await this.host.idle();
    this.host.recordDigest();
    this.recorder?.close();
    this.host.shutdown();
    for (const p of this.pendingAsks.values()) {
      this.clock.clearTimeout(p.timer);
      p.reject(new Error('actor system shut down'));
    }
    this.pendingAsks.clear();
    await this.inbox.stop();
    await this.loop?.catch(() => undefined);
  }
}

/** What each shard worker exposes over comlink. */
export interface ShardControl {
  inspect(): Array<{ address: string; state: string }>;
  stats(): ReturnType<ActorHost['getStats']>;
  digest(): string;
  idle(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface ActorSystemOptions {
  /** Shard workers besides the home thread. Default: CPU cores. 0 = everything on the home thread. */
  readonly workers?: number;
  /** Module URLs (file:// hrefs) that register the actor kinds; every worker imports them. */
  readonly kindModules: string[];
  /** Services run on the home thread; effects from workers without a local service come here. */
  readonly services?: Services;
  /** Module URL exporting `createServices(shard: number): Services` for worker-local services. */
  readonly servicesModule?: string;
  /** Append every actor input to this event log. */
  readonly record?: string;
  readonly ringBytes?: number;
  readonly slab?: { slotSize: number; slots: number };
  readonly clock?: Clock;
  readonly onFailure?: (r: FailureReport) => void;
}

export class ActorSystem {
  private constructor(
    readonly home: ShardRuntime,
    private readonly workers: Worker[],
    readonly controls: Array<Comlink.Remote<ShardControl>>,
    private readonly controlPorts: Array<{ close(): void }>,
  ) {}

  get workerCount(): number {
    return this.workers.length;
  }

  get slab(): SlabPool {
    return this.home.slab;
  }

  static async start(opts: ActorSystemOptions): Promise<ActorSystem> {
    const workerCount = opts.workers ?? availableParallelism();
    if (!Number.isInteger(workerCount) || workerCount < 0 || workerCount >= MAX_SHARDS) throw new Error(`workers must be 0..${MAX_SHARDS - 1}, got ${opts.workers}`);
    for (const m of opts.kindModules) await import(m);
    const shards = workerCount + 1;
    const ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
    const slabSab = SlabPool.allocate(opts.slab ?? { slotSize: 4 * 1024 * 1024 + 4096, slots: 8 });
    if (opts.record) createEventLog(opts.record);
    const doorbells = Array.from({ length: shards }, () => Doorbell.allocate());
    // specs[from][to]
    const specs = Array.from({ length: shards }, (_, from) =>
      Array.from({ length: shards }, (_, to) => (from === to ? null : Channel.create(ringBytes, doorbells[to]!))),
    );
    const wiring = (shard: number): ShardWiring => ({
      shard,
      workerCount,
      doorbellSab: doorbells[shard]!,
      inbound: specs.map((row) => row[shard]).filter((s): s is ChannelSpec => s !== null),
      outbound: specs[shard]!,
      kindModules: opts.kindModules,
      servicesModule: opts.servicesModule,
      recordPath: opts.record,
      slabSab,
    });
    const home = new ShardRuntime(wiring(HOME_SHARD), { clock: opts.clock ?? new RealClock(), services: opts.services, onFailure: opts.onFailure });
    const report = opts.onFailure ?? ((r: FailureReport) => process.emitWarning(`actor ${r.address} failed (${r.error}); ${r.action}`));
    home.onFailureReport = report;
    home.onForwardedEffect = (self, cmd) => runForwardedEffect(home, self, cmd);
    home.start();

    const workers: Worker[] = [];
    const controls: Array<Comlink.Remote<ShardControl>> = [];
    const ports: Array<{ close(): void }> = [];
    for (let s = 1; s < shards; s++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(new URL('./shard-worker.js', import.meta.url), {
        workerData: { wiring: wiring(s), control: port2 },
        transferList: [port2],
      });
      worker.on('error', (err) => report({ address: `shard/${s}`, error: String(err?.message ?? err), action: 'stopped', restarts: 0 }));
      workers.push(worker);
      controls.push(Comlink.wrap<ShardControl>(nodeEndpoint(port1)));
      ports.push(port1);
    }
    // Wait until every worker has imported its kinds and started its inbox.
    await Promise.all(controls.map((c) => c.idle()));
    return new ActorSystem(home, workers, controls, ports);
  }

  spawn(addr: Address, input: unknown): void {
    this.home.spawn(addr, input);
  }

  tell(addr: Address, event: AnyEventObject): void {
    this.home.tell(addr, event);
  }

  ask<T = unknown>(addr: Address, event: AnyEventObject, timeoutMs?: number): Promise<T> {
    return this.home.ask<T>(addr, event, timeoutMs);
  }

  stop(addr: Address): void {
    this.home.stop(addr);
  }

  shardOf(addr: Address): number {
    return this.home.shardOf(addr);
  }

  /** Registers home-thread services (also used for effects forwarded from workers). */
  provide(services: Services): void {
    this.home.host.provide(services);
  }

  /** Every actor on every shard with its state. */
  async inspect(): Promise<Array<{ shard: number; address: string; state: string }>> {
    const out = this.home.host.inspect().map((a) => ({ shard: HOME_SHARD, ...a }));
    const remote = await Promise.all(this.controls.map((c) => c.inspect()));
    remote.forEach((list, i) => out.push(...list.map((a) => ({ shard: i + 1, ...a }))));
    return out;
  }

  async stats(): Promise<Array<ReturnType<ActorHost['getStats']>>> {
    return [this.home.host.getStats(), ...(await Promise.all(this.controls.map((c) => c.stats())))];
  }

  async shutdown(): Promise<void> {
    await Promise.all(this.controls.map((c) => c.shutdown().catch(() => undefined)));
    await this.home.close();
    for (const p of this.controlPorts) p.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** A worker's effect that only the home thread can run: run it here, send the result back as an event. */
function runForwardedEffect(home: ShardRuntime, self: Address, cmd: Command): void {
  const service = home.host.service(cmd.type);
  const back = (ev: AnyEventObject | void) => ev && home.tell(self, ev);
  if (!service) return back({ type: `${cmd.type}.error`, error: `no service for effect "${cmd.type}"` });
  try {
    const r = service(cmd, { self, shard: HOME_SHARD });
    if (r instanceof Promise) r.then(back, (err) => back({ type: `${cmd.type}.error`, error: String(err?.message ?? err) }));
    else back(r);
  } catch (err) {
    back({ type: `${cmd.type}.error`, error: String((err as Error)?.message ?? err) });
  }
}

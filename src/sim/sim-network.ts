// The simulated network: every request between nodes (and from clients) is copied, delayed by a random
// latency (so messages reorder), may be lost (the connection resets; the request may or may not have run),
// and fails across a partition. Requests enter the target through Sheep.localRequest: the real wire
// encoding and the real request handling.
import { ConnectionError, type SheepResponse } from '../client/sheep-client.js';
import type { PeerConnection, PeerTransport } from '../node/env.js';
import type { Sheep } from '../node/sheep.js';
import type { ReqInit } from '../proto/header.js';
import type { Rng } from './rng.js';
import type { Liveness, Scheduler } from './scheduler.js';

export interface NetworkParams {
  /** One-way latency range, milliseconds. */
  readonly latencyMs: readonly [number, number];
  /** Chance that a message is lost (its connection resets). */
  readonly dropRate: number;
}

interface Endpoint {
  readonly sheep: Sheep;
  readonly life: Liveness;
  readonly incarnation: number;
}

function copy(b: Uint8Array | undefined): Buffer | undefined {
  return b ? Buffer.from(b) : undefined;
}

export class SimNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  /** Requests a node is handling: they fail (connection reset) when it dies. */
  private readonly handling = new Map<string, Set<(why: string) => void>>();
  /** Pairs that cannot talk ("a|b", both orders). */
  private readonly cuts = new Set<string>();
  /** Nodes cut from everyone, clients included. */
  readonly isolated = new Set<string>();
  dropRate: number;
  messages = 0;
  dropped = 0;

  constructor(
    private readonly sched: Scheduler,
    private readonly rng: Rng,
    private readonly params: NetworkParams,
  ) {
    this.dropRate = params.dropRate;
  }

  attach(id: string, sheep: Sheep, life: Liveness, incarnation: number): void {
    this.endpoints.set(id, { sheep, life, incarnation });
  }

  /** The node died: it answers nothing more, and every connection to it resets. */
  detach(id: string): void {
    this.endpoints.delete(id);
    const inFlight = this.handling.get(id);
    this.handling.delete(id);
    for (const fail of inFlight ?? []) this.sched.schedule(() => fail('connection reset (peer died)'), this.latency(), null);
  }

  cut(a: string, b: string): void {
    this.cuts.add(`${a}|${b}`);
    this.cuts.add(`${b}|${a}`);
  }

  healCuts(): void {
    this.cuts.clear();
  }

  healAll(): void {
    this.cuts.clear();
    this.isolated.clear();
  }

  reachable(from: string, to: string): boolean {
    return !this.isolated.has(from) && !this.isolated.has(to) && !this.cuts.has(`${from}|${to}`);
  }

  private latency(): number {
    const [lo, hi] = this.params.latencyMs;
    return lo + this.rng.float() * (hi - lo);
  }

  /**
   * One request from `from` (a node id, or "client") to node `to`. `life` is the sender's incarnation: a
   * reply to a crashed sender is never delivered. Rejects with ConnectionError as a reset connection would.
   */
  send(from: string, life: Liveness | null, to: string, init: ReqInit, data?: Uint8Array, conn?: SimConnection): Promise<SheepResponse> {
    const payload = copy(data);
    this.messages++;
    // A dead process sends nothing: the caller (its own stalled code) never hears back.
    if (life && !life.alive) return new Promise<SheepResponse>(() => undefined);
    return new Promise<SheepResponse>((resolve, reject) => {
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        conn?.inFlight.delete(fail);
        this.handling.get(to)?.delete(fail);
        reject(new ConnectionError(to, `${from} → ${to}: ${why}`));
      };
      conn?.inFlight.add(fail);
      this.sched.schedule(() => {
        const target = this.endpoints.get(to);
        if (conn?.isClosed()) return fail('connection closed');
        if (!target || !target.life.alive || (conn && conn.incarnation !== target.incarnation)) return fail('connection refused');
        if (!this.reachable(from, to)) return this.sched.schedule(() => fail('timed out (partition)'), 50 + this.rng.float() * 200, life), undefined;
        if (this.rng.chance(this.dropRate)) {
          this.dropped++;
          return fail('connection reset');
        }
        let set = this.handling.get(to);
        if (!set) this.handling.set(to, (set = new Set()));
        set.add(fail);
        void target.sheep.localRequest(init, payload).then((rsp) => {
          if (!target.life.alive) return; // it crashed while handling: detach() resets the connection
          this.sched.schedule(
            () => {
              if (conn?.isClosed()) return fail('connection closed');
              if (!this.reachable(from, to)) return fail('connection reset (partition)');
              if (this.rng.chance(this.dropRate)) {
                this.dropped++;
                return fail('connection reset after the request ran');
              }
              if (settled) return;
              settled = true;
              conn?.inFlight.delete(fail);
              this.handling.get(to)?.delete(fail);
              resolve(rsp); // its body is a fresh buffer nobody else holds
            },
            this.latency(),
            life,
          );
        });
      }, this.latency(), null);
    });
  }

  /** The peer connections of one node incarnation (its PeerTransport). */
  peersOf(id: string, life: Liveness): PeerTransport {
    return new SimPeers(this, id, life);
  }

  incarnationOf(id: string): number | undefined {
    return this.endpoints.get(id)?.incarnation;
  }
}

export class SimConnection implements PeerConnection {
  readonly inFlight = new Set<(why: string) => void>();
  private closedFlag = false;

  constructor(
    private readonly net: SimNetwork,
    private readonly from: string,
    private readonly life: Liveness,
    readonly to: string,
    readonly incarnation: number,
  ) {}

  get closed(): boolean {
    return this.isClosed();
  }

  isClosed(): boolean {
    return this.closedFlag || this.net.incarnationOf(this.to) !== this.incarnation;
  }

  request(init: ReqInit, data?: Uint8Array): Promise<SheepResponse> {
    if (this.isClosed()) return Promise.reject(new ConnectionError(this.to, `${this.from} → ${this.to}: connection closed`));
    return this.net.send(this.from, this.life, this.to, init, data, this);
  }

  close(): void {
    this.closedFlag = true;
    for (const fail of [...this.inFlight]) fail('connection closed');
  }
}

class SimPeers implements PeerTransport {
  private readonly conns = new Map<string, SimConnection>();

  constructor(
    private readonly net: SimNetwork,
    private readonly self: string,
    private readonly life: Liveness,
  ) {}

  async get(addr: string, port: number): Promise<PeerConnection> {
    const key = `${addr}:${port}`;
    const existing = this.conns.get(key);
    if (existing && !existing.isClosed()) return existing;
    const incarnation = this.net.incarnationOf(key);
    if (incarnation === undefined) throw new ConnectionError(key, `${this.self} → ${key}: connection refused`);
    const c = new SimConnection(this.net, this.self, this.life, key, incarnation);
    this.conns.set(key, c);
    return c;
  }

  drop(key: string): void {
    this.conns.get(key)?.close();
    this.conns.delete(key);
  }

  closeAll(): void {
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}

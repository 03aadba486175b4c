// `zookeeper` driver: membership and totally ordered events through a ZooKeeper ensemble, as Sheepdog's
// sheep/cluster/zookeeper.c does, with the same ClusterDriver semantics as the hub drivers.
//
// Layout under the base path B (default /sheepdog; one per cluster):
//   B/queue/e-NNNNNNNNNN     persistent sequential: the event log. Its order is the single source of truth.
//   B/queue/b.KEY.N-NNNNNNNNNN  the same for an event whose payload lives in N blob parts (big messages)
//   B/blob/KEY-I             persistent: part I of a big payload (ZooKeeper caps a znode at ~1 MB)
//   B/member/ID              ephemeral, one per live member (ID = encodeURIComponent("addr:port")),
//                            data {inc, pos}: its incarnation (session id) and how far it has applied the log
//   B/snapshot               the replicated state as of a log position, for joiners and log trimming
//
// Every member applies the log to the same deterministic state machine (member list in join order, the
// FIFO block queue, per-sender FIFO counters), so all members derive the same events in the same order:
//   join     appended by the joiner after it created its member znode;
//   leave    appended by a member leaving cleanly, or, when a member znode disappears (session expired:
//            SIGKILL, SIGSTOP, network loss), by the first member of the list whose znode is still there.
//            A leave names the incarnation it removes, so duplicates and stale leaves are no-ops and every
//            member delivers exactly one 'leave';
//   notify / block / unblock  carry the sender's counter: a resend after a connection loss is dropped as a
//            duplicate, and an event overtaking an earlier one of the same sender is held back, so every
//            sender's events keep their order.
// A joiner loads the snapshot (state at position S), appends its join J, replays (S, J) silently and
// delivers from its own join on, so its first event is its own join with the full member list.
//
// Session loss (EXPIRED, or this process frozen longer than the session timeout): the others have removed
// this node (or will, once the server expires the session). The driver closes the client, stops delivering
// and calls `onSessionLost`; the sheep CLI then exits non-zero, as Sheepdog's sheep does, and a supervisor
// restarts it. The driver itself can join() again afterwards: that opens a NEW client (new session, new
// incarnation) and the node is a fresh joiner.
import zookeeper from 'node-zookeeper-client';
import type { Client, Stat } from 'node-zookeeper-client';
import { Packr } from 'msgpackr';
import type { ClusterDriver, ClusterEvent, Member } from './driver.js';

const { CreateMode, Exception, State } = zookeeper;

export const DEFAULT_ZK_BASE = '/sheepdog';
export const DEFAULT_ZK_SESSION_TIMEOUT_MS = 3000;
/** Payloads above this go to blob parts (ZooKeeper's default jute.maxbuffer is 1 MiB per znode). */
const BLOB_THRESHOLD = 900 * 1024;
const BLOB_PART = 512 * 1024;

const packr = new Packr({ useRecords: false, moreTypes: false });

// ---- the replicated state machine -----------------------------------------------------------------

type CountedEvent =
  | { t: 'notify'; id: string; inc: string; c: number; msg: Uint8Array }
  | { t: 'block'; id: string; inc: string; c: number; ticket: number }
  | { t: 'unblock'; id: string; inc: string; c: number; msg: Uint8Array };

type QueueEvent = { t: 'join'; id: string; inc: string; node: Uint8Array } | { t: 'leave'; id: string; inc: string } | CountedEvent;

interface MemberState {
  id: string;
  inc: string;
  node: Uint8Array;
  /** The counter expected next from this member (its join is 0). */
  next: number;
  /** Events that overtook an earlier one of the same sender, by counter. */
  held: CountedEvent[];
}

interface LockEntry {
  id: string;
  inc: string;
  ticket: number;
}

interface StateImage {
  v: 1;
  seq: number;
  members: MemberState[];
  locks: LockEntry[];
}

export type StateOutput = ClusterEvent | { type: 'grant'; id: string; inc: string; ticket: number };

/** The deterministic state every member derives from the log. Exported for unit tests. */
export class ReplicatedState {
  seq = -1;
  members: MemberState[] = [];
  locks: LockEntry[] = [];
  /** Diagnostics (not replicated): duplicates dropped and events held back for their sender's order. */
  duplicates = 0;
  heldBack = 0;

  constructor(private readonly warn: (msg: string) => void = () => undefined) {}

  static fromImage(img: StateImage, warn?: (msg: string) => void): ReplicatedState {
    const s = new ReplicatedState(warn);
    s.seq = img.seq;
    s.members = img.members.map((m) => ({ ...m, node: new Uint8Array(m.node), held: m.held.map(fixCounted) }));
    s.locks = img.locks.map((l) => ({ ...l }));
    return s;
  }

  image(): StateImage {
    return { v: 1, seq: this.seq, members: this.members, locks: this.locks };
  }

  memberList(): Member[] {
    return this.members.map((m) => ({ id: m.id, node: m.node }));
  }

  find(id: string, inc?: string): MemberState | undefined {
    const m = this.members.find((x) => x.id === id);
    return m && (inc === undefined || m.inc === inc) ? m : undefined;
  }

  apply(seq: number, ev: QueueEvent, out: (o: StateOutput) => void): void {
    if (seq <= this.seq) return;
    this.seq = seq;
    switch (ev.t) {
      case 'join': {
        const old = this.find(ev.id);
        if (old && old.inc === ev.inc) {
          this.duplicates++; // a resent join
          return;
        }
        if (old) this.remove(old, out); // a new incarnation replaces one whose leave is not in yet
        this.members.push({ id: ev.id, inc: ev.inc, node: ev.node, next: 1, held: [] });
        out({ type: 'join', member: { id: ev.id, node: ev.node }, members: this.memberList() });
        return;
      }
      case 'leave': {
        const m = this.find(ev.id, ev.inc);
        if (m) this.remove(m, out);
        return;
      }
      default: {
        const m = this.find(ev.id, ev.inc);
        if (!m) return; // from a node that is not (or no longer) a member
        if (ev.c < m.next) {
          this.duplicates++; // resent after a connection loss
          return;
        }
        if (ev.c > m.next) {
          this.heldBack++;
          if (!m.held.some((h) => h.c === ev.c)) {
            m.held.push(ev);
            m.held.sort((a, b) => a.c - b.c);
          }
          return;
        }
        this.run(m, ev, out);
        m.next++;
        while (m.held.length > 0 && m.held[0]!.c <= m.next) {
          const h = m.held.shift()!;
          if (h.c < m.next) {
            this.duplicates++;
            continue;
          }
          this.run(m, h, out);
          m.next++;
        }
      }
    }
  }

  private run(m: MemberState, ev: CountedEvent, out: (o: StateOutput) => void): void {
    switch (ev.t) {
      case 'notify':
        out({ type: 'notify', from: m.id, msg: ev.msg });
        return;
      case 'block':
        this.locks.push({ id: m.id, inc: m.inc, ticket: ev.ticket });
        if (this.locks.length === 1) this.grantHead(out);
        return;
      case 'unblock': {
        const head = this.locks[0];
        if (!head || head.id !== m.id || head.inc !== m.inc) {
          this.warn(`node ${m.id} unblocked without holding the block; ignored`);
          return;
        }
        this.locks.shift();
        out({ type: 'notify', from: m.id, msg: ev.msg });
        this.grantHead(out);
        return;
      }
    }
  }

  private remove(m: MemberState, out: (o: StateOutput) => void): void {
    this.members.splice(this.members.indexOf(m), 1);
    const head = this.locks[0];
    const held = head !== undefined && head.id === m.id && head.inc === m.inc;
    this.locks = this.locks.filter((l) => !(l.id === m.id && l.inc === m.inc));
    out({ type: 'leave', member: { id: m.id, node: m.node }, members: this.memberList() });
    if (held) this.grantHead(out);
  }

  private grantHead(out: (o: StateOutput) => void): void {
    const head = this.locks[0];
    if (head) out({ type: 'grant', id: head.id, inc: head.inc, ticket: head.ticket });
  }
}

function fixCounted(e: CountedEvent): CountedEvent {
  return 'msg' in e ? { ...e, msg: new Uint8Array(e.msg) } : { ...e };
}

// ---- promise wrappers and helpers ---------------------------------------------------------------

function code(err: unknown): number | undefined {
  return typeof (err as { getCode?: unknown })?.getCode === 'function' ? (err as { getCode(): number }).getCode() : undefined;
}

function zkCall<T>(fn: (cb: (err: Error | unknown, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    fn((err, v) => {
      if (err) reject(err instanceof Error ? err : new ZkError(err));
      else resolve(v);
    }),
  );
}

/** Wraps a node-zookeeper-client Exception so it is an Error with a stack and keeps getCode(). */
export class ZkError extends Error {
  readonly code: number | undefined;
  constructor(readonly zkCause: unknown) {
    super(`zookeeper: ${String(zkCause)}`);
    this.code = code(zkCause);
  }
  getCode(): number | undefined {
    return this.code;
  }
}

function create(client: Client, path: string, data: Buffer | null, mode: number): Promise<string> {
  return zkCall((cb) => client.create(path, data ?? Buffer.alloc(0), mode, cb));
}

function getChildren(client: Client, path: string, watcher?: (ev: unknown) => void): Promise<string[]> {
  return zkCall((cb) => (watcher ? client.getChildren(path, watcher, (e, c) => cb(e, c)) : client.getChildren(path, (e, c) => cb(e, c))));
}

function getData(client: Client, path: string): Promise<{ data: Buffer | undefined; stat: Stat }> {
  return zkCall((cb) => client.getData(path, (e, data, stat) => cb(e, { data, stat })));
}

function remove(client: Client, path: string, version = -1): Promise<void> {
  return zkCall((cb) => client.remove(path, version, (e) => cb(e, undefined)));
}

/** Creates `path` and its parents as persistent znodes (existing ones are fine). */
export async function ensurePath(client: Client, path: string): Promise<void> {
  let p = '';
  for (const part of path.split('/').filter(Boolean)) {
    p += `/${part}`;
    try {
      await create(client, p, null, CreateMode.PERSISTENT);
    } catch (err) {
      if (code(err) !== Exception.NODE_EXISTS) throw err;
    }
  }
}

/**
 * Deletes `path` and everything below it. (node-zookeeper-client's removeRecursive descends one level
 * only with async@3, so this walks the tree itself.) A missing node is fine; children created while this
 * runs are retried a few times.
 */
export async function removeTree(client: Client, path: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    let children: string[];
    try {
      children = await getChildren(client, path);
    } catch (err) {
      if (code(err) === Exception.NO_NODE) return;
      throw err;
    }
    const prefix = path === '/' ? '' : path;
    await Promise.all(children.map((c) => removeTree(client, `${prefix}/${c}`)));
    if (path === '/') return;
    try {
      await remove(client, path);
      return;
    } catch (err) {
      const c = code(err);
      if (c === Exception.NO_NODE) return;
      if (c !== Exception.NOT_EMPTY || attempt >= 5) throw err;
    }
  }
}

/** The sequence number at the end of a sequential znode's name. */
function seqOf(name: string): number {
  return Number(name.slice(-10));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- the spec: zookeeper:HOST:PORT[,HOST:PORT...][,timeout=MS][,path=/BASE] -------------------------

export class ZkSpecError extends Error {}

export interface ZooKeeperSpec {
  /** "host:port,host:port" for node-zookeeper-client. */
  connect: string;
  sessionTimeoutMs: number;
  basePath: string;
}

export function normalizeBasePath(p: string): string {
  const t = p.replace(/\/+$/, '');
  if (!t.startsWith('/') || t.length < 2 || /\/\/|[\s\0]/.test(t)) throw new ZkSpecError(`invalid zookeeper base path '${p}': expected an absolute znode path such as /sheepdog`);
  return t;
}

/** Parses what follows "zookeeper:" in `-c zookeeper:HOST:PORT[,HOST:PORT...][,timeout=MS][,path=/BASE]`. */
export function parseZooKeeperSpec(rest: string): ZooKeeperSpec {
  const usage = 'expected zookeeper:HOST:PORT[,HOST:PORT...][,timeout=MS][,path=/BASE]';
  const servers: string[] = [];
  let sessionTimeoutMs = DEFAULT_ZK_SESSION_TIMEOUT_MS;
  let basePath = DEFAULT_ZK_BASE;
  for (const item of rest.split(',')) {
    const eq = item.indexOf('=');
    if (eq >= 0) {
      const k = item.slice(0, eq);
      const v = item.slice(eq + 1);
      if (k === 'timeout') {
        if (!/^\d+$/.test(v) || Number(v) < 100 || Number(v) > 600_000) throw new ZkSpecError(`invalid zookeeper timeout '${v}': expected milliseconds in 100..600000`);
        sessionTimeoutMs = Number(v);
      } else if (k === 'path') basePath = normalizeBasePath(v);
      else throw new ZkSpecError(`unknown zookeeper option '${k}' (${usage})`);
      continue;
    }
    const m = /^([A-Za-z0-9._-]+):(\d{1,5})$/.exec(item);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ZkSpecError(`invalid zookeeper server '${item}' (${usage})`);
    servers.push(item);
  }
  if (servers.length === 0) throw new ZkSpecError(`no zookeeper server given (${usage})`);
  return { connect: servers.join(','), sessionTimeoutMs, basePath };
}

// ---- the driver -----------------------------------------------------------------------------------

export interface ZooKeeperDriverOptions {
  /** "host:port[,host:port...]". */
  connect: string;
  /** Requested session timeout (the server may negotiate it into [2, 20] ticks). Default 3000. */
  sessionTimeoutMs?: number;
  /** The cluster's namespace. Default /sheepdog. */
  basePath?: string;
  /** Called once when the session is lost (expired, or the process was frozen past the timeout). */
  onSessionLost?: (err: Error) => void;
  /** How long join() waits for the first connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Leader housekeeping period: snapshot + log trimming. Default 2000 ms. */
  gcIntervalMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

type Phase = 'idle' | 'joining' | 'joined' | 'leaving' | 'lost';

interface Outgoing {
  ev: QueueEvent;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

export class ZooKeeperDriver implements ClusterDriver {
  readonly name = 'zookeeper';
  readonly basePath: string;
  private readonly sessionTimeoutMs: number;
  private phase: Phase = 'idle';
  /** Bumped on every teardown so callbacks of an old session do nothing. */
  private gen = 0;
  private client: Client | null = null;
  private self: Member | null = null;
  private inc = '';
  private onEvent: ((ev: ClusterEvent) => void) | null = null;
  private state = new ReplicatedState();
  private delivering = false;
  private counter = 1;
  private nextTicket = 1;
  private pumping = false;
  private pumpAgain = false;
  private memberNames: Set<string> | null = null;
  private memberRefreshing = false;
  private memberAgain = false;
  private readonly leavesSent = new Set<string>();
  private retry: Outgoing[] = [];
  /** Appends sent again after a connection loss (this session). */
  resent = 0;
  private joinedWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private timers: NodeJS.Timeout[] = [];
  private lastTick = 0;
  private reportedPos = -2;
  private gcRunning = false;
  private blobSeq = 0;

  constructor(private readonly opts: ZooKeeperDriverOptions) {
    this.basePath = normalizeBasePath(opts.basePath ?? DEFAULT_ZK_BASE);
    this.sessionTimeoutMs = opts.sessionTimeoutMs ?? DEFAULT_ZK_SESSION_TIMEOUT_MS;
  }

  private get queuePath(): string {
    return `${this.basePath}/queue`;
  }
  private get memberDir(): string {
    return `${this.basePath}/member`;
  }
  private get blobDir(): string {
    return `${this.basePath}/blob`;
  }
  private get snapshotPath(): string {
    return `${this.basePath}/snapshot`;
  }
  private memberPath(id: string): string {
    return `${this.memberDir}/${encodeURIComponent(id)}`;
  }

  /** The session's negotiated timeout (ms), once connected. */
  get negotiatedTimeoutMs(): number {
    return this.client?.getSessionTimeout() ?? this.sessionTimeoutMs;
  }

  /** Diagnostics: resent appends, and duplicates dropped / events held back by the state machine. */
  get stats(): { resent: number; duplicates: number; heldBack: number; logPosition: number } {
    return { resent: this.resent, duplicates: this.state.duplicates, heldBack: this.state.heldBack, logPosition: this.state.seq };
  }

  /** This member's incarnation (its ZooKeeper session id, hex). */
  get incarnation(): string {
    return this.inc;
  }

  private log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.opts.log?.(level, `zookeeper driver: ${msg}`);
  }

  async join(self: Member, onEvent: (ev: ClusterEvent) => void): Promise<void> {
    if (this.phase === 'joining' || this.phase === 'joined' || this.phase === 'leaving') throw new Error('zookeeper driver: already joined');
    this.teardown();
    const gen = this.gen;
    this.phase = 'joining';
    this.self = self;
    this.onEvent = onEvent;
    this.state = new ReplicatedState((m) => this.log('warn', m));
    this.delivering = false;
    this.counter = 1;
    this.memberNames = null;
    this.leavesSent.clear();
    this.retry = [];
    this.reportedPos = -2;
    this.resent = 0;
    const joined = new Promise<void>((resolve, reject) => (this.joinedWaiter = { resolve, reject }));
    joined.catch(() => undefined);
    try {
      const client = await this.connect(gen);
      await ensurePath(client, this.queuePath);
      await ensurePath(client, this.memberDir);
      await ensurePath(client, this.blobDir);
      this.check(gen);
      this.inc = client.getSessionId().toString('hex');
      await this.createMemberZnode(client, self.id, gen);
      // Load the newest snapshot *after* our member znode exists (its pos -1 stops log trimming), and
      // before our join is in the log, so the snapshot is older than our join.
      await this.loadSnapshot(client);
      this.check(gen);
      this.startWatching(gen);
      await this.append({ t: 'join', id: self.id, inc: this.inc, node: self.node });
      await joined;
    } catch (err) {
      if (this.gen === gen) {
        this.teardown();
        this.phase = 'idle';
      }
      throw err instanceof Error ? err : new ZkError(err);
    }
  }

  async leave(): Promise<void> {
    if (this.phase !== 'joining' && this.phase !== 'joined') {
      this.teardown();
      if (this.phase !== 'lost') this.phase = 'idle';
      return;
    }
    this.phase = 'leaving';
    this.onEvent = null;
    const client = this.client;
    const self = this.self!;
    if (client) {
      const bounded = <T>(p: Promise<T>) => Promise.race([p.catch(() => undefined), sleep(2000)]);
      await bounded(this.append({ t: 'leave', id: self.id, inc: this.inc }));
      await bounded(remove(client, this.memberPath(self.id)));
    }
    this.gen++; // the close below is not a disconnection to react to
    await this.closeClient();
    this.teardown();
    this.phase = 'idle';
  }

  notify(msg: Uint8Array): void {
    const self = this.requireSelf();
    this.send({ t: 'notify', id: self.id, inc: this.inc, c: this.counter++, msg });
  }

  block(): number {
    const self = this.requireSelf();
    const ticket = this.nextTicket++;
    this.send({ t: 'block', id: self.id, inc: this.inc, c: this.counter++, ticket });
    return ticket;
  }

  unblock(msg: Uint8Array): void {
    const self = this.requireSelf();
    this.send({ t: 'unblock', id: self.id, inc: this.inc, c: this.counter++, msg });
  }

  /** Test hook: closes the session without a leave, as if the process had died. */
  simulateCrash(): void {
    this.onEvent = null;
    this.teardown(); // closes the session: the server drops its ephemeral znode, no leave is appended
    this.phase = 'idle';
  }

  // ---- connection -------------------------------------------------------------------------------

  private check(gen: number): void {
    if (this.gen !== gen) throw new Error('zookeeper driver: session ended');
  }

  private requireSelf(): Member {
    if (this.phase !== 'joined' || !this.self) {
      throw new Error(this.phase === 'lost' ? 'zookeeper driver: session lost' : 'zookeeper driver: not joined');
    }
    return this.self;
  }

  private async connect(gen: number): Promise<Client> {
    const client = createZkClient(this.opts.connect, this.sessionTimeoutMs);
    this.client = client;
    let connectedOnce = false;
    const up = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`zookeeper driver: cannot connect to ${this.opts.connect} within ${this.opts.connectTimeoutMs ?? 10_000} ms`)), this.opts.connectTimeoutMs ?? 10_000);
      client.on('state', (s) => {
        if (this.gen !== gen) return;
        if (s === State.SYNC_CONNECTED) {
          if (!connectedOnce) {
            connectedOnce = true;
            clearTimeout(t);
            resolve();
          } else this.onReconnected(gen);
        } else if (s === State.EXPIRED) {
          clearTimeout(t);
          reject(new Error('zookeeper driver: session expired while connecting'));
          this.lose(new Error('zookeeper session expired'));
        } else if (s === State.AUTH_FAILED) {
          clearTimeout(t);
          reject(new Error('zookeeper driver: authentication failed'));
          this.lose(new Error('zookeeper authentication failed'));
        } else if (s === State.DISCONNECTED) {
          this.log('warn', `disconnected from ${this.opts.connect}; reconnecting`);
        }
      });
    });
    client.connect();
    try {
      await up;
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  private onReconnected(gen: number): void {
    if (this.gen !== gen) return;
    this.log('info', 'reconnected (same session)');
    const again = this.retry.splice(0);
    this.resent += again.length;
    for (const o of again) this.create(o, gen);
    this.kickQueue(gen);
    this.kickMembers(gen);
  }

  /** Ends the session's local state: timers, watches (via gen), the client. */
  private teardown(): void {
    this.gen++;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const c = this.client;
    this.client = null;
    c?.close();
    this.pumping = false;
    this.pumpAgain = false;
    this.memberRefreshing = false;
    this.delivering = false;
    const w = this.joinedWaiter;
    this.joinedWaiter = null;
    w?.reject(new Error('zookeeper driver: session ended before the join completed'));
    for (const o of this.retry.splice(0)) o.reject(new Error('zookeeper driver: session ended'));
  }

  private async closeClient(): Promise<void> {
    const c = this.client;
    if (!c) return;
    const gone = new Promise<void>((r) => {
      c.once('disconnected', () => r());
      setTimeout(r, 1000);
    });
    this.client = null;
    c.close();
    await gone;
  }

  private lose(err: Error): void {
    if (this.phase !== 'joining' && this.phase !== 'joined') return;
    this.log('error', `${err.message}: this node is no longer a member`);
    this.teardown();
    this.phase = 'lost';
    this.onEvent = null;
    if (this.opts.onSessionLost) this.opts.onSessionLost(err);
  }

  private async createMemberZnode(client: Client, id: string, gen: number): Promise<void> {
    const path = this.memberPath(id);
    const data = Buffer.from(JSON.stringify({ inc: this.inc, pos: -1 }));
    const deadline = Date.now() + Math.max(10_000, 3 * this.negotiatedTimeoutMs);
    let warned = false;
    for (;;) {
      try {
        await create(client, path, data, CreateMode.EPHEMERAL);
        return;
      } catch (err) {
        if (code(err) !== Exception.NODE_EXISTS) throw err;
      }
      // A previous incarnation's session has not expired yet (a quick restart): wait for it.
      if (!warned) {
        this.log('warn', `a member znode for ${id} still exists (previous session not expired yet); waiting`);
        warned = true;
      }
      if (Date.now() > deadline) throw new Error(`zookeeper driver: a node ${id} is already a member`);
      await sleep(200);
      this.check(gen);
    }
  }

  private async loadSnapshot(client: Client): Promise<void> {
    try {
      const { data } = await getData(client, this.snapshotPath);
      if (data && data.length > 0) {
        const img = packr.unpack(data) as StateImage;
        this.state = ReplicatedState.fromImage(img, (m) => this.log('warn', m));
      }
    } catch (err) {
      if (code(err) !== Exception.NO_NODE) throw err;
    }
  }

  private startWatching(gen: number): void {
    this.kickQueue(gen);
    this.kickMembers(gen);
    this.lastTick = performance.now();
    // A frozen process (SIGSTOP, a debugger, a stalled VM) sent no heartbeats: once the pause exceeds the
    // session timeout the server has expired (or is about to expire) the session, so stop at once rather
    // than serve on a stale membership until the client notices.
    this.timers.push(
      setInterval(() => {
        const now = performance.now();
        const gap = now - this.lastTick;
        this.lastTick = now;
        if (this.gen === gen && gap > this.negotiatedTimeoutMs) this.lose(new Error(`process was frozen for ${Math.round(gap)} ms, longer than the ${this.negotiatedTimeoutMs} ms session timeout`));
      }, 100),
    );
    this.timers.push(setInterval(() => void this.reportPosition(gen), 500));
    this.timers.push(setInterval(() => void this.housekeeping(gen), this.opts.gcIntervalMs ?? 2000));
    for (const t of this.timers) t.unref();
  }

  // ---- appending --------------------------------------------------------------------------------

  private send(ev: QueueEvent): void {
    this.append(ev).catch((err) => this.log('warn', `dropping ${ev.t}: ${(err as Error).message}`));
  }

  private append(ev: QueueEvent): Promise<number> {
    return new Promise<number>((resolve, reject) => this.create({ ev, resolve, reject }, this.gen));
  }

  private create(o: Outgoing, gen: number): void {
    const client = this.client;
    if (!client || this.gen !== gen) {
      o.reject(new Error('zookeeper driver: not connected'));
      return;
    }
    const data = packr.pack(o.ev);
    if (data.length > BLOB_THRESHOLD) {
      void this.createWithBlob(o, data, gen);
      return;
    }
    client.create(`${this.queuePath}/e-`, data, CreateMode.PERSISTENT_SEQUENTIAL, (err, path) => this.created(o, gen, err, path));
  }

  private async createWithBlob(o: Outgoing, data: Buffer, gen: number): Promise<void> {
    const client = this.client!;
    const key = `${this.inc}.${this.blobSeq++}`;
    const parts = Math.ceil(data.length / BLOB_PART);
    try {
      await Promise.all(
        Array.from({ length: parts }, (_, i) =>
          create(client, `${this.blobDir}/${key}-${i}`, data.subarray(i * BLOB_PART, (i + 1) * BLOB_PART), CreateMode.PERSISTENT).catch((err) => {
            if (code(err) !== Exception.NODE_EXISTS) throw err;
          }),
        ),
      );
    } catch (err) {
      this.created(o, gen, err, '');
      return;
    }
    if (this.gen !== gen) return o.reject(new Error('zookeeper driver: session ended'));
    client.create(`${this.queuePath}/b.${key}.${parts}-`, Buffer.alloc(0), CreateMode.PERSISTENT_SEQUENTIAL, (err, path) => this.created(o, gen, err, path));
  }

  private created(o: Outgoing, gen: number, err: unknown, path: string): void {
    if (!err) {
      o.resolve(seqOf(path));
      return;
    }
    if (this.gen !== gen) {
      o.reject(new Error('zookeeper driver: session ended'));
      return;
    }
    const c = code(err);
    if (c === Exception.CONNECTION_LOSS || c === Exception.OPERATION_TIMEOUT) {
      // Maybe created, maybe not: send again once reconnected; a duplicate is dropped by the state machine.
      // Never resend from inside this callback: the client fails its pending requests before it marks
      // itself disconnected, so a synchronous resend would be failed again, forever.
      this.retry.push(o);
      if (this.retry.length === 1) {
        setTimeout(() => {
          if (this.gen === gen && this.retry.length > 0 && this.client?.getState() === State.SYNC_CONNECTED) this.onReconnected(gen);
        }, 500).unref();
      }
      return;
    }
    o.reject(err instanceof Error ? err : new ZkError(err));
    // Anything else (the session expired, the namespace was deleted under us...) leaves a hole in this
    // sender's order that nothing would fill: stop rather than stall.
    this.lose(new Error(c === Exception.SESSION_EXPIRED ? 'zookeeper session expired' : `appending to the event log failed: ${String(err)}`));
  }

  // ---- reading the log --------------------------------------------------------------------------

  private kickQueue(gen: number): void {
    if (this.gen !== gen) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    void this.pump(gen);
  }

  private queueWatcher = (): void => this.kickQueue(this.gen);

  private async pump(gen: number): Promise<void> {
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        const client = this.client;
        if (!client) return;
        const names = await getChildren(client, this.queuePath, this.queueWatcher);
        if (this.gen !== gen) return;
        const fresh = names
          .map((n) => ({ n, s: seqOf(n) }))
          .filter((x) => x.s > this.state.seq)
          .sort((a, b) => a.s - b.s);
        const events = await Promise.all(fresh.map((x) => this.readEvent(client, x.n)));
        if (this.gen !== gen) return;
        for (let i = 0; i < fresh.length; i++) {
          const ev = events[i]!;
          this.state.apply(fresh[i]!.s, ev, (o) => this.output(o));
          if (this.gen !== gen) return;
        }
        if (fresh.length > 0) this.evaluateLeaves(gen);
      } while (this.pumpAgain && this.gen === gen);
    } catch (err) {
      if (this.gen !== gen) return;
      const c = code(err);
      if (c === Exception.CONNECTION_LOSS || c === Exception.OPERATION_TIMEOUT) return; // onReconnected pumps again
      if (c === Exception.SESSION_EXPIRED) return this.lose(new Error('zookeeper session expired'));
      this.lose(new Error(`reading the event log failed: ${(err as Error)?.message ?? err}`));
    } finally {
      if (this.gen === gen) this.pumping = false;
    }
  }

  private async readEvent(client: Client, name: string): Promise<QueueEvent> {
    let raw: Buffer;
    if (name.startsWith('b.')) {
      const [, inc, n, partsAndSeq] = name.split('.');
      const parts = Number(partsAndSeq!.slice(0, partsAndSeq!.lastIndexOf('-')));
      const key = `${inc}.${n}`;
      const chunks = await Promise.all(Array.from({ length: parts }, (_, i) => getData(client, `${this.blobDir}/${key}-${i}`)));
      raw = Buffer.concat(chunks.map((c) => c.data ?? Buffer.alloc(0)));
    } else {
      raw = (await getData(client, `${this.queuePath}/${name}`)).data ?? Buffer.alloc(0);
    }
    const ev = packr.unpack(raw) as QueueEvent;
    if (ev.t === 'join') return { ...ev, node: new Uint8Array(ev.node) };
    if (ev.t === 'notify' || ev.t === 'unblock') return { ...ev, msg: new Uint8Array(ev.msg) };
    return ev;
  }

  private emit(ev: ClusterEvent): void {
    try {
      this.onEvent?.(ev);
    } catch (err) {
      this.log('error', `event handler threw on ${ev.type}: ${(err as Error)?.stack ?? err}`);
    }
  }

  private output(o: StateOutput): void {
    const self = this.self;
    if (!self) return;
    if (!this.delivering) {
      // Replaying history before our own join: deliver nothing until our join itself.
      if (o.type === 'join' && o.member.id === self.id && this.state.find(self.id, this.inc)) {
        this.delivering = true;
        this.phase = 'joined';
        this.emit(o);
        const w = this.joinedWaiter;
        this.joinedWaiter = null;
        w?.resolve();
      }
      return;
    }
    if (o.type === 'grant') {
      if (o.id === self.id && o.inc === this.inc) this.emit({ type: 'block-granted', ticket: o.ticket });
      return;
    }
    if (o.type === 'leave') {
      for (const k of [...this.leavesSent]) if (!this.state.find(k.slice(0, k.lastIndexOf('@')), k.slice(k.lastIndexOf('@') + 1))) this.leavesSent.delete(k);
    }
    this.emit(o);
  }

  // ---- member znodes: who is alive --------------------------------------------------------------

  private kickMembers(gen: number): void {
    if (this.gen !== gen) return;
    if (this.memberRefreshing) {
      this.memberAgain = true;
      return;
    }
    void this.refreshMembers(gen);
  }

  private memberWatcher = (): void => this.kickMembers(this.gen);

  private async refreshMembers(gen: number): Promise<void> {
    this.memberRefreshing = true;
    try {
      do {
        this.memberAgain = false;
        const client = this.client;
        if (!client) return;
        const names = await getChildren(client, this.memberDir, this.memberWatcher);
        if (this.gen !== gen) return;
        this.memberNames = new Set(names);
        this.evaluateLeaves(gen);
      } while (this.memberAgain && this.gen === gen);
    } catch (err) {
      if (this.gen !== gen) return;
      const c = code(err);
      if (c === Exception.SESSION_EXPIRED) this.lose(new Error('zookeeper session expired'));
      // connection loss: onReconnected refreshes again
    } finally {
      if (this.gen === gen) this.memberRefreshing = false;
    }
  }

  /** The first member (in join order) whose znode exists; it appends the leaves and trims the log. */
  private isLeader(): boolean {
    const present = this.memberNames;
    const self = this.self;
    if (!present || !self || !this.delivering) return false;
    const first = this.state.members.find((m) => present.has(encodeURIComponent(m.id)));
    return first?.id === self.id && first.inc === this.inc;
  }

  private evaluateLeaves(gen: number): void {
    if (this.gen !== gen || !this.isLeader()) return;
    const present = this.memberNames!;
    for (const m of this.state.members) {
      if (present.has(encodeURIComponent(m.id))) continue;
      const key = `${m.id}@${m.inc}`;
      if (this.leavesSent.has(key)) continue;
      this.leavesSent.add(key);
      this.log('info', `member ${m.id} is gone (its session ended): announcing its leave`);
      this.send({ t: 'leave', id: m.id, inc: m.inc });
    }
  }

  // ---- log trimming -----------------------------------------------------------------------------

  /** Publishes how far this member has applied the log (the leader trims below every member's position). */
  private async reportPosition(gen: number): Promise<void> {
    const client = this.client;
    const self = this.self;
    if (!client || !self || !this.delivering || this.gen !== gen) return;
    const pos = this.state.seq;
    if (pos === this.reportedPos) return;
    try {
      await zkCall<Stat>((cb) => client.setData(this.memberPath(self.id), Buffer.from(JSON.stringify({ inc: this.inc, pos })), -1, cb));
      this.reportedPos = pos;
    } catch {
      /* retried on the next tick; NO_NODE means we are being removed */
    }
  }

  private async housekeeping(gen: number): Promise<void> {
    const client = this.client;
    if (!client || this.gen !== gen || this.gcRunning || !this.isLeader()) return;
    this.gcRunning = true;
    try {
      // 1. Snapshot (monotonic: never replaces a newer one).
      let snapSeq = -1;
      let version = -1;
      try {
        const { data, stat } = await getData(client, this.snapshotPath);
        version = stat.version;
        if (data && data.length > 0) snapSeq = (packr.unpack(data) as StateImage).seq;
      } catch (err) {
        if (code(err) !== Exception.NO_NODE) throw err;
      }
      if (this.gen !== gen) return;
      if (this.state.seq > snapSeq) {
        const img = packr.pack(this.state.image());
        if (img.length > BLOB_THRESHOLD) {
          this.log('warn', `state snapshot is ${img.length} bytes, too big for a znode; log trimming is off`);
          return;
        }
        const mySeq = this.state.seq;
        try {
          if (version < 0) await create(client, this.snapshotPath, img, CreateMode.PERSISTENT);
          else await zkCall<Stat>((cb) => client.setData(this.snapshotPath, img, version, cb));
          snapSeq = mySeq;
        } catch (err) {
          const c = code(err);
          if (c === Exception.BAD_VERSION || c === Exception.NODE_EXISTS) return; // someone else wrote one: next round
          throw err;
        }
      }
      // 2. The lowest position any member (or joiner, pos -1) still needs.
      const names = await getChildren(client, this.memberDir);
      let low = snapSeq;
      for (const n of names) {
        try {
          const { data } = await getData(client, `${this.memberDir}/${n}`);
          const pos = Number((JSON.parse(String(data ?? '{}')) as { pos?: number }).pos ?? -1);
          low = Math.min(low, pos);
        } catch (err) {
          if (code(err) !== Exception.NO_NODE) throw err; // a member that just left needs nothing
        }
      }
      if (low < 0) return;
      // 3. Trim the log up to there (with the blobs of big events).
      const queue = await getChildren(client, this.queuePath);
      const old = queue.filter((n) => seqOf(n) <= low);
      if (old.length === 0) return;
      const ignoreMissing = (p: Promise<void>) =>
        p.catch((err) => {
          if (code(err) !== Exception.NO_NODE) throw err;
        });
      await Promise.all(
        old.map(async (n) => {
          await ignoreMissing(remove(client, `${this.queuePath}/${n}`));
          if (n.startsWith('b.')) {
            const [, inc, k, partsAndSeq] = n.split('.');
            const parts = Number(partsAndSeq!.slice(0, partsAndSeq!.lastIndexOf('-')));
            await Promise.all(Array.from({ length: parts }, (_, i) => ignoreMissing(remove(client, `${this.blobDir}/${inc}.${k}-${i}`))));
          }
        }),
      );
    } catch (err) {
      if (this.gen === gen) this.log('warn', `housekeeping failed: ${(err as Error)?.message ?? err}`);
    } finally {
      this.gcRunning = false;
    }
  }
}

/**
 * A node-zookeeper-client client that survives a connection cut in the middle of a reply. The library
 * keeps the partial reply (`pendingBuffer`) across reconnects and parses it in front of the next
 * connection's first bytes; that throws out of a socket handler and kills the process (seen once in CI:
 * "offset: 4 is out of buffer range" after a proxy cut). Each connection attempt starts empty here.
 */
export function createZkClient(connect: string, sessionTimeoutMs: number): Client {
  const client = zookeeper.createClient(connect, { sessionTimeout: sessionTimeoutMs, spinDelay: 200, retries: 0 });
  const manager = (client as unknown as { connectionManager?: { pendingBuffer: Buffer | null; connect(): void } }).connectionManager;
  if (manager && typeof manager.connect === 'function' && 'pendingBuffer' in manager) {
    const connectOnce = manager.connect;
    manager.connect = function (this: typeof manager) {
      this!.pendingBuffer = null;
      return connectOnce.call(this);
    };
  }
  return client;
}

/** Connects a throwaway client (for tests and tools); the caller closes it. */
export async function connectClient(connect: string, sessionTimeoutMs = DEFAULT_ZK_SESSION_TIMEOUT_MS, timeoutMs = 10_000): Promise<Client> {
  const client = createZkClient(connect, sessionTimeoutMs);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      client.close();
      reject(new Error(`cannot connect to zookeeper at ${connect} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.once('connected', () => {
      clearTimeout(t);
      resolve();
    });
    client.connect();
  });
  return client;
}

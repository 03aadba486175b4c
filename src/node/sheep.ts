// A sheep: one storage node. It serves the wire protocol, stores objects, routes gateway requests to
// replicas, and applies totally ordered cluster events (membership, format, VDI changes) in order.
// VDI lifecycle and locks live in VDI actors; this class keeps a projection of their state for the
// I/O fast path, refreshed from each actor's reply before the next cluster event is applied.
import type { Server } from 'node:net';
import { Packr } from 'msgpackr';
import { ActorSystem } from '../runtime/system.js';
import { HashPool } from '../runtime/hash-pool.js';
import type { ClusterDriver, ClusterEvent, Member } from '../cluster/driver.js';
import { ClusterFlag, ClusterStatus, Flag, isForceOp, Op, Res, SD_DEFAULT_BLOCK_SIZE_SHIFT, SD_INODE_DATA_VDI_ID_OFFSET, SD_INODE_HEADER_SIZE, SD_INODE_SIZE, SD_PROTO_VER, SD_SHEEP_PROTO_VER } from '../proto/constants.js';
import { decodeReqHeader, decodeResponse, encodeRequest, encodeResponse, readObjReq, type ReqInit, type RspInit } from '../proto/header.js';
import type { SheepResponse } from '../client/sheep-client.js';
import { decodeSdNode, encodeSdNode, sortNodes, type SdNode } from '../proto/structs.js';
import { autoVnodes, buildVnodeRing, placeObject, toRingNode, type VnodeRing } from '../placement/ring.js';
import { isDataObj, isVdiObj, isVmstateObj, oidToVid, objectSize } from '../proto/oid.js';
import { decodeInodeHeader } from '../proto/structs.js';
import { StoreError } from '../store/object-store.js';
import { MultiDiskStore, type MdChange } from '../store/md.js';
import type { Store } from '../store/store.js';
import { realEnv, type Hasher, type NodeClock, type NodeEnv, type NodeMeta, type PeerTransport } from './env.js';
import { VDI_KIND, type VdiInput, type VdiSummary } from '../actors/vdi/machine.js';
import { startServer, stopServer, type IncomingRequest, type Reply } from './server.js';
import { UNFORMATTED, VdiBitmap, type ClusterFormat, type StatusCode } from './cluster-state.js';
import { handleRequest } from './ops.js';
import { RecoveryWork } from './recovery.js';
import { measureCapacity, spaceVaried, type Capacity } from './capacity.js';
import { deadFamily } from './vid-recycle.js';
import { RECOVERY_KIND } from '../actors/recovery/machine.js';
import type { Services } from '../runtime/actor-host.js';
import { EcPool } from '../ec/ec-pool.js';
import { ecFromPolicy } from '../ec/policy.js';
import { isStripKey, keyOid, keyStripIndex, stripKey } from '../store/strip-key.js';

export interface SheepOptions {
  readonly dir: string;
  /** Object disks (sheep DIR,DISK1,DISK2...); none: objects in DIR/obj. */
  readonly disks?: readonly string[];
  readonly port: number;
  /** Address other nodes and clients reach this node at. */
  readonly addr: string;
  /** Address to listen on. */
  readonly bind: string;
  readonly zone: number;
  readonly gatewayOnly: boolean;
  readonly noSync: boolean;
  readonly vnodes?: number;
  readonly driver: ClusterDriver;
  /** Shared actor system (in-process clusters share one); otherwise the sheep starts its own. */
  readonly actors?: ActorSystem;
  readonly actorWorkers?: number;
  /** Record every VDI actor input to this event log (sheep-actors replay FILE checks it). */
  readonly record?: string;
  readonly hashPool?: Hasher;
  /** Clock, disk, peers, logging: production by default; the simulator injects its own. */
  readonly env?: NodeEnv;
  readonly logLevel?: number;
  /** Where sheep.log goes (sheep -l dir=PATH); default the store directory. */
  readonly logDir?: string;
  readonly onStop?: (why: string) => void;
}

/** Messages broadcast through the driver (msgpack). `origin`/`seq` let the originator match its own. */
export type ClusterMsg =
  | { op: 'make_fs'; origin: string; seq: number; format: ClusterFormat }
  | { op: 'new_vdi'; origin: string; seq: number; vdi: VdiInput; snapshotOf: number }
  | { op: 'del_vdi'; origin: string; seq: number; vid: number }
  | { op: 'lock'; origin: string; seq: number; vid: number; owner: string; shared: boolean }
  | { op: 'release'; origin: string; seq: number; vid: number; owner: string }
  | { op: 'shutdown'; origin: string; seq: number }
  | { op: 'hello'; origin: string; seq: number; ctime: string; epoch: number; epochs: Array<[number, Uint8Array[], string]> }
  | { op: 'resume'; origin: string; seq: number; force: boolean; epoch: number; epochs: Array<[number, Uint8Array[], string]>; vdis: VdiInput[]; deleted: number[] }
  | { op: 'recovery'; origin: string; seq: number; enable: boolean }
  | { op: 'alter_copy'; origin: string; seq: number; vid: number; copies: number; copyPolicy: number }
  | { op: 'set_vnodes'; origin: string; seq: number; node: string; vnodes: number }
  | { op: 'reweight'; origin: string; seq: number }
  | { op: 'set_space'; origin: string; seq: number; node: string; space: string }
  | { op: 'state'; origin: string; seq: number; to: string; since: number; state: TransferState };

export interface TransferState {
  status: StatusCode;
  format: ClusterFormat;
  epoch: number;
  epochs: Array<[number, Uint8Array[], string]>;
  inUse: number[];
  deleted: number[];
  vdis: VdiSummary[];
  /** While waiting after a restart: the newest epoch history reported so far. */
  waitBest: { epoch: number; epochs: Array<[number, Uint8Array[], string]> } | null;
  /** Vnodes changed by `dog node vnodes set`, per node id (the driver still reports the join-time value). */
  vnodes: Array<[string, number]>;
  /** Space re-announced by `dog cluster reweight`, per node id (bigint as decimal text). */
  spaces?: Array<[string, string]>;
}

const packr = new Packr({ useRecords: false, int64AsType: 'bigint' } as never);

const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

export class Sheep {
  readonly store: Store;
  readonly peers: PeerTransport;
  readonly clock: NodeClock;
  readonly meta: NodeMeta;
  readonly env: NodeEnv;
  readonly inUse = new VdiBitmap();
  readonly deleted = new VdiBitmap();
  readonly vdis = new Map<number, VdiSummary>();
  readonly epochs = new Map<number, { nodes: SdNode[]; time: bigint }>();
  readonly self: SdNode;
  readonly selfId: string;
  status: StatusCode = ClusterStatus.WAIT;
  format: ClusterFormat = { ...UNFORMATTED };
  epoch = 0;
  members: SdNode[] = [];
  ring: VnodeRing | null = null;
  logLevel: number;
  actors!: ActorSystem;
  hashPool!: Hasher;
  private ownsActors = false;
  private ownsHashPool = false;
  private server: Server | null = null;
  private readonly events: ClusterEvent[] = [];
  private processing = false;
  private joined = false;
  private awaitingState = false;
  private readonly bufferedWhileJoining: ClusterEvent[] = [];
  private seq = 1;
  private readonly waiters = new Map<number, (result: unknown) => void>();
  private readonly blockWaiters = new Map<number, () => void>();
  private stopped = false;
  readonly stats = { requests: 0 };
  /** Sheepdog's struct sd_stat request counters, in its order (dog node stat). */
  readonly reqStats = {
    gwayActive: 0, peerActive: 0, gwayTotal: 0, peerTotal: 0, gwayRx: 0, gwayTx: 0, peerRx: 0, peerTx: 0,
    gwayRemove: 0, gwayRead: 0, gwayWrite: 0, gwayFlush: 0, peerRemove: 0, peerRead: 0, peerWrite: 0,
  };
  readonly recovery = new RecoveryWork(this);
  /** Recovery settings: `dog cluster recover enable/disable`, throttling (`-R max=`). */
  recoveryEnabled = true;
  recoveryMaxInFlight = 8;
  private recoveryActorEpoch = 0;
  private recoveryActorId = '';
  private recoveryReruns = 0;
  /** Formats this process applied (recovery job addresses must not repeat when epochs restart). */
  private formats = 0;
  /** The epoch history this node had on disk at start (what it says in its hello while waiting). */
  private diskEpochs = new Map<number, { nodes: SdNode[]; time: bigint }>();
  /** While waiting for the last members after a restart: the newest epoch history any member reported. */
  private waitBest: { epoch: number; epochs: Map<number, { nodes: SdNode[]; time: bigint }> } | null = null;
  /** Member ids in join order, as the driver reports them: the first is the oldest (the decider). */
  private joinOrder: string[] = [];
  /** Joiners that have not received their state yet, with how many events we applied since their join. */
  private readonly joinersAwaitingState = new Map<string, { count: number; owner: string }>();
  private resumeSent = false;
  /** The EIO from this node's own store that made it leave the cluster ("disk error"), if any. */
  diskError: StoreError | null = null;
  /**
   * Vnodes set with SET_VNODES, per member id. Members come from the driver, which keeps the sd_node each
   * node announced at its join, so every rebuild of the ring applies these on top; a node that leaves
   * comes back with its own (command line) vnodes, as a restarted Sheepdog node does.
   */
  private readonly vnodeOverrides = new Map<string, number>();
  /** Space re-announced by REWEIGHT, per member id: like vnodeOverrides, on top of the join-time sd_node. */
  private readonly spaceOverrides = new Map<string, bigint>();
  /** Removal of a recycled VID family's local objects, which peer creates of a reused vid wait for. */
  vidGc: Promise<void> | null = null;

  constructor(readonly opts: SheepOptions) {
    this.env = opts.env ?? realEnv(opts.dir, { noSync: opts.noSync, logDir: opts.logDir, disks: opts.disks });
    this.store = this.env.store;
    this.peers = this.env.peers;
    this.clock = this.env.clock;
    this.meta = this.env.meta;
    this.store.onEio = (err) => this.onDiskError(err);
    if (this.store instanceof MultiDiskStore) {
      this.store.log = (level, msg) => this.log(level, msg);
      this.store.onDisksChanged = (change) => this.onDisksChanged(change);
    }
    this.self = {
      nid: { addr: opts.addr, port: opts.port, ioAddr: '', ioPort: 0 },
      nrVnodes: opts.gatewayOnly ? 0 : (opts.vnodes ?? 128),
      zone: opts.zone,
      space: 0n,
    };
    this.selfId = `${opts.addr}:${opts.port}`;
    this.logLevel = opts.logLevel ?? 6;
    // Before format a node announces its vnode strategy (dog cluster format checks it on every node).
    if (!opts.vnodes) this.format.flags |= ClusterFlag.AUTO_VNODES;
  }

  /** Joined the membership but still waiting for the cluster state from a member. */
  get joining(): boolean {
    return this.awaitingState;
  }

  log(level: 'info' | 'warn' | 'error' | 'debug', msg: string): void {
    const num = { error: 3, warn: 4, info: 6, debug: 7 }[level];
    if (num > this.logLevel) return;
    const when = this.env.listen ? new Date().toISOString() : `[t=${(this.clock.now() / 1000).toFixed(3)}s]`;
    this.env.log(`${when} ${LOG_LEVELS[num]} [${this.selfId}] ${msg}\n`);
  }

  async start(): Promise<void> {
    await this.store.init();
    this.actors =
      this.opts.actors ??
      (await ActorSystem.start({ workers: this.opts.actorWorkers ?? 1, kindModules: [new URL('../actors/index.js', import.meta.url).href], record: this.opts.record }));
    this.ownsActors = !this.opts.actors;
    this.hashPool = this.opts.hashPool ?? this.env.hasher ?? new HashPool(1);
    this.ownsHashPool = !this.opts.hashPool && !this.env.hasher;
    const config = await this.meta.readConfig();
    if (config && config.ctime !== 0n) {
      this.format = { ctime: config.ctime, copies: config.copies, copyPolicy: config.copyPolicy, flags: config.flags, blockSizeShift: config.blockSizeShift, store: config.store || 'plain' };
      this.store.setLayout(this.format.store);
      for (const [e, v] of await this.meta.readEpochFiles()) this.epochs.set(e, v);
      this.epoch = Math.max(0, ...this.epochs.keys());
      this.diskEpochs = new Map(this.epochs);
    }
    registerRecoveryNode(this);
    this.actors.provide(recoveryServices(this.actors));
    (this.self as { space: bigint }).space = this.opts.gatewayOnly ? 0n : (await this.capacity()).size;
    if (this.env.listen) this.server = await startServer(this.opts.port, this.opts.bind, {
      maxDataLength: () => Math.max(SD_INODE_SIZE, 2 ** this.maxBlockSizeShift()),
      handle: (req) => this.handle(req),
      log: (level, msg) => this.log(level, msg),
    });
    await this.opts.driver.join({ id: this.selfId, node: encodeSdNode(this.self) }, (ev) => this.onClusterEvent(ev));
    this.log('info', `sheep started on ${this.opts.bind}:${this.opts.port} (store ${this.opts.dir})`);
  }

  /**
   * This node's disk returned EIO (on any path: gateway, peer op, recovery, cluster event): it leaves the
   * cluster, so the others get a leave, a new epoch, and keep serving from the remaining replicas. Until it
   * is gone, peer requests get NETWORK_ERROR, which makes the gateway retry (reads try the next replica,
   * writes wait for the new epoch), as Sheepdog's md_handle_eio does ("fool the requester to retry").
   */
  private onDiskError(err: StoreError): void {
    if (this.diskError || this.stopped) return;
    this.diskError = err;
    this.log('error', `disk error: ${err.message}: leaving the cluster`);
    this.clock.defer(() => void this.stop('disk error'));
  }

  /**
   * A disk was plugged, unplugged or failed (multi-disk): the node stays, and re-runs recovery at the same
   * epoch (md.c kick_recover), which pulls from the peers the objects the lost disk held. Synchronous, so
   * requests after the change wait for the new object list.
   */
  private onDisksChanged(change: MdChange): void {
    if (this.stopped) return;
    this.log('info', `md: ${change.kind} ${change.paths.join(',')}: recovering objects at epoch ${this.epoch}`);
    if (this.status === ClusterStatus.OK) this.startRecovery();
  }

  /** This node's store capacity now (the capacity file is read only by a real node, not in the simulator). */
  capacity(): Promise<Capacity> {
    return measureCapacity(this.store, this.env.listen ? this.opts.dir : undefined);
  }

  /** Stops serving; `reason` goes to the log. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log('info', `sheep stopping: ${reason}`);
    this.recovery.stop();
    unregisterRecoveryNode(this);
    if (this.server) await stopServer(this.server);
    await this.opts.driver.leave().catch(() => undefined);
    this.peers.closeAll();
    await this.store.close();
    if (this.ownsActors) await this.actors.shutdown();
    if (this.ownsHashPool) await this.hashPool.close();
    await this.ecPoolInstance?.close().catch(() => undefined);
    this.opts.onStop?.(reason);
  }

  closeListener(): void {
    this.server?.close();
  }

  maxBlockSizeShift(): number {
    let m = this.format.blockSizeShift || SD_DEFAULT_BLOCK_SIZE_SHIFT;
    for (const v of this.vdis.values()) if (v.blockSizeShift > m) m = v.blockSizeShift;
    return m;
  }

  /** Object size of an oid, using its VDI's block size for data objects. */
  objectSizeOf(oid: bigint): number {
    const vdi = this.vdis.get(oidToVid(oid));
    return objectSize(oid, vdi?.blockSizeShift || this.format.blockSizeShift || SD_DEFAULT_BLOCK_SIZE_SHIFT);
  }

  /**
   * {d, p} when `oid` is a data or vmstate object of an erasure-coded VDI. Sheepdog's is_erasure_obj()
   * codes all but inode and btree objects; here ledger and attr objects stay replicated too (d+p copies):
   * an attr object (66,320 bytes) is no whole number of 512-byte stripes. `requestedPolicy` (the request's
   * copy_policy) decides for a VDI this node does not know.
   */
  ecOf(oid: bigint, requestedPolicy = 0): { d: number; p: number } | null {
    if (!isDataObj(oid) && !isVmstateObj(oid)) return null;
    const vdi = this.vdis.get(oidToVid(oid));
    const policy = vdi ? vdi.copyPolicy : requestedPolicy;
    return policy ? ecFromPolicy(policy) : null;
  }

  /** The store key a peer request for `oid` names: the strip `ecIndex` of an EC object, else the oid. */
  storeKeyOf(oid: bigint, ecIndex: number, requestedPolicy = 0): bigint {
    const ec = this.ecOf(oid, requestedPolicy);
    if (!ec) return oid;
    if (ecIndex >= ec.d + ec.p) throw new SheepError(Res.INVALID_PARMS, `ec_index ${ecIndex} of a ${ec.d}:${ec.p} object`);
    return stripKey(oid, ecIndex);
  }

  /** Bytes of the file a store key names: the object size, or object size / d for an EC strip. */
  storeSizeOf(key: bigint): number {
    const size = this.objectSizeOf(keyOid(key));
    if (!isStripKey(key)) return size;
    const ec = this.ecOf(keyOid(key));
    if (!ec) throw new SheepError(Res.INVALID_PARMS, `strip ${keyStripIndex(key)} of ${keyOid(key).toString(16)}, which is not erasure coded`);
    return size / ec.d;
  }

  /**
   * The key this node should hold for `oid` at the current epoch (null: none). An EC object's placement
   * is its first d+p replicas and the i-th of them holds strip i, so a node's index in the list decides.
   */
  ownedKeyOf(oid: bigint): bigint | null {
    const ec = this.ecOf(oid);
    const where = this.placement(oid, ec ? ec.d + ec.p : this.copiesOf(oid));
    const i = where.findIndex((n) => this.isSelf(n));
    if (i < 0) return null;
    return ec ? stripKey(oid, i) : oid;
  }

  private ecPoolInstance: EcPool | null = null;

  /** Worker pool for whole-object EC encode/decode, started on first use (most nodes never need it). */
  get ecPool(): EcPool {
    this.ecPoolInstance ??= new EcPool({ threads: 2 });
    return this.ecPoolInstance;
  }

  copiesOf(oid: bigint, requested = 0): number {
    if (requested > 0) return requested;
    return this.vdis.get(oidToVid(oid))?.copies || this.format.copies || 3;
  }

  /** Replica node list of an object at the current epoch, primary first. */
  placement(oid: bigint, copies: number): SdNode[] {
    if (!this.ring) return [];
    return placeObject(this.ring, oid, copies).map((i) => this.members[i]!);
  }

  isSelf(n: SdNode): boolean {
    return n.nid.addr === this.opts.addr && n.nid.port === this.opts.port;
  }

  isSnapshotData(oid: bigint): boolean {
    return isDataObj(oid) && this.vdis.get(oidToVid(oid))?.snapshot === true;
  }

  // ---- requests ---------------------------------------------------------------------------------

  /**
   * Runs a request through this node's own handler without a socket: the same path a TCP client takes
   * (version checks, cluster gate, gateway), for in-process front ends such as the NBD server.
   */
  async localRequest(init: ReqInit, data?: Uint8Array): Promise<SheepResponse> {
    const payload = data ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.alloc(0);
    const raw = encodeRequest({ ...init, dataLength: data ? data.length : (init.dataLength ?? 0), flags: (init.flags ?? 0) | (data ? Flag.CMD_WRITE : 0) });
    const req: IncomingRequest = { ...decodeReqHeader(raw), data: payload };
    const reply = await this.handle(req);
    const head = decodeResponse(reply.header);
    const body = reply.data ? Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength) : Buffer.alloc(0);
    return { ...head, data: body };
  }

  private async handle(req: IncomingRequest): Promise<Reply> {
    this.stats.requests++;
    const rsp = (init: Omit<RspInit, 'opcode' | 'id' | 'epoch'>, data?: Uint8Array): Reply => {
      const n = data ? Math.min(data.length, init.dataLength ?? data.length) : 0;
      return { header: encodeResponse({ ...init, dataLength: n, opcode: req.opcode, id: req.id, epoch: this.epoch }), data: data?.subarray(0, n) };
    };
    if (req.opcode >= 0x80 ? req.protoVer !== SD_SHEEP_PROTO_VER : req.protoVer > SD_PROTO_VER) return rsp({ result: Res.VER_MISMATCH });
    if (this.diskError && isPeerIo(req.opcode)) return rsp({ result: Res.NETWORK_ERROR }); // leaving: retry elsewhere
    if (this.stopped) return rsp({ result: Res.SHUTDOWN });
    if (req.opcode >= Op.CREATE_AND_WRITE_PEER && req.opcode <= Op.REMOVE_PEER && (this.awaitingState || (!(req.flags & Flag.CMD_RECOVERY) && this.status !== ClusterStatus.OK))) {
      // Not caught up with the cluster yet: to the sender this is a newer epoch than ours; it retries.
      // Recovery reads too while joining: until the cluster state arrives this node does not know which of
      // its copies are outdated (ec-gw under a slow disk: a returning node served its outdated parity strip
      // as live in that window, and the new holder took it). In a cluster waiting after a full stop they are
      // served once the state has arrived, for the resume.
      return rsp({ result: Res.NEW_NODE_VER });
    }
    if (this.status === ClusterStatus.SHUTDOWN && !isForceOp(req.opcode)) return rsp({ result: Res.SHUTDOWN });
    const recoveryRead = (req.flags & Flag.CMD_RECOVERY) !== 0 && (req.opcode === Op.GET_OBJ_LIST || req.opcode === Op.READ_PEER);
    if (this.status === ClusterStatus.WAIT && !isForceOp(req.opcode) && !recoveryRead) {
      return rsp({ result: this.format.ctime === 0n ? Res.WAIT_FOR_FORMAT : Res.WAIT_FOR_JOIN });
    }
    try {
      return await handleRequest(this, req, rsp);
    } catch (err) {
      if (err instanceof StoreError) {
        const result = err.code === 'NO_OBJ' ? Res.NO_OBJ : err.code === 'NO_SPACE' ? Res.NO_SPACE : err.code === 'INVALID' ? Res.INVALID_PARMS : Res.EIO;
        if (result === Res.EIO) this.log('error', err.message);
        if (result === Res.EIO && (this.diskError || err.diskRemoved) && isPeerIo(req.opcode)) return rsp({ result: Res.NETWORK_ERROR });
        return rsp({ result });
      }
      if (err instanceof SheepError) return rsp({ result: err.result });
      this.log('error', `request 0x${req.opcode.toString(16)} failed: ${(err as Error)?.stack ?? err}`);
      return rsp({ result: Res.SYSTEM_ERROR });
    }
  }

  // ---- cluster operations -----------------------------------------------------------------------

  /**
   * Runs a cluster operation: take the cluster-wide block, do `work` (reads/writes objects, returns
   * the message to broadcast or a result to answer with directly), then unblock with the message and
   * wait until this node has applied it. Returns what the apply step produced.
   */
  async clusterOp<T>(work: (seq: number) => Promise<{ msg?: ClusterMsg; result?: T }>): Promise<T> {
    const ticket = this.opts.driver.block();
    await new Promise<void>((resolve) => this.blockWaiters.set(ticket, resolve));
    const seq = this.seq++;
    let outcome: { msg?: ClusterMsg; result?: T };
    try {
      outcome = await work(seq);
    } catch (err) {
      this.opts.driver.unblock(packr.pack({ op: 'noop', origin: this.selfId, seq }));
      throw err;
    }
    if (!outcome.msg) {
      this.opts.driver.unblock(packr.pack({ op: 'noop', origin: this.selfId, seq }));
      return outcome.result as T;
    }
    const applied = new Promise<unknown>((resolve) => this.waiters.set(seq, resolve));
    this.opts.driver.unblock(packr.pack(outcome.msg));
    const r = await applied;
    return (outcome.result ?? r) as T;
  }

  /** Broadcasts without the block (for ops whose work needs no I/O) and waits for the local apply. */
  async broadcast<T>(build: (seq: number) => ClusterMsg): Promise<T> {
    const seq = this.seq++;
    const applied = new Promise<unknown>((resolve) => this.waiters.set(seq, resolve));
    this.opts.driver.notify(packr.pack(build(seq)));
    return (await applied) as T;
  }

  nextSeq(): number {
    return this.seq++;
  }

  /** Broadcasts a prepared message (its seq from nextSeq()) and waits for the local apply. */
  async broadcastMsg<T>(msg: ClusterMsg): Promise<T> {
    const applied = new Promise<unknown>((resolve) => this.waiters.set(msg.seq, resolve));
    this.opts.driver.notify(packr.pack(msg));
    return (await applied) as T;
  }

  private onClusterEvent(ev: ClusterEvent): void {
    if (ev.type === 'block-granted') {
      const w = this.blockWaiters.get(ev.ticket);
      this.blockWaiters.delete(ev.ticket);
      w?.();
      return;
    }
    this.events.push(ev);
    if (!this.processing) void this.processEvents();
  }

  private async processEvents(): Promise<void> {
    this.processing = true;
    try {
      while (this.events.length > 0) {
        const ev = this.events.shift()!;
        try {
          await this.apply(ev);
        } catch (err) {
          this.log('error', `applying cluster event ${ev.type} failed: ${(err as Error)?.stack ?? err}`);
        }
      }
    } finally {
      this.processing = false;
    }
  }

  private async apply(ev: ClusterEvent): Promise<void> {
    if (ev.type === 'block-granted') return;
    if (ev.type === 'join' || ev.type === 'leave') this.joinOrder = ev.members.map((m) => m.id);
    if (!this.joined) {
      if (ev.type === 'join' && ev.member.id === this.selfId) {
        this.joined = true;
        if (ev.members.length === 1) {
          if (this.format.ctime !== 0n) {
            // Restarting a formatted node: wait until the last epoch's members are back.
            this.members = sortNodes(ev.members.map((m) => decodeSdNode(Buffer.from(m.node))));
            this.rebuildRing();
            this.status = ClusterStatus.WAIT;
            this.waitBest = null;
            this.sayHello();
          } else await this.membershipChanged(ev.members);
        } else {
          this.members = sortNodes(ev.members.map((m) => decodeSdNode(Buffer.from(m.node))));
          this.awaitingState = true;
        }
      }
      return;
    }
    const resendState = this.awaitingState ? [] : this.trackJoiners(ev);
    if (this.awaitingState) {
      if (ev.type === 'notify') {
        const msg = packr.unpack(ev.msg) as ClusterMsg;
        if (msg.op === 'state' && msg.to === this.selfId) {
          if (this.format.ctime !== 0n && BigInt(msg.state.format.ctime) !== 0n && BigInt(msg.state.format.ctime) !== this.format.ctime) {
            this.log('error', `refusing to join: this store belongs to a cluster created at ${this.format.ctime}, the running cluster was created at ${msg.state.format.ctime}`);
            this.awaitingState = false;
            this.clock.defer(() => void this.stop('join refused: different cluster creation time'));
            return;
          }
          const wasFormatted = this.format.ctime !== 0n;
          // Joining a running cluster after missing epochs: our copies are unverified. (Joining a cluster that
          // waits after a full stop, the resume decides that; until then our copies must stay readable, as
          // the resume rebuilds the VDI state from them.)
          if (wasFormatted && msg.state.status === ClusterStatus.OK) await this.recovery.markSuspect(await this.store.list(), Math.max(0, ...this.diskEpochs.keys()));
          await this.installState(msg.state);
          // Membership changes the sender applied before sending its state are in the state's epochs, and our
          // member list (hence the ring) must follow them too (found by the simulator, seed 6: a node that
          // joined while another left kept the leaver in its ring, and refused writes to its objects).
          const buffered = this.bufferedWhileJoining.splice(0);
          let moved = false;
          for (const e of buffered.slice(0, msg.since)) {
            if (e.type !== 'join' && e.type !== 'leave') continue;
            this.members = sortNodes(e.members.map((m) => decodeSdNode(Buffer.from(m.node))));
            moved = true;
          }
          if (moved) this.rebuildRing();
          this.awaitingState = false;
          // Running only from here, together with the recovery job: a returning node must not serve its
          // possibly outdated copies before recovery has listed what to check.
          this.status = msg.state.status;
          if (this.status === ClusterStatus.WAIT && wasFormatted) this.sayHello();
          if (this.status === ClusterStatus.OK) this.startRecovery();
          // The sender had already applied `since` of the events we buffered after our join.
          const later = buffered.slice(msg.since);
          for (const e of later) await this.apply(e);
          return;
        }
      }
      this.bufferedWhileJoining.push(ev);
      if (ev.type === 'leave' && ev.members[0]?.id === this.selfId) {
        // Everyone who could hand us the cluster state is gone (e.g. members of a stopped cluster whose
        // sessions expire after we joined): start from our own state, as the first node of a cluster does.
        this.log('warn', 'no member left to send the cluster state: starting from the local state');
        this.awaitingState = false;
        if (this.format.ctime !== 0n) {
          this.status = ClusterStatus.WAIT;
          this.waitBest = null;
          this.sayHello();
        }
        for (const e of this.bufferedWhileJoining.splice(0)) await this.apply(e);
      }
      return;
    }
    if (ev.type === 'leave') {
      this.peers.drop(ev.member.id); // fail its in-flight requests now: gateways retry
      this.vnodeOverrides.delete(ev.member.id);
      this.spaceOverrides.delete(ev.member.id);
    }
    switch (ev.type) {
      case 'join':
        if (this.status === ClusterStatus.WAIT && this.format.ctime !== 0n) {
          this.members = sortNodes(ev.members.map((m) => decodeSdNode(Buffer.from(m.node))));
          this.rebuildRing();
          if (ev.members[0]?.id === this.selfId) this.sendState(ev.member.id);
          this.maybeResume();
          break;
        }
        await this.membershipChanged(ev.members);
        // The oldest member hands the joiner the cluster state as of this event.
        if (ev.members[0]?.id === this.selfId) this.sendState(ev.member.id);
        break;
      case 'leave':
        if (this.status === ClusterStatus.WAIT && this.format.ctime !== 0n) {
          this.members = sortNodes(ev.members.map((m) => decodeSdNode(Buffer.from(m.node))));
          this.rebuildRing();
          for (const [joiner, since] of resendState) this.sendState(joiner, since);
          this.maybeResume(); // the decider may have changed
          break;
        }
        await this.membershipChanged(ev.members);
        for (const v of this.vdis.values()) if (v.lockState !== 1) await this.vdiAsk(v.vid, { type: 'NODE_LEFT', node: ev.member.id });
        for (const [joiner, since] of resendState) this.sendState(joiner, since);
        break;
      case 'notify':
        await this.applyMsg(packr.unpack(ev.msg) as ClusterMsg | { op: 'noop'; origin: string; seq: number });
        break;
    }
  }

  /**
   * For each joiner still waiting for its state: who owes it (the oldest member at its join) and how many
   * events we applied since. If the owner leaves first, the new oldest member sends the state instead,
   * saying how many of the joiner's buffered events it already includes. Returns joiners to serve now.
   */
  private trackJoiners(ev: ClusterEvent): Array<[string, number]> {
    const resend: Array<[string, number]> = [];
    if (ev.type === 'block-granted') return resend;
    for (const j of this.joinersAwaitingState.values()) j.count++;
    if (ev.type === 'join' && ev.member.id !== this.selfId) this.joinersAwaitingState.set(ev.member.id, { count: 0, owner: ev.members[0]?.id ?? '' });
    if (ev.type === 'leave') {
      this.joinersAwaitingState.delete(ev.member.id);
      for (const [id, j] of this.joinersAwaitingState) {
        if (j.owner !== ev.member.id) continue;
        j.owner = ev.members[0]?.id ?? '';
        if (j.owner === this.selfId) resend.push([id, j.count]);
      }
    }
    return resend;
  }

  private sendState(to: string, since = 0): void {
    const state: TransferState = {
      status: this.status,
      format: this.format,
      epoch: this.epoch,
      epochs: [...this.epochs].map(([e, v]) => [e, v.nodes.map((n) => encodeSdNode(n)), v.time.toString()]),
      inUse: this.inUse.list(),
      deleted: this.deleted.list(),
      vdis: [...this.vdis.values()],
      waitBest: this.waitBest ? { epoch: this.waitBest.epoch, epochs: [...this.waitBest.epochs].map(([e, v]) => [e, v.nodes.map((n) => encodeSdNode(n)), v.time.toString()]) } : null,
      vnodes: [...this.vnodeOverrides],
      spaces: [...this.spaceOverrides].map(([id, v]) => [id, v.toString()]),
    };
    this.opts.driver.notify(packr.pack({ op: 'state', origin: this.selfId, seq: 0, to, since, state } satisfies ClusterMsg));
  }

  private async installState(s: TransferState): Promise<void> {
    if (this.format.ctime !== 0n && s.format.ctime !== 0n && this.format.ctime !== s.format.ctime) {
      this.log('warn', `joining a cluster formatted at ${s.format.ctime} while this store was formatted at ${this.format.ctime}: adopting the cluster's format`);
      await this.store.wipe();
    }
    this.format = { ...s.format, ctime: BigInt(s.format.ctime) };
    this.store.setLayout(this.format.store);
    this.waitBest = null;
    if (s.waitBest) {
      const epochs = new Map<number, { nodes: SdNode[]; time: bigint }>();
      for (const [e, nodes, t] of s.waitBest.epochs) epochs.set(e, { nodes: nodes.map((n) => decodeSdNode(Buffer.from(n))), time: BigInt(t) });
      this.waitBest = { epoch: s.waitBest.epoch, epochs };
    }
    this.epoch = s.epoch;
    this.epochs.clear();
    for (const [e, nodes, t] of s.epochs) this.epochs.set(e, { nodes: nodes.map((n) => decodeSdNode(Buffer.from(n))), time: BigInt(t) });
    this.vnodeOverrides.clear();
    for (const [id, n] of s.vnodes) this.vnodeOverrides.set(id, n);
    this.spaceOverrides.clear();
    for (const [id, v] of s.spaces ?? []) this.spaceOverrides.set(id, BigInt(v));
    // Members stay as the driver reported them at our join: a waiting cluster's last epoch is not its
    // current membership.
    this.rebuildRing();
    this.inUse.clear();
    for (const v of s.inUse) this.inUse.set(v);
    this.deleted.clear();
    for (const v of s.deleted) this.deleted.set(v);
    this.vdis.clear();
    for (const v of s.vdis) {
      this.spawnVdi({ vid: v.vid, name: v.name, copies: v.copies, copyPolicy: v.copyPolicy, blockSizeShift: v.blockSizeShift, parentVid: v.parentVid, snapshot: v.snapshot });
      if (v.deleted) await this.vdiAsk(v.vid, { type: 'DELETED' });
      else if (v.lockState === 2 && v.lockOwner) await this.vdiAsk(v.vid, { type: 'LOCK', owner: v.lockOwner, shared: false });
      else if (v.lockState === 3) for (const p of v.participants) await this.vdiAsk(v.vid, { type: 'LOCK', owner: p, shared: true });
    }
    if (this.format.ctime !== 0n) await this.persistFormat();
    for (const [e, v] of this.epochs) await this.meta.writeEpochFile(e, v.nodes, v.time);
  }

  private async membershipChanged(members: readonly Member[]): Promise<void> {
    this.members = sortNodes(members.map((m) => decodeSdNode(Buffer.from(m.node))));
    this.rebuildRing();
    if (this.format.ctime === 0n) return; // epochs start at format
    if (this.status === ClusterStatus.WAIT) this.status = ClusterStatus.OK;
    await this.newEpoch();
    this.startRecovery();
  }

  /** Announces this node's own epoch history while the cluster waits for its last members. */
  private sayHello(): void {
    const epochs = [...this.diskEpochs].map(([e, v]) => [e, v.nodes.map((n) => encodeSdNode(n)), v.time.toString()] as [number, Uint8Array[], string]);
    const epoch = Math.max(0, ...this.diskEpochs.keys());
    this.opts.driver.notify(packr.pack({ op: 'hello', origin: this.selfId, seq: 0, ctime: this.format.ctime.toString(), epoch, epochs } satisfies ClusterMsg));
  }

  private encodeEpochs(epochs: Map<number, { nodes: SdNode[]; time: bigint }>): Array<[number, Uint8Array[], string]> {
    return [...epochs].map(([e, v]) => [e, v.nodes.map((n) => encodeSdNode(n)), v.time.toString()]);
  }

  /**
   * While waiting after a restart, the oldest member decides: once every member of the newest epoch any
   * node reported is back, it broadcasts `resume`, which every node applies at the same point in the order.
   */
  private maybeResume(): void {
    if (this.status !== ClusterStatus.WAIT || this.format.ctime === 0n || this.resumeSent) return;
    if (this.joinOrder[0] !== this.selfId || !this.waitBest) return;
    const last = this.waitBest.epochs.get(this.waitBest.epoch);
    const present = new Set(this.members.map((n) => `${n.nid.addr}:${n.nid.port}`));
    if (last && !last.nodes.every((n) => present.has(`${n.nid.addr}:${n.nid.port}`))) return;
    this.resumeSent = true;
    const best = this.waitBest;
    void this.collectVdis().then(
      ({ vdis, deleted }) => this.opts.driver.notify(packr.pack({ op: 'resume', origin: this.selfId, seq: 0, force: false, epoch: best.epoch, epochs: this.encodeEpochs(best.epochs), vdis, deleted } satisfies ClusterMsg)),
      (err) => {
        this.resumeSent = false;
        this.log('error', `cannot resume yet: reading VDI state failed: ${(err as Error).message}`);
      },
    );
  }

  /** `dog cluster recover force`: resume now with whoever is here. */
  async forceResumeMessage(seq: number): Promise<ClusterMsg> {
    const best = this.waitBest ?? { epoch: Math.max(0, ...this.diskEpochs.keys()), epochs: this.diskEpochs };
    const { vdis, deleted } = await this.collectVdis();
    return { op: 'resume', origin: this.selfId, seq, force: true, epoch: best.epoch, epochs: this.encodeEpochs(best.epochs), vdis, deleted };
  }

  /**
   * After a full restart nobody remembers the VDI bitmaps: rebuild them, as Sheepdog does, from the inode
   * objects the members hold (a wiped inode = a deleted VDI).
   */
  private async collectVdis(): Promise<{ vdis: VdiInput[]; deleted: number[] }> {
    const holders = new Map<bigint, SdNode[]>();
    for (const n of this.members) {
      if (n.nrVnodes === 0) continue;
      let oids: bigint[];
      if (this.isSelf(n)) oids = [...(await this.store.list()), ...(await this.store.listStale())];
      else {
        const c = await this.peers.get(n.nid.addr, n.nid.port);
        const r = await c.request({ opcode: Op.GET_OBJ_LIST, flags: Flag.CMD_RECOVERY, dataLength: 64 << 20 });
        if (r.result !== Res.SUCCESS) throw new Error(`node ${n.nid.addr}:${n.nid.port} did not list its objects (0x${r.result.toString(16)})`);
        oids = Array.from({ length: r.data.length / 8 }, (_, i) => r.data.readBigUInt64LE(i * 8));
      }
      for (const oid of oids) if (isVdiObj(oid)) holders.set(oid, [...(holders.get(oid) ?? []), n]);
    }
    const vdis: VdiInput[] = [];
    const deleted: number[] = [];
    for (const [oid, nodes] of [...holders].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      let header: Buffer | undefined;
      for (const n of nodes) {
        try {
          if (this.isSelf(n)) header = await this.store.read(oid, 0, SD_INODE_HEADER_SIZE).catch(() => this.store.readStale(oid, SD_INODE_HEADER_SIZE).then((s) => s.data));
          else {
            const c = await this.peers.get(n.nid.addr, n.nid.port);
            const r = await c.request({ opcode: Op.READ_PEER, flags: Flag.CMD_RECOVERY, dataLength: SD_INODE_HEADER_SIZE, obj: { oid } });
            if (r.result === Res.SUCCESS) header = r.data;
          }
          if (header) break;
        } catch {
          /* next holder */
        }
      }
      const vid = oidToVid(oid);
      if (!header) throw new Error(`no readable copy of inode ${vid.toString(16)}`);
      const h = decodeInodeHeader(header);
      if (h.name === '') {
        deleted.push(vid);
        continue;
      }
      vdis.push({ vid, name: h.name, copies: h.nrCopies, copyPolicy: h.copyPolicy, blockSizeShift: h.blockSizeShift, parentVid: h.parentVdiId, snapshot: h.snapCtime !== 0n });
    }
    return { vdis, deleted };
  }

  private async applyResume(msg: Extract<ClusterMsg, { op: 'resume' }>): Promise<void> {
    if (this.status !== ClusterStatus.WAIT || this.format.ctime === 0n) return;
    const myEpoch = Math.max(0, ...this.diskEpochs.keys());
    if (myEpoch < msg.epoch) await this.recovery.markSuspect(await this.store.list(), myEpoch);
    this.epochs.clear();
    for (const [e, nodes, t] of msg.epochs) this.epochs.set(e, { nodes: nodes.map((n) => decodeSdNode(Buffer.from(n))), time: BigInt(t) });
    this.epoch = msg.epoch;
    for (const [e, v] of this.epochs) await this.meta.writeEpochFile(e, v.nodes, v.time);
    this.inUse.clear();
    this.deleted.clear();
    for (const vid of this.vdis.keys()) this.actors.stop({ kind: VDI_KIND, id: this.vdiActorId(vid) });
    this.vdis.clear();
    for (const v of msg.vdis) {
      this.inUse.set(v.vid);
      this.spawnVdi(v);
    }
    for (const vid of msg.deleted) {
      this.inUse.set(vid);
      this.deleted.set(vid);
    }
    this.status = ClusterStatus.OK;
    this.waitBest = null;
    this.resumeSent = false;
    this.log('info', `cluster resumes at epoch ${this.epoch + 1} with ${this.members.length} nodes${msg.force ? ' (forced)' : ''}`);
    await this.persistFormat();
    await this.newEpoch();
    this.startRecovery();
  }

  /** One recovery job per epoch change: a newer epoch cancels the previous job. */
  private startRecovery(): void {
    if (this.opts.gatewayOnly) return;
    this.recovery.beginEpoch(this.epoch);
    if (this.recoveryActorId) this.actors.tell({ kind: RECOVERY_KIND, id: this.recoveryActorId }, { type: 'CANCEL' });
    // A second job in one epoch (redundancy changed by alter-copy) gets its own address.
    // Epochs restart at 1 after a format: the format count keeps the address of a later job new.
    const epochTag = this.formats > 0 ? `${this.epoch}f${this.formats}` : `${this.epoch}`;
    const id = this.recoveryActorEpoch === this.epoch ? `${this.selfId}/${epochTag}-${++this.recoveryReruns}` : `${this.selfId}/${epochTag}`;
    this.recoveryActorEpoch = this.epoch;
    this.recoveryActorId = id;
    this.actors.spawn({ kind: RECOVERY_KIND, id }, { node: this.selfId, epoch: this.epoch, maxInFlight: this.recoveryMaxInFlight, paused: !this.recoveryEnabled });
  }

  /** SHA-1 (hex) of a whole local object, hashed off the main thread. */
  async localHash(oid: bigint): Promise<string> {
    const len = Math.min(this.objectSizeOf(oid), await this.store.size(oid));
    const sab = new SharedArrayBuffer(Math.max(1, len));
    await this.store.read(oid, 0, len, Buffer.from(sab, 0, len));
    return this.hashPool.sha1Shared(sab, 0, len, len);
  }

  /** A data object no live VDI references (its VDI deleted, or its index entry moved on). */
  async isOrphan(oid: bigint): Promise<boolean> {
    if (!isDataObj(oid)) return false;
    const vid = oidToVid(oid);
    if (!this.inUse.test(vid)) return true;
    if (!this.deleted.test(vid)) return false;
    // A deleted VDI's objects may still be shared by the clones and snapshots derived from it.
    return !this.hasLiveDescendant(vid);
  }

  /**
   * After a VDI is deleted: local data objects of deleted VDIs that no live clone or snapshot descends from
   * are garbage, whatever the index writes before the delete managed to reclaim (a zeroing write repeated
   * after a partial failure sees nothing left to free; found by the simulator, seed 26).
   */
  /** After a recovery job: deleted VDIs' data and inode headers, as after a delete. */
  async sweepAfterRecovery(): Promise<void> {
    if (this.deleted.list().length > 0) await this.sweepDeletedData();
  }

  private async sweepDeletedData(): Promise<void> {
    if (this.stopped || this.opts.gatewayOnly) return;
    try {
      for (const oid of await this.store.list()) {
        if (isVdiObj(oid) && this.deleted.test(oidToVid(oid))) {
          await this.wipeDeletedInodeHeader(oid);
          continue;
        }
        if (!isDataObj(oid) || !this.deleted.test(oidToVid(oid))) continue;
        if (await this.isOrphan(oid)) {
          this.recovery.forget(oid); // not awaiting a pull that may be retrying: it stops by itself
          await this.store.remove(oid).catch(() => undefined);
          this.log('debug', `swept ${oid.toString(16)} of a deleted VDI`);
        }
      }
    } catch (err) {
      this.log('warn', `sweeping deleted VDI data failed: ${(err as Error).message}`);
    }
  }

  /**
   * The local copy of a deleted VDI's inode gets the wiped header DEL_VDI writes once its index is empty,
   * as every node applies the delete. The gateway's own wipe can stop part-way (its node dies) and the
   * client's retry then finds no VDI by that name to delete again: the replicas would disagree on whether
   * the name still exists (found by the simulator, seed 63).
   */
  private async wipeDeletedInodeHeader(oid: bigint): Promise<void> {
    if (this.recovery.isSuspect(oid) || this.recovery.isPending(oid)) return;
    const header = decodeInodeHeader(await this.store.read(oid, 0, SD_INODE_HEADER_SIZE));
    if (header.name === '') return;
    // Only the entries of the VDI's own objects can be set (its size bounds them).
    const objectBytes = 2 ** (header.blockSizeShift || SD_DEFAULT_BLOCK_SIZE_SHIFT);
    const entries = Math.min(2 ** 20, Math.ceil(Number(header.vdiSize) / objectBytes));
    const index = await this.store.read(oid, SD_INODE_DATA_VDI_ID_OFFSET, 4 * entries);
    if (index.some((b) => b !== 0)) return;
    await this.store.write(oid, Buffer.alloc(SD_INODE_HEADER_SIZE), 0);
    this.log('debug', `wiped the header of deleted ${oid.toString(16)}`);
  }

  private hasLiveDescendant(vid: number): boolean {
    const queue = [vid];
    const seen = new Set(queue);
    while (queue.length > 0) {
      const p = queue.shift()!;
      for (const v of this.vdis.values()) {
        if (v.parentVid !== p || seen.has(v.vid)) continue;
        if (!v.deleted) return true;
        seen.add(v.vid);
        queue.push(v.vid);
      }
    }
    return false;
  }

  /** Progress of the current recovery job, for STAT_RECOVERY. */
  recoveryState(): { inRecovery: boolean; state: number; nrFinished: bigint; nrTotal: bigint } {
    const p = this.recovery.snapshot();
    return { inRecovery: this.recovery.active, state: this.recovery.active ? 1 : 0, nrFinished: BigInt(p.done + p.failed), nrTotal: BigInt(p.total) };
  }

  /**
   * Starts the next epoch. With `recover` the recovery work is marked as preparing in the same step, so a
   * peer request of the new epoch arriving while the epoch file is written waits for the object list
   * instead of finding an object that recovery has not pulled yet (found by the simulator, seed 3).
   */
  private async newEpoch(recover = true): Promise<void> {
    this.epoch++;
    if (recover && !this.opts.gatewayOnly) this.recovery.beginEpoch(this.epoch);
    this.log('info', `epoch ${this.epoch}: ${this.members.map((n) => `${n.nid.addr}:${n.nid.port}`).join(' ')}`);
    const time = BigInt(Math.floor(this.clock.wallMs() / 1000));
    this.epochs.set(this.epoch, { nodes: this.members, time });
    await this.meta.writeEpochFile(this.epoch, this.members, time);
  }

  rebuildRing(): void {
    if (this.spaceOverrides.size > 0) {
      this.members = this.members.map((n) => {
        const space = this.spaceOverrides.get(`${n.nid.addr}:${n.nid.port}`);
        return space === undefined || space === n.space ? n : { ...n, space };
      });
    }
    if (this.vnodeOverrides.size > 0) {
      this.members = this.members.map((n) => {
        const v = this.vnodeOverrides.get(`${n.nid.addr}:${n.nid.port}`);
        return v === undefined || v === n.nrVnodes ? n : { ...n, nrVnodes: v };
      });
    }
    if (this.format.ctime !== 0n && this.format.flags & ClusterFlag.AUTO_VNODES) {
      // Sheepdog's auto strategy: vnodes in proportion to each node's space (gateways have none), recomputed
      // at every membership change, so placement matches a Sheepdog cluster on the same disks.
      const vnodes = autoVnodes(this.members.map((n) => (n.nrVnodes === 0 ? 0n : n.space)));
      this.members = this.members.map((n, i) => (n.nrVnodes === vnodes[i] ? n : { ...n, nrVnodes: vnodes[i]! }));
    }
    const storing = this.members.filter((n) => n.nrVnodes > 0);
    this.ring = storing.length > 0 ? buildVnodeRing(this.members.map(toRingNode)) : null;
  }

  private async persistFormat(): Promise<void> {
    await this.meta.writeConfig({
      ctime: this.format.ctime,
      flags: this.format.flags,
      copies: this.format.copies,
      store: this.format.store,
      shutdown: this.status === ClusterStatus.SHUTDOWN,
      copyPolicy: this.format.copyPolicy,
      blockSizeShift: this.format.blockSizeShift,
      space: this.self.space,
    });
  }

  private async applyMsg(msg: ClusterMsg | { op: 'noop'; origin: string; seq: number }): Promise<void> {
    let result: unknown = undefined;
    switch (msg.op) {
      case 'noop':
        break;
      case 'state':
        this.joinersAwaitingState.delete(msg.to); // served (the joiner itself handled it above)
        break;
      case 'make_fs': {
        await this.store.wipe();
        this.store.setLayout(msg.format.store);
        for (const v of this.vdis.keys()) this.actors.stop({ kind: VDI_KIND, id: this.vdiActorId(v) });
        this.vdis.clear();
        this.inUse.clear();
        this.deleted.clear();
        this.format = { ...msg.format, ctime: BigInt(msg.format.ctime) };
        this.status = ClusterStatus.OK;
        this.epochs.clear();
        this.epoch = 0;
        this.formats++;
        this.recoveryActorEpoch = 0;
        this.rebuildRing(); // the format decides between auto and fixed vnodes
        await this.persistFormat();
        await this.newEpoch(false);
        break;
      }
      case 'new_vdi': {
        this.inUse.set(msg.vdi.vid);
        this.spawnVdi(msg.vdi);
        if (msg.snapshotOf) await this.vdiAsk(msg.snapshotOf, { type: 'SNAPSHOTTED' });
        result = this.vdis.get(msg.vdi.vid);
        break;
      }
      case 'del_vdi': {
        this.deleted.set(msg.vid);
        result = await this.vdiAsk(msg.vid, { type: 'DELETED' });
        const family = this.format.flags & ClusterFlag.RECYCLE_VID ? deadFamily(this.vdis, msg.vid) : null;
        if (family) await this.recycleVids(family);
        else this.clock.defer(() => void this.sweepDeletedData());
        break;
      }
      case 'lock':
        result = await this.vdiAsk(msg.vid, { type: 'LOCK', owner: msg.owner, shared: msg.shared });
        break;
      case 'release':
        result = await this.vdiAsk(msg.vid, { type: 'UNLOCK', owner: msg.owner });
        break;
      case 'hello': {
        if (this.status === ClusterStatus.WAIT && BigInt(msg.ctime) === this.format.ctime) {
          if (!this.waitBest || msg.epoch > this.waitBest.epoch) {
            const epochs = new Map<number, { nodes: SdNode[]; time: bigint }>();
            for (const [e, nodes, t] of msg.epochs) epochs.set(e, { nodes: nodes.map((n) => decodeSdNode(Buffer.from(n))), time: BigInt(t) });
            this.waitBest = { epoch: msg.epoch, epochs };
          }
          this.maybeResume();
        }
        break;
      }
      case 'resume':
        await this.applyResume(msg);
        break;
      case 'recovery':
        this.recoveryEnabled = msg.enable;
        if (this.recoveryActorId) this.actors.tell({ kind: RECOVERY_KIND, id: this.recoveryActorId }, { type: msg.enable ? 'RESUME' : 'PAUSE' });
        break;
      case 'alter_copy':
        if (msg.vid) {
          result = await this.vdiAsk(msg.vid, { type: 'COPIES_CHANGED', copies: msg.copies, copyPolicy: msg.copyPolicy });
          // Objects now need more (or fewer) replicas: a recovery pass adds them (and sets extras aside).
          if (this.status === ClusterStatus.OK) this.startRecovery();
        } else {
          this.format = { ...this.format, copies: msg.copies, copyPolicy: msg.copyPolicy };
          await this.persistFormat();
        }
        break;
      case 'set_vnodes': {
        // Sheepdog updates the node through the cluster driver and kicks recovery: new vnodes move
        // placement, so every node applies it here, at the same point in the order, like a membership change.
        if (this.format.flags & ClusterFlag.AUTO_VNODES) {
          result = Res.INVALID_VNODES_STRATEGY;
          break;
        }
        if (!this.members.some((n) => `${n.nid.addr}:${n.nid.port}` === msg.node)) {
          result = Res.INVALID_PARMS;
          break;
        }
        this.vnodeOverrides.set(msg.node, msg.vnodes);
        if (msg.node === this.selfId) (this.self as { nrVnodes: number }).nrVnodes = msg.vnodes;
        this.log('info', `vnodes of ${msg.node} set to ${msg.vnodes}`);
        this.rebuildRing();
        if (this.format.ctime !== 0n && this.status === ClusterStatus.OK) {
          await this.newEpoch();
          this.startRecovery();
        }
        result = Res.SUCCESS;
        break;
      }
      case 'reweight':
        // Upstream cluster_reweight: each node re-measures its own disk and, if it changed by 1% or more,
        // re-announces itself (update_node); that announcement is the ordered set_space below.
        await this.reannounceSpace();
        result = Res.SUCCESS;
        break;
      case 'set_space': {
        const space = BigInt(msg.space);
        if (!this.members.some((n) => `${n.nid.addr}:${n.nid.port}` === msg.node)) break; // left meanwhile
        this.spaceOverrides.set(msg.node, space);
        if (msg.node === this.selfId) (this.self as { space: bigint }).space = space;
        const before = this.members.map((n) => n.nrVnodes).join(',');
        this.rebuildRing();
        this.log('info', `space of ${msg.node} is now ${space} bytes; vnodes ${before} -> ${this.members.map((n) => n.nrVnodes).join(',')}`);
        if (msg.node === this.selfId && this.format.ctime !== 0n) await this.persistFormat();
        // Only auto vnodes follow the space: a fixed-vnodes placement does not move.
        if (before !== this.members.map((n) => n.nrVnodes).join(',') && this.format.ctime !== 0n && this.status === ClusterStatus.OK) {
          await this.newEpoch();
          this.startRecovery();
        }
        break;
      }
      case 'shutdown':
        this.status = ClusterStatus.SHUTDOWN;
        await this.persistFormat();
        this.clock.defer(() => void this.stop('cluster shutdown'));
        break;
    }
    if (msg.origin === this.selfId) {
      const w = this.waiters.get(msg.seq);
      this.waiters.delete(msg.seq);
      w?.(result);
    }
  }

  /** REWEIGHT on this node: measure the store and announce the new space if it moved by 1% or more. */
  private async reannounceSpace(): Promise<void> {
    if (this.opts.gatewayOnly) return;
    let size: bigint;
    try {
      size = (await this.capacity()).size;
    } catch (err) {
      this.log('error', `reweight: cannot measure the store: ${(err as Error).message}`);
      return;
    }
    if (!spaceVaried(this.self.space, size)) return;
    this.log('info', `reweight: space changed from ${this.self.space} to ${size} bytes`);
    this.opts.driver.notify(packr.pack({ op: 'set_space', origin: this.selfId, seq: 0, node: this.selfId, space: size.toString() } satisfies ClusterMsg));
  }

  /**
   * Upstream run_vid_gc: every member of the family is deleted, so its vids are free again. Removes the
   * family's VDI state and local objects, then clears both bitmap bits; done inside the ordered apply so
   * that no later NEW_VDI on this node can see the vids still taken.
   */
  private async recycleVids(family: number[]): Promise<void> {
    const vids = new Set(family);
    for (const vid of family) {
      this.actors.stop({ kind: VDI_KIND, id: this.vdiActorId(vid) });
      this.vdis.delete(vid);
    }
    const removal = (async () => {
      if (this.opts.gatewayOnly) return;
      for (const oid of await this.store.list()) {
        if (!vids.has(oidToVid(oid))) continue;
        this.recovery.forget(oid);
        await this.store.remove(oid).catch(() => undefined);
      }
    })();
    this.vidGc = removal;
    try {
      await removal;
    } catch (err) {
      this.log('warn', `recycling vids ${family.map((v) => v.toString(16)).join(' ')}: removing objects failed: ${(err as Error).message}`);
    } finally {
      if (this.vidGc === removal) this.vidGc = null;
    }
    for (const vid of family) {
      this.inUse.unset(vid);
      this.deleted.unset(vid);
    }
    this.log('info', `all members of the VDI family ${family.map((v) => v.toString(16)).join(' ')} are deleted: their vids are free`);
  }

  vdiActorId(vid: number): string {
    return `${this.selfId}/${vid.toString(16)}`;
  }

  private spawnVdi(input: VdiInput): void {
    const addr = { kind: VDI_KIND, id: this.vdiActorId(input.vid) };
    if (this.vdis.has(input.vid)) this.actors.stop(addr);
    this.actors.spawn(addr, input);
    this.vdis.set(input.vid, { ...input, deleted: false, lockState: 1, lockOwner: null, participants: [] });
  }

  /** Asks a VDI actor and refreshes the projection from its answer. */
  async vdiAsk(vid: number, event: { type: string; [k: string]: unknown }): Promise<{ ok: boolean; vdi: VdiSummary } | undefined> {
    if (!this.vdis.has(vid)) return undefined;
    const answer = await this.actors.ask<{ ok: boolean; vdi: VdiSummary }>({ kind: VDI_KIND, id: this.vdiActorId(vid) }, event);
    this.vdis.set(vid, answer.vdi);
    return answer;
  }

  /** Snapshot of a VDI request's header fields, for ops. */
  readObj(req: IncomingRequest) {
    return readObjReq(req.raw);
  }

  isLockingCluster(): boolean {
    return (this.format.flags & ClusterFlag.USE_LOCK) !== 0;
  }

  flagWrite(req: IncomingRequest): boolean {
    return (req.flags & Flag.CMD_WRITE) !== 0;
  }

  opName(op: number): string {
    return Object.entries(Op).find(([, v]) => v === op)?.[0] ?? `0x${op.toString(16)}`;
  }
}

/** Requests other sheep send to this node's store: after a disk error they are answered NETWORK_ERROR. */
function isPeerIo(op: number): boolean {
  return (op >= Op.CREATE_AND_WRITE_PEER && op <= Op.REMOVE_PEER) || op === Op.GET_OBJ_LIST || op === Op.GET_HASH;
}

/** An error that maps to a specific Sheepdog result code. */
export class SheepError extends Error {
  constructor(
    readonly result: number,
    message = `result 0x${result.toString(16)}`,
  ) {
    super(message);
    this.name = 'SheepError';
  }
}

// ---- recovery services ------------------------------------------------------------------------------
// The recovery actor of node N has id "N/epoch"; its effects run here, on the node's home thread.

const recoveryNodes = new Map<string, Sheep>();

function registerRecoveryNode(sheep: Sheep): void {
  recoveryNodes.set(sheep.selfId, sheep);
}

function unregisterRecoveryNode(sheep: Sheep): void {
  if (recoveryNodes.get(sheep.selfId) === sheep) recoveryNodes.delete(sheep.selfId);
}

function nodeOfActor(id: string): Sheep | undefined {
  return recoveryNodes.get(id.slice(0, id.lastIndexOf('/')));
}

function recoveryServices(actors: ActorSystem): Services {
  return {
    'recovery.prepare': async (cmd, ctx) => {
      const sheep = nodeOfActor(ctx.self.id);
      if (!sheep) return { type: 'recovery.prepare.error', error: 'node gone' };
      const total = await sheep.recovery.prepare(cmd.epoch as number);
      return { type: 'recovery.prepare.done', total };
    },
    'recovery.run': async (cmd, ctx) => {
      const sheep = nodeOfActor(ctx.self.id);
      if (!sheep) return { type: 'recovery.run.error', error: 'node gone' };
      const p = await sheep.recovery.run(cmd.epoch as number, cmd.maxInFlight as number, (prog) => actors.tell(ctx.self, { type: 'recovery.progress', done: prog.done, failed: prog.failed }));
      return { type: 'recovery.run.done', done: p.done, failed: p.failed };
    },
    'recovery.stop': (cmd, ctx) => {
      nodeOfActor(ctx.self.id)?.recovery.stop(cmd.epoch as number);
    },
    'recovery.finish': async (cmd, ctx) => {
      const sheep = nodeOfActor(ctx.self.id);
      await sheep?.recovery.finish(cmd.epoch as number);
      // Copies recovered or verified during the job may predate a delete applied meanwhile.
      await sheep?.sweepAfterRecovery();
      return { type: 'recovery.finish.done' };
    },
  };
}

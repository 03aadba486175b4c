// The I/O side of recovery, run for the node's recovery actor: list the objects this node must hold at the
// new epoch, pull the missing ones from nodes that have them (current copies, then stale ones), and move
// copies it no longer owns aside. Requests that need an object still under recovery wait for it.
import { Flag, Op, Res } from '../proto/constants.js';
import { readObjRsp } from '../proto/header.js';
import { dataOidIndex, isDataObj, oidToVid } from '../proto/oid.js';
import { stillReferenced } from './gateway.js';
import { StoreError } from '../store/object-store.js';
import { recoveryWouldFillDisk } from './diskfull.js';
import type { SdNode } from '../proto/structs.js';
import type { Sheep } from './sheep.js';
import { isStripKey, keyName, keyOid } from '../store/strip-key.js';
import { rebuildStrip } from './ec-recovery.js';

const PROGRESS_EVERY = 16;

const nodeId = (n: SdNode): string => `${n.nid.addr}:${n.nid.port}`;

/**
 * Answer to a recovery GET_HASH or READ_PEER for a copy this node has not verified since it came back
 * (Sheepdog's SD_RES_STARTUP, "not ready yet"); a GET_HASH answer carries the node's last epoch before
 * it returned in the response's first u32.
 */
export const UNVERIFIED = Res.STARTUP;
/**
 * The "set aside at" epoch a recovery read with CMD_WILDCARD reports for a live copy: newer than any set-aside
 * one. (Simulator seed 180: a copy recovered on one node while another searched set-aside copies counted as
 * set aside at epoch 0, and an older set-aside copy won.)
 */
export const LIVE_COPY = 0xffffffff;

export interface RecoveryProgress {
  readonly total: number;
  readonly done: number;
  readonly failed: number;
}

export class RecoveryWork {
  /** Objects still to pull in the current job. */
  private pending = new Set<bigint>();
  private readonly inFlight = new Map<bigint, Promise<void>>();
  /** Where each object was seen when the job's list was made. */
  private sources = new Map<bigint, SdNode[]>();
  private order: bigint[] = [];
  private epoch = 0;
  private running = false;
  /** Resolves when the current epoch's list is ready: until then any local object may still be missing. */
  private preparing: Promise<void> | null = null;
  private preparedResolve: (() => void) | null = null;
  private stopRequested = false;
  done = 0;
  failed = 0;
  total = 0;
  /**
   * Set when this node comes back after missing epochs: its local copies may predate writes made while it
   * was away, so each is checked against a node that stayed (SHA-1) before it is served again.
   */
  suspectLocal = false;
  /**
   * The local objects still unverified since the node came back. Per object, not per node: an object this
   * node does not own at the first epoch after its return may become its own later, and must be checked
   * then (found by the simulator, seed 6: a stale copy served after a second membership change).
   */
  /**
   * Per unverified copy, the epoch up to which it is known current: the last epoch this node was a member
   * of before it came back, or, for a copy that was already unverified then (kept in DIR/unverified across
   * restarts), the epoch of that earlier return. Decides between unverified copies (simulator seed 186: a
   * copy left unverified by a crash counted as current up to the next return, won, and an acknowledged
   * write was lost).
   */
  private readonly suspects = new Map<bigint, number>();
  /** The last epoch this node was a member of before it came back. */
  lastEpochBeforeReturn = 0;
  /** `suspects` changed since it was last saved to DIR/unverified. */
  private suspectsDirty = false;
  /** The epoch whose object list is still missing some nodes (0: none). */
  private unlistedEpoch = 0;
  /** The node is stopping: retries end. */
  private halted = false;
  /**
   * Throttling (`sheep -R max=,interval=`, `dog node recovery set-throttle`): at most `maxExecCount` pulls
   * at a time, and `intervalMs` between the pulls of each worker. Read live, so a change applies at once.
   */
  throttle = { maxExecCount: 0, intervalMs: 0 };
  /** For the log: why the last pull of an object had to be retried. */
  private readonly lastRefusal = new Map<bigint, string>();
  /** Local objects awaiting that check (part of `pending`). */
  private verify = new Set<bigint>();

  constructor(private readonly sheep: Sheep) {}

  /**
   * This node came back after missing epochs: all its copies are unverified until checked. Copies that
   * were unverified already (in memory, or on disk from before a restart) keep their older epoch.
   */
  async markSuspect(local: readonly bigint[], lastEpoch: number): Promise<void> {
    const saved = await this.sheep.meta.readUnverified().catch(() => new Map<bigint, number>());
    if (local.length === 0) return;
    this.suspectLocal = true;
    this.lastEpochBeforeReturn = Math.max(this.lastEpochBeforeReturn, lastEpoch);
    for (const key of local) this.suspects.set(key, Math.min(this.suspects.get(key) ?? lastEpoch, saved.get(key) ?? lastEpoch));
    this.suspectsDirty = true;
    await this.saveSuspects();
  }

  /** The epoch up to which an unverified copy is known current (0: the copy is not unverified). */
  suspectEpoch(key: bigint): number {
    return this.suspects.get(key) ?? 0;
  }

  /** Writes DIR/unverified when the set changed (at a return, and after each job). */
  async saveSuspects(): Promise<void> {
    if (!this.suspectsDirty) return;
    this.suspectsDirty = false;
    try {
      await this.sheep.meta.writeUnverified(this.suspects);
    } catch (err) {
      this.suspectsDirty = true;
      this.sheep.log('warn', `recovery: cannot save the list of unverified copies: ${(err as Error).message}`);
    }
  }

  private unsuspect(key: bigint): void {
    if (this.suspects.delete(key)) this.suspectsDirty = true;
  }

  /**
   * An unverified copy must not be the reference for anyone else's recovery: GET_HASH and recovery reads
   * refuse it, so the asker turns to a node that stayed.
   */
  isSuspect(oid: bigint): boolean {
    return this.suspects.has(oid);
  }

  isPending(oid: bigint): boolean {
    return this.pending.has(oid);
  }

  get active(): boolean {
    return this.preparing !== null || this.running || this.pending.size > 0 || this.inFlight.size > 0;
  }

  /** Called synchronously at an epoch change, before any request of the new epoch can arrive. */
  beginEpoch(epoch: number): void {
    this.epoch = epoch;
    this.preparedResolve?.();
    this.preparing = new Promise<void>((r) => (this.preparedResolve = r));
  }

  private endPrepare(): void {
    this.preparedResolve?.();
    this.preparedResolve = null;
    this.preparing = null;
  }

  /** Builds the list for `epoch`: every object any live node has that this node should hold but lacks. */
  async prepare(epoch: number): Promise<number> {
    try {
      return await this.makeList(epoch);
    } finally {
      if (this.epoch === epoch) this.endPrepare();
    }
  }

  private async makeList(epoch: number): Promise<number> {
    this.epoch = epoch; // a previous run stops picking new objects once the epoch moves on
    const sheep = this.sheep;
    const local = await sheep.store.list();
    const mine = new Set(local.map((o) => o.toString()));
    const returning = this.suspectLocal;
    const seen = new Map<bigint, SdNode[]>();
    let complete = true;
    const unlisted: SdNode[] = [];
    await Promise.all(
      sheep.members
        .filter((n) => !sheep.isSelf(n) && n.nrVnodes > 0)
        .map(async (n) => {
          try {
            const c = await sheep.peers.get(n.nid.addr, n.nid.port);
            const r = await c.request({ opcode: Op.GET_OBJ_LIST, flags: Flag.CMD_RECOVERY, dataLength: 64 << 20, epoch });
            if (r.result !== Res.SUCCESS) {
              complete = false;
              unlisted.push(n);
              return;
            }
            for (let i = 0; i + 8 <= r.data.length; i += 8) {
              const oid = r.data.readBigUInt64LE(i);
              const list = seen.get(oid);
              if (list) list.push(n);
              else seen.set(oid, [n]);
            }
          } catch (err) {
            complete = false;
            unlisted.push(n);
            sheep.log('warn', `recovery: cannot list objects of ${n.nid.addr}:${n.nid.port}: ${(err as Error).message}`);
          }
        }),
    );
    if (this.epoch !== epoch) return 0;
    if (recoveryWouldFillDisk(sheep, new Set([...seen.keys(), ...local]))) {
      // `-F`: nothing is pulled or set aside; the cluster runs on with lower redundancy.
      this.order = [];
      this.pending = new Set();
      this.total = this.done = this.failed = 0;
      return 0;
    }
    const wanted: bigint[] = [];
    this.verify = new Set();
    for (const [oid, holders] of seen) {
      // What this node should hold: the object, or for an EC object the strip of its place in the list.
      const key = sheep.ownedKeyOf(oid);
      if (key === null) continue;
      // Data of a deleted VDI is garbage wherever it lingers (a returning node, a stale copy): never recover it.
      if (await sheep.isOrphan(oid)) continue;
      if (mine.has(key.toString())) {
        if (!this.suspects.has(key)) continue;
        this.verify.add(key);
      }
      wanted.push(key);
      this.sources.set(key, holders);
    }
    // Copies this node no longer owns are set aside now, not when the job ends: a job cut short by the next
    // epoch would leave them looking current, and if the object came back to this node later it would be
    // kept as it was while writes went elsewhere (found by the simulator, seed 1: a lost write). New owners
    // take live copies first, and set-aside ones (the newest) only when no live one is left.
    for (const key of local) {
      if (this.epoch !== epoch) break;
      if (!this.owns(key)) await this.setAside(key, epoch);
    }
    // Local data of VDIs deleted meanwhile (this node was away, or a reclaim missed it) is garbage.
    for (const oid of local) if (await sheep.isOrphan(oid)) await sheep.store.remove(oid).catch(() => undefined);
    // Inodes first: VDI metadata is what clients need before anything else.
    wanted.sort((a, b) => (keyOid(a) >> 63n === keyOid(b) >> 63n ? 0 : keyOid(a) >> 63n ? -1 : 1));
    this.order = wanted;
    this.pending = new Set(wanted);
    if (complete) this.suspectLocal = false;
    if (complete) {
      const lone = local.filter((key) => this.suspects.has(key) && !seen.has(keyOid(key)) && this.owns(key));
      if (lone.length > 0) void this.settleLoneCopies(epoch, lone);
    }
    this.unlistedEpoch = complete ? 0 : epoch;
    if (!complete) void this.relist(epoch, unlisted);
    sheep.log('debug', `recovery: epoch ${epoch}: wanted ${wanted.slice(0, 20).map(keyName).join(' ')}`);
    sheep.log('info', `recovery: epoch ${epoch}: ${wanted.length} objects to recover, ${this.verify.size} local copies to verify${complete ? '' : ' (some nodes could not be listed)'}`);
    this.total = wanted.length;
    this.done = 0;
    this.failed = 0;
    return wanted.length;
  }

  /** Pulls every pending object, `maxInFlight` at a time, reporting progress. */
  async run(epoch: number, maxInFlight: number, progress: (p: RecoveryProgress) => void): Promise<RecoveryProgress> {
    while (this.running) await this.sheep.clock.sleep(10);
    this.running = true;
    this.stopRequested = false;
    try {
      let next = 0;
      const workers = Math.max(1, maxInFlight, this.throttle.maxExecCount);
      const worker = async (index: number) => {
        while (!this.stopRequested && this.epoch === epoch && next < this.order.length) {
          const limit = this.throttle.maxExecCount || maxInFlight;
          if (index >= limit) {
            await this.sheep.clock.sleep(50); // throttled down: idle until allowed again
            continue;
          }
          const oid = this.order[next++]!;
          if (!this.pending.has(oid)) continue;
          await this.recover(oid);
          if ((this.done + this.failed) % PROGRESS_EVERY === 0) progress(this.snapshot());
          if (this.throttle.intervalMs > 0) await this.sheep.clock.sleep(this.throttle.intervalMs);
        }
      };
      await Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
      return this.snapshot();
    } finally {
      this.running = false;
    }
  }

  /** This node holds `key` at the current epoch (the object, or the strip of its place in an EC list). */
  private owns(key: bigint): boolean {
    return this.sheep.ownedKeyOf(keyOid(key)) === key;
  }

  /** Stops the run of `epoch` (a cancelled job); a newer job is not affected. */
  stop(epoch?: number): void {
    if (epoch === undefined) this.halted = true;
    if (epoch === undefined || epoch === this.epoch) this.stopRequested = true;
  }

  snapshot(): RecoveryProgress {
    return { total: this.total, done: this.done, failed: this.failed };
  }

  /** Waits for an object still under recovery (pulling it now, ahead of the queue). */
  async waitFor(oid: bigint): Promise<void> {
    while (this.preparing) await this.preparing; // a newer epoch may begin while we wait
    // (unlistedEpoch 0: every node was listed, or no job ran yet; nothing to look for on demand then.)
    if (this.unlistedEpoch !== 0 && this.unlistedEpoch === this.epoch && !this.pending.has(oid) && !this.inFlight.has(oid)) await this.wantIfMissing(oid, null);
    if (!this.pending.has(oid) && !this.inFlight.has(oid)) return;
    await this.recover(oid);
  }

  /**
   * Moves a copy this node no longer owns to obj/.stale, named by the epoch up to which it is current: the
   * set-aside epoch, or for an unverified copy of a returning node the epoch it is known current up to.
   * (ec-gw under a slow disk: a returning node set its outdated parity strip aside as current at the new
   * epoch, fresher than the true holder's copy set aside one epoch before, and the new holder took it.)
   * It is no longer "unverified": set-aside copies are only ever used after checking that an inode still
   * needs them, and by that epoch.
   */
  private async setAside(oid: bigint, epoch: number): Promise<void> {
    const upTo = this.suspects.get(oid);
    await this.sheep.store.moveToStale(oid, upTo === undefined ? epoch : Math.min(epoch, upTo)).catch(() => undefined);
    this.unsuspect(oid);
    this.verify.delete(oid);
  }

  /** For logs: what recovery knows about an object. */
  describe(oid: bigint): string {
    return `epoch ${this.epoch}, pending ${this.pending.has(oid)}, in flight ${this.inFlight.has(oid)}, suspect ${this.suspects.has(oid)}, unlisted ${this.unlistedEpoch}, preparing ${this.preparing !== null}`;
  }

  /** The object is garbage: recovery stops wanting it (a pull in flight ends at its next step). */
  forget(oid: bigint): void {
    this.pending.delete(oid);
    this.unsuspect(oid);
    this.verify.delete(oid);
  }

  /** A client create supersedes recovery of that object: let an in-flight pull finish first. */
  async supersede(oid: bigint): Promise<void> {
    while (this.preparing) await this.preparing;
    const p = this.inFlight.get(oid);
    if (p) await p.catch(() => undefined);
    this.pending.delete(oid);
    this.unsuspect(oid); // replaced (or removed) as a whole by a client
  }

  private recover(oid: bigint): Promise<void> {
    const existing = this.inFlight.get(oid);
    if (existing) return existing;
    const p = this.pull(oid).finally(() => this.inFlight.delete(oid));
    this.inFlight.set(oid, p);
    return p;
  }

  /**
   * Pulls one object. A failure that may pass (a peer unreachable or busy verifying, this disk full) is
   * retried with backoff for as long as the object is still wanted; only when every holder answers that
   * it has no copy is the object given up. (The simulator found objects left with fewer replicas after a
   * partition healed: the pull had failed once and nothing ever tried again.)
   */
  private async pull(oid: bigint): Promise<void> {
    try {
      await this.pullUntilSettled(oid);
    } finally {
      this.lastRefusal.delete(oid);
    }
  }

  private async pullUntilSettled(oid: bigint): Promise<void> {
    const sheep = this.sheep;
    let delay = 50;
    while (this.pending.has(oid) && !this.halted) {
      const outcome = await this.tryPull(oid);
      if (outcome === 'done' || outcome === 'lost') {
        if (!this.pending.delete(oid)) return;
        if (outcome === 'done') this.done++;
        else {
          this.failed++;
          sheep.log('error', `recovery: no live copy of ${oid.toString(16).padStart(16, '0')} could be read`);
        }
        return;
      }
      if (delay >= 2000) sheep.log('debug', `recovery: ${keyName(oid)} still not recovered (${this.verify.has(oid) ? 'local copy unverified' : 'no holder answered'}; ${this.lastRefusal.get(oid) ?? '-'}): retrying`);
      await sheep.clock.sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }

  private async tryPull(oid: bigint): Promise<'done' | 'lost' | 'retry'> {
    const sheep = this.sheep;
    if (isStripKey(oid)) return this.pullStrip(oid);
    const size = sheep.objectSizeOf(oid);
    const sources = this.sources.get(oid) ?? sheep.members.filter((n) => !sheep.isSelf(n));
    // Every member is asked, not only the nodes that listed the object: one that could not be listed (a
    // partition) may hold the live copy, and neither a set-aside copy nor a returning node's copy may win
    // while it is out of reach. (The simulator found a node recovering an outdated inode from a set-aside
    // copy during a partition, seed 5, and two returning nodes agreeing on their outdated inode while the
    // nodes with the current one could not be listed, seed 151.)
    const listed = new Set(sources.map(nodeId));
    const everyone = [...sources, ...sheep.members.filter((n) => !sheep.isSelf(n) && n.nrVnodes > 0 && !listed.has(nodeId(n)))];
    if (this.verify.has(oid)) {
      const verdict = await this.verifyLocal(oid, everyone);
      sheep.log('debug', `recovery: local copy of ${keyName(oid)}: ${verdict}`);
      if (verdict === 'keep') {
        this.verify.delete(oid);
        this.unsuspect(oid);
        return 'done';
      }
      if (verdict === 'retry') return 'retry';
      if (verdict === 'freed') {
        this.verify.delete(oid);
        this.unsuspect(oid);
        return 'done';
      }
    }
    // First a live copy from any holder. Set-aside (stale) copies may predate later writes, so they are
    // used only when every holder answered and none has a live copy: then the one set aside last.
    // (The simulator found an inode pulled from a stale copy while a live one existed: a lost index entry.)
    let transient = false;
    // The newest epoch up to which a returning node's unverified copy was current (0: none answered so).
    let unverifiedUpTo = 0;
    let unverifiedAt = '';
    const staleOk: SdNode[] = [];
    for (const node of everyone) {
      try {
        const c = await sheep.peers.get(node.nid.addr, node.nid.port);
        const r = await c.request({ opcode: Op.READ_PEER, flags: Flag.CMD_RECOVERY, dataLength: size, epoch: sheep.epoch, obj: { oid } });
        if (r.result === Res.NO_OBJ) {
          staleOk.push(node);
          continue;
        }
        if (r.result === UNVERIFIED) {
          unverifiedUpTo = Math.max(unverifiedUpTo, Number(readObjRsp(r.raw).offset) || 1);
          unverifiedAt = `${node.nid.addr}:${node.nid.port}`;
          staleOk.push(node);
          continue;
        }
        if (r.result !== Res.SUCCESS) {
          transient = true;
          this.lastRefusal.set(oid, `${node.nid.addr}:${node.nid.port} answered 0x${r.result.toString(16)}`);
          continue;
        }
        return await this.store(oid, size, r.data);
      } catch (err) {
        transient = true;
        this.lastRefusal.set(oid, `${node.nid.addr}:${node.nid.port} unreachable`);
        sheep.log('warn', `recovery: pulling ${oid.toString(16)} from ${node.nid.addr}:${node.nid.port} failed: ${(err as Error).message}`);
      }
    }
    if (transient) return 'retry';
    let best: { epoch: number; data: Buffer; from: string } | null = null;
    // This node's own set-aside copy counts too: it may be the newest (simulator seed 180: a node took an
    // older copy another node had set aside over the one in its own .stale, and lost an index entry).
    try {
      const own = await sheep.store.readStale(oid, size);
      best = { epoch: own.epoch, data: own.data, from: 'this node' };
    } catch (err) {
      if (!(err instanceof StoreError) || err.code !== 'NO_OBJ') {
        this.lastRefusal.set(oid, `own set-aside copy unreadable: ${(err as Error).message}`);
        return 'retry';
      }
    }
    for (const node of staleOk) {
      try {
        const c = await sheep.peers.get(node.nid.addr, node.nid.port);
        const r = await c.request({ opcode: Op.READ_PEER, flags: Flag.CMD_RECOVERY | Flag.CMD_WILDCARD, dataLength: size, epoch: sheep.epoch, obj: { oid } });
        // UNVERIFIED: a returning node's copy, already weighed above (unverifiedUpTo).
        if (r.result === Res.NO_OBJ || r.result === UNVERIFIED) continue;
        if (r.result !== Res.SUCCESS) {
          this.lastRefusal.set(oid, `${node.nid.addr}:${node.nid.port} answered 0x${r.result.toString(16)} for set-aside copies`);
          return 'retry';
        }
        const setAside = Number(readObjRsp(r.raw).offset);
        if (setAside === LIVE_COPY) return this.store(oid, size, r.data); // recovered there meanwhile
        if (!best || setAside > best.epoch) best = { epoch: setAside, data: r.data, from: nodeId(node) };
      } catch {
        this.lastRefusal.set(oid, `${node.nid.addr}:${node.nid.port} unreachable for set-aside copies`);
        return 'retry';
      }
    }
    // Returning nodes whose copies are as new as any set-aside one decide among themselves (verifyLocal);
    // a set-aside copy newer than all of them wins over them (found by the simulator, seed 14: three
    // returning holders each waited for the others' verdict while the current copy sat set aside).
    if (unverifiedUpTo > 0 && (!best || best.epoch <= unverifiedUpTo)) {
      this.lastRefusal.set(oid, `an unverified copy (${unverifiedAt}, member until epoch ${unverifiedUpTo}) is as new as any set-aside one (${best?.epoch ?? 'none'})`);
      return 'retry';
    }
    if (best) {
      // Only set-aside copies left: the object moved on (recover it), or it was freed since (leave it).
      if (isDataObj(oid) && !(await stillReferenced(sheep, oidToVid(oid), dataOidIndex(oid), 0).catch(() => true))) {
        sheep.log('debug', `recovery: ${oid.toString(16).padStart(16, '0')} exists only set aside and nothing uses it: not recovered`);
        return 'done';
      }
      sheep.log('debug', `recovery: ${keyName(oid)}: no live copy; taking the one ${best.from} set aside at epoch ${best.epoch}`);
      return this.store(oid, size, best.data);
    }
    if (this.verify.has(oid)) return 'retry'; // keep asking: the local copy is all there is meanwhile
    return 'lost';
  }

  /**
   * An EC strip this node should hold: rebuilt from d other strips (ec-recovery.ts). A returning node's
   * own strip (unverified) is replaced by the rebuilt one, or kept when no d others can be read.
   */
  private async pullStrip(key: bigint): Promise<'done' | 'lost' | 'retry'> {
    const unverified = this.verify.has(key);
    const r = await rebuildStrip(this.sheep, key, { trustOwnLive: !unverified });
    if (r.outcome === 'rebuilt') return this.store(key, r.data.length, r.data);
    if (r.outcome === 'short' && unverified) {
      this.sheep.log('info', `recovery: ${keyName(key)}: too few other strips to check against: local strip kept`);
      this.verify.delete(key);
      this.unsuspect(key);
      return 'done';
    }
    return r.outcome === 'retry' ? 'retry' : 'lost';
  }

  private async store(oid: bigint, size: number, data: Buffer): Promise<'done' | 'retry'> {
    if (!this.pending.has(oid)) return 'done'; // a client created it meanwhile
    const epoch = this.epoch;
    try {
      await this.sheep.store.create(oid, size, data, 0);
    } catch (err) {
      this.sheep.log('warn', `recovery: storing ${oid.toString(16).padStart(16, '0')} failed: ${(err as Error).message}`);
      return 'retry'; // e.g. the disk is full for now
    }
    this.unsuspect(oid);
    this.verify.delete(oid);
    // The next epoch began while the copy was being written and no longer places it here: it is set aside
    // like the copies that epoch's job set aside when it began (found by the simulator, seed 109: a pull
    // that completed just after the epoch change left a fourth replica).
    if (this.epoch !== epoch && !this.owns(oid)) await this.setAside(oid, this.epoch);
    return 'done';
  }

  /**
   * Is this returning node's copy current? Compared (SHA-1) with a holder that stayed. When no holder that
   * stayed has one, the copies of returning nodes decide: the one that was a member last wins (ties: the
   * lowest address), and the others wait for it.
   */
  private async verifyLocal(oid: bigint, sources: SdNode[]): Promise<'keep' | 'replace' | 'retry' | 'freed'> {
    const sheep = this.sheep;
    const mine = this.suspectEpoch(oid) || this.lastEpochBeforeReturn;
    const unverified: Array<{ id: string; lastEpoch: number }> = [{ id: sheep.selfId, lastEpoch: mine }];
    let transient = false;
    for (const node of sources) {
      try {
        const c = await sheep.peers.get(node.nid.addr, node.nid.port);
        const r = await c.request({ opcode: Op.GET_HASH, flags: Flag.CMD_RECOVERY, obj: { oid } });
        if (r.result === Res.SUCCESS) {
          const theirs = r.raw.subarray(24, 44).toString('hex');
          return theirs === (await sheep.localHash(oid)) ? 'keep' : 'replace';
        }
        if (r.result === UNVERIFIED) unverified.push({ id: `${node.nid.addr}:${node.nid.port}`, lastEpoch: r.raw.readUInt32LE(24) });
        else if (r.result !== Res.NO_OBJ) transient = true;
      } catch {
        transient = true;
      }
    }
    if (transient) return 'retry';
    // No node that stayed has it: if nothing uses it any more, it was freed while its holders were away.
    if (isDataObj(oid) && !(await stillReferenced(sheep, oidToVid(oid), dataOidIndex(oid), 0).catch(() => true))) {
      sheep.log('info', `recovery: ${oid.toString(16).padStart(16, '0')} was freed while this node was away: removed`);
      await sheep.store.remove(oid).catch(() => undefined);
      return 'freed';
    }
    // A copy set aside after this node left was current longer than ours: take it instead (the holders
    // that stayed may all have moved the object on, and set it aside, while we were away).
    const newest = await this.newestSetAside(oid, sources);
    if (newest === 'retry') return 'retry';
    if (newest > mine) return 'replace';
    unverified.sort((a, b) => b.lastEpoch - a.lastEpoch || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    sheep.log('debug', `recovery: ${keyName(oid)}: no verified copy; newest set aside at ${newest}; unverified ${unverified.map((u) => `${u.id}@${u.lastEpoch}`).join(' ')}`);
    return unverified[0]!.id === sheep.selfId ? 'keep' : 'retry';
  }

  /** The highest epoch at which any source set this object aside (0: none), or 'retry' if one did not answer. */
  private async newestSetAside(oid: bigint, sources: SdNode[]): Promise<number | 'retry'> {
    const sheep = this.sheep;
    let newest = 0;
    for (const node of sources) {
      try {
        const c = await sheep.peers.get(node.nid.addr, node.nid.port);
        const r = await c.request({ opcode: Op.READ_PEER, flags: Flag.CMD_RECOVERY | Flag.CMD_WILDCARD, dataLength: 0, epoch: sheep.epoch, obj: { oid } });
        if (r.result === Res.NO_OBJ || r.result === UNVERIFIED) continue;
        if (r.result !== Res.SUCCESS) return 'retry';
        newest = Math.max(newest, Number(readObjRsp(r.raw).offset));
      } catch {
        return 'retry';
      }
    }
    return newest;
  }

  /**
   * Some nodes could not be listed when the job began (a partition): keep asking them, and recover what
   * they have that this node should hold. (The simulator found nodes left without their objects after a
   * partition healed, because the list was made once.)
   */
  private async relist(epoch: number, nodes: SdNode[]): Promise<void> {
    const sheep = this.sheep;
    let delay = 200;
    while (nodes.length > 0 && this.epoch === epoch && !this.halted) {
      await sheep.clock.sleep(delay);
      delay = Math.min(delay * 2, 2000);
      for (const n of [...nodes]) {
        try {
          const c = await sheep.peers.get(n.nid.addr, n.nid.port);
          const r = await c.request({ opcode: Op.GET_OBJ_LIST, flags: Flag.CMD_RECOVERY, dataLength: 64 << 20, epoch });
          if (r.result !== Res.SUCCESS || this.epoch !== epoch) continue;
          nodes.splice(nodes.indexOf(n), 1);
          for (let i = 0; i + 8 <= r.data.length; i += 8) await this.wantIfMissing(r.data.readBigUInt64LE(i), n);
        } catch {
          /* still unreachable */
        }
      }
    }
    if (nodes.length === 0 && this.epoch === epoch) {
      this.unlistedEpoch = 0;
      this.suspectLocal = false;
      sheep.log('info', `recovery: epoch ${epoch}: every node listed`);
      // Unverified copies nobody else lists are settled now, as a complete listing would have (found by
      // the simulator, seed 149: a returning node kept the unverified copy of an object freed meanwhile,
      // and the other holders waited for its verdict forever).
      const lone = (await sheep.store.list()).filter((key) => this.suspects.has(key) && !this.pending.has(key) && !this.inFlight.has(key) && this.owns(key));
      if (lone.length > 0) void this.settleLoneCopies(epoch, lone);
    }
  }

  /**
   * Unverified copies no other node has: either the last copy of live data (keep and trust it) or garbage
   * reclaimed while this node was away (set it aside). Decided by whether an inode still points at it,
   * once the job's list is ready (the inode reads go through the gateway). Until then other nodes asking
   * for it hear UNVERIFIED and wait. (The simulator found both cases stalling recovery.)
   */
  private async settleLoneCopies(epoch: number, lone: bigint[]): Promise<void> {
    const sheep = this.sheep;
    for (const oid of lone) {
      if (this.epoch !== epoch || this.halted) return;
      try {
        if (isDataObj(oid) && !(await stillReferenced(sheep, oidToVid(oid), dataOidIndex(oid), 0))) {
          // Removed, not set aside: a set-aside copy would be pulled back by a node that finds no live one.
          sheep.log('info', `recovery: ${oid.toString(16).padStart(16, '0')} was freed while this node was away: removed`);
          await sheep.store.remove(oid);
        }
        this.unsuspect(oid);
      } catch (err) {
        sheep.log('warn', `recovery: cannot tell whether ${oid.toString(16).padStart(16, '0')} is still used: ${(err as Error).message}`);
        if (!(await sheep.store.exists(oid).catch(() => true))) this.unsuspect(oid); // gone meanwhile
      }
    }
  }

  /** Adds an object this node should hold but lacks to the job (from `holder`, or any member) and pulls it. */
  private async wantIfMissing(oid: bigint, holder: SdNode | null): Promise<void> {
    const sheep = this.sheep;
    const key = sheep.ownedKeyOf(keyOid(oid));
    if (key === null) return;
    oid = key; // from here on: the store key (the oid itself unless EC)
    if (this.pending.has(oid) || this.inFlight.has(oid)) {
      if (holder) this.sources.set(oid, [...(this.sources.get(oid) ?? []).filter((n) => n !== holder), holder]);
      return;
    }
    const orphan = await sheep.isOrphan(oid);
    const exists = !orphan && (await sheep.store.exists(oid));
    // A copy kept from before this node left is suspect until verified against the others, even when no
    // node could be listed yet (found by the simulator, seed 27: a returning node, cut off by a partition,
    // served its outdated inode and an acknowledged write read back as zeros).
    const unverified = exists && this.suspects.has(oid);
    if (!holder) sheep.log('debug', `recovery: on demand ${oid.toString(16)}: orphan ${orphan}, exists ${exists}${unverified ? ' (unverified)' : ''}`);
    if (orphan || (exists && !unverified)) return;
    if (this.pending.has(oid) || this.inFlight.has(oid)) return;
    this.sources.set(oid, holder ? [holder] : sheep.members.filter((n) => !sheep.isSelf(n) && n.nrVnodes > 0));
    if (unverified) this.verify.add(oid);
    this.pending.add(oid);
    this.total++;
    if (holder) void this.recover(oid).catch(() => undefined);
  }

  /** After a job: copies this node holds but no longer owns go to obj/.stale (still served to recovery). */
  async finish(epoch: number): Promise<void> {
    const sheep = this.sheep;
    await this.saveSuspects();
    if (this.epoch !== epoch || this.pending.size > 0) return;
    for (const key of await sheep.store.list()) {
      if (this.owns(key)) continue;
      sheep.log('debug', `recovery: ${keyName(key)} no longer belongs here: moved to .stale`);
      await this.setAside(key, epoch);
    }
  }
}

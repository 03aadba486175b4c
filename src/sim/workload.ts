// The simulated clients: they create, snapshot, clone and delete VDIs and write and read their bytes
// through gateway nodes over the simulated network, exactly as QEMU and dog do (src/client/vdi-io.ts).
// A model remembers every acknowledged write; each read is checked against it. An operation whose
// outcome is unknown (its gateway died, the network reset) is retried until it is acknowledged, as a VM
// retries a failed request; only then does the model take the new bytes.
import { ConnectionError } from '../client/sheep-client.js';
import type { SheepTransport } from '../client/transport.js';
import { deleteVdi, readInodeHeaderOf, readVdi, VdiIoError, writeVdi } from '../client/vdi-io.js';
import { Op, Res, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN } from '../proto/constants.js';
import { vidToVdiOid } from '../proto/oid.js';
import { InodeOff } from '../proto/structs.js';
import type { Rng } from './rng.js';
import type { Scheduler } from './scheduler.js';
import type { World } from './world.js';

export const BLOCK_SIZE_SHIFT = 22;
export const OBJECT_SIZE = 2 ** BLOCK_SIZE_SHIFT;
/** Objects per VDI; the clients write within the first WINDOW bytes of each object. */
export const OBJECTS_PER_VDI = 8;
export const WINDOW = 64 * 1024;
const MAX_VDIS = 12;
/** How long one operation keeps retrying before it is reported as unavailable (not a violation). */
const GIVE_UP_MS = 90_000;

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

export interface VdiModel {
  readonly key: string;
  readonly name: string;
  tag: string;
  vid: number;
  snapshot: boolean;
  /** Acknowledged contents of each object's window; absent = never written (zeros). */
  objects: Map<number, Buffer>;
  /** Objects whose write was never acknowledged (replicas may disagree): not checked. */
  uncertain: Set<number>;
  busy: boolean;
  deleted: boolean;
}

/** Results a client retries elsewhere or later: the cluster is changing under it. */
const RETRYABLE = new Set<number>([Res.NETWORK_ERROR, Res.WAIT_FOR_JOIN, Res.WAIT_FOR_FORMAT, Res.SHUTDOWN, Res.NEW_NODE_VER, Res.OLD_NODE_VER, Res.NO_SPACE, Res.EIO, Res.HALT, Res.SYSTEM_ERROR]);

function nameTag(name: string, tag = ''): Buffer {
  const b = Buffer.alloc(SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN);
  b.write(name, 0, 'latin1');
  b.write(tag, SD_MAX_VDI_LEN, 'latin1');
  return b;
}

class Unavailable extends Error {}

export class Workload {
  readonly models = new Map<string, VdiModel>();
  private nextName = 0;
  private nextTag = 0;
  started = 0;
  acked = 0;
  unavailable = 0;
  readsChecked = 0;
  /** Set when the run must stop: the first violated invariant. */
  violation: InvariantViolation | null = null;

  constructor(
    private readonly world: World,
    private readonly sched: Scheduler,
    private readonly rng: Rng,
    private readonly step: (what: string) => void,
  ) {}

  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.sched.schedule(r, ms, null));
  }

  /** A transport to one gateway chosen at random among the running nodes. */
  private gateway(): SheepTransport & { id: string } {
    const up = this.world.up();
    const id = up.length > 0 ? this.rng.pick(up).id : this.world.nodes[0]!.id;
    return { id, request: (init, data) => this.world.net.send('client', null, id, init, data) };
  }

  /** Runs `fn` against gateways until it completes without a retryable failure. */
  async withRetry<T>(what: string, fn: (t: SheepTransport, attempt: number) => Promise<T>): Promise<T> {
    const deadline = this.sched.now() + GIVE_UP_MS;
    for (let attempt = 0; ; attempt++) {
      const gw = this.gateway();
      try {
        return await fn(gw, attempt);
      } catch (err) {
        const retry = err instanceof ConnectionError || (err instanceof VdiIoError && RETRYABLE.has(err.result));
        if (!retry) throw err;
        if (this.sched.now() > deadline) throw new Unavailable(`${what}: gave up after ${attempt + 1} attempts (${(err as Error).message})`);
      }
      await this.sleep(100 + this.rng.int(0, 400));
    }
  }

  async formatCluster(copies: number): Promise<void> {
    await this.withRetry('format', async (t) => {
      const r = await t.request({ opcode: Op.MAKE_FS, cluster: { copies, flags: 0, blockSizeShift: BLOCK_SIZE_SHIFT } }, Buffer.from('plain\0'));
      check(r.result, 'format');
    });
    this.step(`format copies=${copies}`);
  }

  /** One client: runs operations until the workload's budget is spent. */
  async client(id: number, budget: { left: number }): Promise<void> {
    while (budget.left > 0 && !this.violation) {
      budget.left--;
      const n = ++this.started;
      try {
        await this.oneOp(id, n);
      } catch (err) {
        if (err instanceof InvariantViolation) {
          this.violation ??= err;
          return;
        }
        if (err instanceof Unavailable) {
          this.unavailable++;
          this.step(`op#${n} c${id} unavailable: ${err.message}`);
        } else {
          this.violation ??= new InvariantViolation('operation failed', `op#${n}: ${(err as Error).message}`);
          return;
        }
      }
      await this.sleep(this.rng.int(20, 120)); // a client's think time: faults get to strike mid-workload
    }
  }

  private idle(filter: (m: VdiModel) => boolean): VdiModel[] {
    return [...this.models.values()].filter((m) => !m.deleted && !m.busy && filter(m));
  }

  private async oneOp(client: number, n: number): Promise<void> {
    const working = this.idle((m) => !m.snapshot);
    const snapshots = this.idle((m) => m.snapshot);
    const live = [...this.models.values()].filter((m) => !m.deleted).length;
    const roll = this.rng.float();
    if (working.length === 0 || (roll < 0.1 && live < MAX_VDIS)) return this.create(client, n);
    if (roll < 0.5) return this.write(client, n, this.rng.pick(working));
    if (roll < 0.8) return this.read(client, n, this.rng.pick([...working, ...snapshots]));
    if (roll < 0.87 && live < MAX_VDIS) return this.snapshot(client, n, this.rng.pick(working));
    if (roll < 0.92 && snapshots.length > 0 && live < MAX_VDIS) return this.clone(client, n, this.rng.pick(snapshots));
    if (roll < 1 && live > 2) return this.remove(client, n, this.rng.pick([...working, ...snapshots]));
    return this.read(client, n, this.rng.pick(working));
  }

  private async locked<T>(m: VdiModel, fn: () => Promise<T>): Promise<T> {
    m.busy = true;
    try {
      return await fn();
    } finally {
      m.busy = false;
    }
  }

  private async lookup(t: SheepTransport, name: string, tag = ''): Promise<number | null> {
    const r = await t.request({ opcode: Op.GET_VDI_INFO }, nameTag(name, tag));
    if (r.result === Res.NO_VDI || r.result === Res.NO_TAG) return null;
    check(r.result, `looking up ${name}${tag ? `:${tag}` : ''}`);
    return r.raw.readUInt32LE(24);
  }

  private async newVdi(t: SheepTransport, name: string, base: number, snapshot: boolean): Promise<number> {
    const r = await t.request(
      { opcode: Op.NEW_VDI, vdi: { vdiSize: BigInt(OBJECTS_PER_VDI * OBJECT_SIZE), baseVdiId: base, snapid: snapshot ? 1 : 0, copies: 0, blockSizeShift: BLOCK_SIZE_SHIFT } },
      nameTag(name).subarray(0, SD_MAX_VDI_LEN),
    );
    check(r.result, `creating ${name}`);
    return r.raw.readUInt32LE(24);
  }

  async create(client: number, n: number): Promise<void> {
    const name = `vdi${this.nextName++}`;
    const vid = await this.withRetry(`create ${name}`, async (t) => (await this.lookup(t, name)) ?? this.newVdi(t, name, 0, false));
    this.models.set(name, { key: name, name, tag: '', vid, snapshot: false, objects: new Map(), uncertain: new Set(), busy: false, deleted: false });
    this.acked++;
    this.step(`op#${n} c${client} create ${name} vid=${hex(vid)}`);
  }

  async write(client: number, n: number, m: VdiModel): Promise<void> {
    const idx = this.rng.int(0, OBJECTS_PER_VDI - 1);
    const len = 512 * this.rng.int(1, 32);
    const off = 512 * this.rng.int(0, (WINDOW - len) / 512);
    const data = Buffer.from(this.rng.fill(new Uint8Array(len)));
    await this.locked(m, async () => {
      try {
        await this.withRetry(`write ${m.key}`, (t, attempt) => writeVdi(t, m.vid, idx * OBJECT_SIZE + off, data, BLOCK_SIZE_SHIFT, { resendIndex: attempt > 0 }));
      } catch (err) {
        m.uncertain.add(idx); // some replicas may hold the new bytes, some not
        throw err;
      }
      const window = Buffer.alloc(WINDOW);
      m.objects.get(idx)?.copy(window);
      data.copy(window, off);
      m.objects.set(idx, window);
      this.acked++;
      this.step(`op#${n} c${client} write ${m.key}[${idx}] +${off} x${len} ok`);
    });
  }

  /** Reads one object's window and checks it against the last acknowledged contents. */
  async read(client: number, n: number, m: VdiModel): Promise<void> {
    const idx = this.rng.int(0, OBJECTS_PER_VDI - 1);
    await this.locked(m, async () => {
      const got = await this.withRetry(`read ${m.key}`, (t) => readVdi(t, m.vid, idx * OBJECT_SIZE, WINDOW, BLOCK_SIZE_SHIFT));
      this.verify(m, idx, got, `op#${n}`);
      this.step(`op#${n} c${client} read ${m.key}[${idx}] ok`);
    });
  }

  verify(m: VdiModel, idx: number, got: Buffer, where: string): void {
    if (m.uncertain.has(idx)) return;
    const want = m.objects.get(idx) ?? Buffer.alloc(WINDOW);
    this.readsChecked++;
    if (!got.equals(want)) {
      let at = 0;
      while (at < WINDOW && got[at] === want[at]) at++;
      const which = m.snapshot ? 'snapshot contents never change' : 'a read returns the last acknowledged write';
      throw new InvariantViolation(which, `${where}: ${m.key} (vid ${hex(m.vid)}) object ${idx} differs at byte ${at}: read ${got[at]}, acknowledged ${want[at]}`);
    }
  }

  async snapshot(client: number, n: number, m: VdiModel): Promise<void> {
    const tag = `s${this.nextTag++}`;
    await this.locked(m, async () => {
      const old = m.vid;
      const working = await this.withRetry(`snapshot ${m.key}`, async (t) => {
        const now = await this.lookup(t, m.name);
        if (now !== null && now !== old) return now; // an earlier attempt went through
        const tagBuf = Buffer.alloc(SD_MAX_VDI_TAG_LEN);
        tagBuf.write(tag, 'latin1');
        const w = await t.request({ opcode: Op.WRITE_OBJ, obj: { oid: vidToVdiOid(old), offset: InodeOff.tag } }, tagBuf);
        check(w.result, `tagging ${m.key}`);
        try {
          return await this.newVdi(t, m.name, old, true);
        } catch (err) {
          // An earlier attempt may have gone through while this gateway had not applied it yet (cluster
          // operations reach each node in order, not at once): look again.
          if (err instanceof VdiIoError && err.result === Res.NO_VDI) throw new VdiIoError(Res.NETWORK_ERROR, 'snapshot base not current here yet');
          throw err;
        }
      });
      const snap: VdiModel = { key: `${m.name}:${tag}`, name: m.name, tag, vid: old, snapshot: true, objects: cloneObjects(m.objects), uncertain: new Set(m.uncertain), busy: false, deleted: false };
      this.models.set(snap.key, snap);
      m.vid = working;
      this.acked++;
      this.step(`op#${n} c${client} snapshot ${m.key} -> ${snap.key} vid=${hex(old)}, working vid=${hex(working)}`);
    });
  }

  async clone(client: number, n: number, s: VdiModel): Promise<void> {
    const name = `vdi${this.nextName++}`;
    await this.locked(s, async () => {
      const vid = await this.withRetry(`clone ${s.key}`, async (t) => (await this.lookup(t, name)) ?? this.newVdi(t, name, s.vid, false));
      this.models.set(name, { key: name, name, tag: '', vid, snapshot: false, objects: cloneObjects(s.objects), uncertain: new Set(s.uncertain), busy: false, deleted: false });
      this.acked++;
      this.step(`op#${n} c${client} clone ${s.key} -> ${name} vid=${hex(vid)}`);
    });
  }

  async remove(client: number, n: number, m: VdiModel): Promise<void> {
    await this.locked(m, async () => {
      await this.deleteOne(m.name, m.tag, m.vid);
      m.deleted = true;
      this.acked++;
      this.step(`op#${n} c${client} delete ${m.key}`);
    });
  }

  async deleteOne(name: string, tag: string, vid: number): Promise<void> {
    await this.withRetry(`delete ${name}${tag ? `:${tag}` : ''}`, async (t) => {
      const now = await this.lookup(t, name, tag);
      if (now !== vid) return; // gone already (an earlier attempt), or the name moved on
      const r = await deleteVdi(t, name, vid, nameTag(name, tag), 0, OBJECTS_PER_VDI);
      if (r === Res.NO_VDI || r === Res.NO_TAG) return;
      check(r, `deleting ${name}`);
    });
  }

  /** Reads every object of every VDI and snapshot the model knows (after recovery): nothing acknowledged is lost. */
  async verifyAll(): Promise<void> {
    for (const m of this.models.values()) {
      if (m.deleted) continue;
      for (let idx = 0; idx < OBJECTS_PER_VDI; idx++) {
        const got = await this.withRetry(`verify ${m.key}`, (t) => readVdi(t, m.vid, idx * OBJECT_SIZE, WINDOW, BLOCK_SIZE_SHIFT));
        this.verify(m, idx, got, 'final check');
      }
    }
    this.step(`verified every acknowledged write (${this.readsChecked} reads checked)`);
  }

  /** Deletes every VDI in the cluster, the model's and any the clients lost track of. */
  async deleteAll(vids: number[]): Promise<void> {
    for (const m of this.models.values()) {
      if (m.deleted || m.snapshot) continue;
      await this.deleteOne(m.name, m.tag, m.vid);
      m.deleted = true;
    }
    for (const m of this.models.values()) {
      if (m.deleted) continue;
      await this.deleteOne(m.name, m.tag, m.vid);
      m.deleted = true;
    }
    for (const vid of vids) {
      const h = await this.withRetry(`inode ${hex(vid)}`, (t) => readInodeHeaderOf(t, vid));
      await this.deleteOne(h.name, h.tag, vid);
    }
    this.step(`deleted every VDI`);
  }
}

function check(result: number, what: string): void {
  if (result !== Res.SUCCESS) throw new VdiIoError(result, what);
}

function cloneObjects(src: Map<number, Buffer>): Map<number, Buffer> {
  return new Map([...src].map(([k, v]) => [k, Buffer.from(v)]));
}

export function hex(vid: number): string {
  return vid.toString(16);
}

// Rebuilding an erasure-coded strip (Sheepdog's recover_erasure_object): a node that has become the i-th
// holder of an EC object reads d other strips and decodes strip i. Where strips are is known from the
// epoch history: at epoch e, the j-th node of the object's placement held strip j. So the holders of the
// newest epochs are asked first; live strips before set-aside (stale) ones, which every node that moved to
// another place in the list leaves behind.
import { Flag, Op, Res } from '../proto/constants.js';
import type { SdNode } from '../proto/structs.js';
import { buildVnodeRing, placeObject, toRingNode, type VnodeRing } from '../placement/ring.js';
import { createCodec } from '../ec/fec.js';
import { EC_INLINE_LIMIT } from '../ec/ec-pool.js';
import { ecPolicy } from '../ec/policy.js';
import { StoreError } from '../store/object-store.js';
import { keyOid, keyStripIndex, stripKey } from '../store/strip-key.js';
import type { Sheep } from './sheep.js';
import { readObjRsp } from '../proto/header.js';
import { LIVE_COPY } from './recovery.js';

/** How many epochs back strip holders are looked for (older ones have set their strips aside long ago). */
const MAX_EPOCHS_BACK = 16;

export type RebuildResult =
  | { outcome: 'rebuilt'; data: Buffer }
  /** Every live node answered, but fewer than d strips exist. */
  | { outcome: 'short'; found: number }
  /** A node that may hold a strip did not answer (yet): ask again later. */
  | { outcome: 'retry' }
  /** The object is not erasure coded (its VDI is gone). */
  | { outcome: 'gone' };

interface Candidate {
  readonly node: SdNode;
  readonly index: number;
}

const rings = new WeakMap<Sheep, Map<number, VnodeRing>>();

function ringOf(sheep: Sheep, epoch: number, nodes: readonly SdNode[]): VnodeRing {
  let byEpoch = rings.get(sheep);
  if (!byEpoch) rings.set(sheep, (byEpoch = new Map()));
  let ring = byEpoch.get(epoch);
  if (!ring) {
    ring = buildVnodeRing(nodes.map(toRingNode));
    byEpoch.set(epoch, ring);
    if (byEpoch.size > 4 * MAX_EPOCHS_BACK) byEpoch.delete(Math.min(...byEpoch.keys()));
  }
  return ring;
}

const nodeId = (n: SdNode): string => `${n.nid.addr}:${n.nid.port}`;

/** (node, strip index) pairs that held strips of `oid`, newest epoch first, live members only. */
function stripCandidates(sheep: Sheep, oid: bigint, n: number): Candidate[] {
  const live = new Set(sheep.members.filter((m) => m.nrVnodes > 0).map(nodeId));
  const seen = new Set<string>();
  const out: Candidate[] = [];
  for (let e = sheep.epoch; e > 0 && e > sheep.epoch - MAX_EPOCHS_BACK; e--) {
    const nodes = sheep.epochs.get(e)?.nodes;
    if (!nodes || !nodes.some((m) => m.nrVnodes > 0)) continue;
    placeObject(ringOf(sheep, e, nodes), oid, n).forEach((ni, index) => {
      const node = nodes[ni]!;
      const id = `${nodeId(node)}#${index}`;
      if (!live.has(nodeId(node)) || seen.has(id)) return;
      seen.add(id);
      out.push({ node, index });
    });
  }
  return out;
}

/** A strip read back, with the epoch it was set aside at (Infinity: a live strip). */
interface Found {
  readonly data: Buffer;
  readonly setAsideAt: number;
}

/** Strip `index` of `oid` from `node`: its bytes, null if it has none, 'retry' if it could not say. */
async function readStrip(sheep: Sheep, c: Candidate, oid: bigint, len: number, setAside: boolean, own: bigint | null): Promise<Found | null | 'retry'> {
  const key = stripKey(oid, c.index);
  if (sheep.isSelf(c.node)) {
    try {
      if (setAside) {
        const stale = await sheep.store.readStale(key, len);
        return { data: stale.data, setAsideAt: stale.epoch };
      }
      if (key === own) return null; // the strip being rebuilt: missing, or not trusted
      if (!(await sheep.store.exists(key))) return null;
      return { data: await sheep.store.read(key, 0, len), setAsideAt: Infinity };
    } catch (err) {
      return err instanceof StoreError && err.code === 'NO_OBJ' ? null : 'retry';
    }
  }
  try {
    const peer = await sheep.peers.get(c.node.nid.addr, c.node.nid.port);
    const flags = Flag.CMD_RECOVERY | (setAside ? Flag.CMD_WILDCARD : 0);
    const { d, p } = sheep.ecOf(oid)!;
    const r = await peer.request({ opcode: Op.READ_PEER, flags, dataLength: len, epoch: sheep.epoch, obj: { oid, ecIndex: c.index, copyPolicy: ecPolicy(d, p) } });
    if (r.result === Res.NO_OBJ) return null;
    if (r.result !== Res.SUCCESS) return 'retry'; // e.g. an unverified strip of a returning node
    const reported = Number(readObjRsp(r.raw).offset);
    const setAsideAt = !setAside || reported === LIVE_COPY ? Infinity : reported;
    if (r.data.length >= len) return { data: r.data, setAsideAt };
    const out = Buffer.alloc(len);
    r.data.copy(out);
    return { data: out, setAsideAt };
  } catch {
    return 'retry';
  }
}

/**
 * Rebuilds the strip `key` names. Live strips are gathered first; set-aside ones only when the live ones
 * are too few and every holder answered. `trustOwnLive` false: this node's own copy of the strip does not
 * count (it is the unverified copy of a returning node).
 */
export async function rebuildStrip(sheep: Sheep, key: bigint, opts: { trustOwnLive: boolean }): Promise<RebuildResult> {
  const oid = keyOid(key);
  const want = keyStripIndex(key);
  const ec = sheep.ecOf(oid);
  if (!ec) return { outcome: 'gone' };
  const n = ec.d + ec.p;
  if (want < 0 || want >= n) throw new RangeError(`strip ${want} of a ${ec.d}:${ec.p} object`);
  const len = sheep.storeSizeOf(key);
  const candidates = stripCandidates(sheep, oid, n);
  // Per strip index the freshest copy: live ones first; among set-aside ones the one set aside last (a
  // node may also keep a strip it held epochs ago, from before later writes).
  const best: Array<Found | null> = new Array(n).fill(null);
  const live = () => best.filter((f) => f && f.setAsideAt === Infinity).length;
  for (const setAside of [false, true]) {
    let unsure = false;
    for (const c of candidates) {
      if (!setAside && (live() >= ec.d || best[want])) break;
      if (best[c.index]?.setAsideAt === Infinity) continue;
      const r = await readStrip(sheep, c, oid, len, setAside, opts.trustOwnLive ? null : key);
      if (r === 'retry') unsure = true;
      else if (r && (!best[c.index] || r.setAsideAt > best[c.index]!.setAsideAt)) best[c.index] = r;
    }
    if (best[want]?.setAsideAt === Infinity) return { outcome: 'rebuilt', data: best[want]!.data }; // the strip itself is live elsewhere
    if (live() >= ec.d) break;
    if (unsure) return { outcome: 'retry' }; // hear every live holder before trusting set-aside strips
  }
  // Decode from the d freshest other strips, unless a set-aside copy of the strip itself is at least as
  // fresh as the stalest of them: a copy is current up to the epoch it was set aside at, and an older one
  // misses later writes (found by test/ec-gw: a strip set aside two epochs back was taken over a decode
  // from three live strips and one set aside the epoch before).
  const order = best
    .map((f, i) => ({ f, i }))
    .filter((x) => x.f !== null && x.i !== want)
    .sort((a, b) => b.f!.setAsideAt - a.f!.setAsideAt || a.i - b.i)
    .slice(0, ec.d);
  const decodable = order.length >= ec.d;
  const decodeFreshness = decodable ? Math.min(...order.map((x) => x.f!.setAsideAt)) : -1;
  const own = best[want];
  if (own && own.setAsideAt >= decodeFreshness) return { outcome: 'rebuilt', data: own.data };
  if (!decodable) return { outcome: 'short', found: order.length };
  const strips: Array<Buffer | null> = new Array(n).fill(null);
  for (const { f, i } of order) strips[i] = f!.data;
  const missing = [want];
  const rebuilt = len * ec.d > EC_INLINE_LIMIT ? await sheep.ecPool.reconstruct(ec.d, ec.p, strips, missing) : createCodec(ec.d, ec.p).reconstruct(strips, missing);
  const one = rebuilt[0]!;
  return { outcome: 'rebuilt', data: Buffer.from(one.buffer, one.byteOffset, one.length) };
}

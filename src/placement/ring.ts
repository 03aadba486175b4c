// Consistent-hashing ring of vnodes with zone-distinct replica choice (sheet section 8;
// include/sheep.h node_to_vnodes / oid_to_vnodes, sheep/group.c recalculate_vnodes).
//
//   node seed h0 = sd_hash(first 18 bytes of node_id: addr[16] + port u16 LE)
//   vnode k (1..nr_vnodes) hash = g^k(h0)        (g = sd_hash_next)
//   object position = sd_hash_oid(oid); primary = first vnode with hash >= position (wrapping);
//   further replicas walk the ring skipping vnodes whose zone was already chosen;
//   replicas = min(copies, distinct zones among nodes with vnodes > 0, capped at SD_MAX_COPIES).
//
// Built once per epoch; 64-bit hashes are kept as sorted parallel Uint32Array halves so that
// lookups are a binary search over plain numbers (no BigInt, no allocation with *Into).

import { SD_DEFAULT_VNODES, SD_MAX_COPIES, SD_MAX_VNODES } from '../proto/constants.js';
import { addrToBytes, type SdNode } from '../proto/structs.js';
import { hl, sdHashHL, sdHashNextHL, sdHashOidHL, hiOf, loOf } from './fnv.js';

export interface RingNode {
  addr: string;
  port: number;
  zone: number;
  /** 0 for a gateway (stores nothing) */
  nrVnodes: number;
}

export interface VnodeRing {
  /** the input nodes, in input order; placement results are indices into this array */
  readonly nodes: readonly Readonly<RingNode>[];
  /** per input node: sd_hash of its node_id prefix */
  readonly seeds: readonly bigint[];
  /** number of vnodes on the ring */
  readonly size: number;
  /** vnode hashes sorted ascending (u64 compare), high and low 32-bit halves — do not mutate */
  readonly hashHi: Uint32Array;
  readonly hashLo: Uint32Array;
  /** owning node index per sorted vnode — do not mutate */
  readonly owner: Uint32Array;
  /** zone of the owning node per sorted vnode — do not mutate */
  readonly zoneOf: Uint32Array;
  /** distinct zones among nodes with vnodes > 0 (capped at SD_MAX_COPIES, like get_zones_nr_from) */
  readonly nrZones: number;
  /**
   * bucket[k] = first sorted vnode whose hash's top 16 bits are >= k (k = 0..65536): narrows
   * each lookup's binary search to the vnodes sharing the object hash's top 16 bits
   */
  readonly bucket: Uint32Array;
}

const BUCKET_BITS = 16;
const BUCKET_SHIFT = 32 - BUCKET_BITS;

const hlScratch = new Uint32Array(2);

/** The 18 hashed bytes of a node_id: addr[16] then port (u16 LE). */
function nodeIdPrefix(addr: string, port: number): Uint8Array {
  const b = new Uint8Array(18);
  addrToBytes(addr, b, 0);
  b[16] = port & 0xff;
  b[17] = (port >>> 8) & 0xff;
  return b;
}

/** Hash chain seed of a node. */
export function nodeSeed(addr: string, port: number): bigint {
  sdHashHL(nodeIdPrefix(addr, port), 0, 18, hlScratch);
  return hl(hlScratch[0]!, hlScratch[1]!);
}

/** The first `n` vnode hashes of a node, in chain order. */
export function nodeVnodeHashes(addr: string, port: number, n: number): bigint[] {
  const res: bigint[] = [];
  const seed = nodeSeed(addr, port);
  let hi = hiOf(seed), lo = loOf(seed);
  for (let k = 0; k < n; k++) {
    sdHashNextHL(hi, lo, hlScratch);
    hi = hlScratch[0]!;
    lo = hlScratch[1]!;
    res.push(hl(hi, lo));
  }
  return res;
}

/** Default zone of a node: last 4 address bytes read as a little-endian u32 (127.0.0.1 → 0x0100007f). */
export function defaultZone(addr: string): number {
  const b = addrToBytes(addr);
  return (b[12]! | (b[13]! << 8) | (b[14]! << 16) | (b[15]! << 24)) >>> 0;
}

/** RingNode view of a decoded sd_node. */
export function toRingNode(n: SdNode): RingNode {
  return { addr: n.nid.addr, port: n.nid.port, zone: n.zone, nrVnodes: n.nrVnodes };
}

export function buildVnodeRing(input: readonly RingNode[]): VnodeRing {
  const nodes = input.map((n) => Object.freeze({ addr: n.addr, port: n.port, zone: n.zone >>> 0, nrVnodes: n.nrVnodes }));
  let total = 0;
  for (const n of nodes) {
    if (!Number.isInteger(n.nrVnodes) || n.nrVnodes < 0 || n.nrVnodes > SD_MAX_VNODES) {
      throw new RangeError(`bad nrVnodes ${n.nrVnodes} for ${n.addr}:${n.port}`);
    }
    total += n.nrVnodes;
  }

  const hi = new Uint32Array(total), lo = new Uint32Array(total), own = new Uint32Array(total);
  const seeds: bigint[] = [];
  let p = 0;
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    sdHashHL(nodeIdPrefix(n.addr, n.port), 0, 18, hlScratch);
    let h = hlScratch[0]!, l = hlScratch[1]!;
    seeds.push(hl(h, l));
    for (let k = 0; k < n.nrVnodes; k++) {
      sdHashNextHL(h, l, hlScratch);
      h = hlScratch[0]!;
      l = hlScratch[1]!;
      hi[p] = h;
      lo[p] = l;
      own[p] = i;
      p++;
    }
  }

  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  order.sort((a, b) => (hi[a] !== hi[b] ? hi[a]! - hi[b]! : lo[a]! - lo[b]!));

  const hashHi = new Uint32Array(total), hashLo = new Uint32Array(total);
  const owner = new Uint32Array(total), zoneOf = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const j = order[i]!;
    hashHi[i] = hi[j]!;
    hashLo[i] = lo[j]!;
    owner[i] = own[j]!;
    zoneOf[i] = nodes[own[j]!]!.zone;
    if (i > 0 && hashHi[i] === hashHi[i - 1] && hashLo[i] === hashLo[i - 1]) {
      // upstream panics on this ("vdisk hash collison")
      throw new Error(`vnode hash collision at ${hl(hashHi[i]!, hashLo[i]!).toString(16)}`);
    }
  }

  const bucket = new Uint32Array((1 << BUCKET_BITS) + 1);
  for (let k = 0, i = 0; k <= 1 << BUCKET_BITS; k++) {
    while (i < total && hashHi[i]! >>> BUCKET_SHIFT < k) i++;
    bucket[k] = i;
  }

  const zones = new Set<number>();
  for (const n of nodes) {
    if (n.nrVnodes > 0 && zones.size < SD_MAX_COPIES) zones.add(n.zone);
  }

  return Object.freeze({
    nodes: Object.freeze(nodes),
    seeds: Object.freeze(seeds),
    size: total,
    hashHi,
    hashLo,
    owner,
    zoneOf,
    nrZones: zones.size,
    bucket,
  });
}

/** Number of replicas an object with `copies` copies gets on this ring. */
export function effectiveCopies(ring: VnodeRing, copies: number): number {
  return Math.max(0, Math.min(copies, ring.nrZones));
}

/** Index of the first vnode whose hash >= (hHi, hLo), wrapping to 0. */
export function firstVnodeIndex(ring: VnodeRing, hHi: number, hLo: number): number {
  const H = ring.hashHi, L = ring.hashLo;
  const k = hHi >>> BUCKET_SHIFT;
  let a = ring.bucket[k]!, b = ring.bucket[k + 1]!;
  while (a < b) {
    const m = (a + b) >>> 1;
    const mh = H[m]!;
    if (mh < hHi || (mh === hHi && L[m]! < hLo)) a = m + 1;
    else b = m;
  }
  return a === ring.size ? 0 : a;
}

const chosenZones = new Uint32Array(SD_MAX_COPIES);
const posScratch = new Uint32Array(2);

/**
 * Replica node indices (primary first) for an oid given as 32-bit halves, written to `out`;
 * returns how many were written. No allocation, no BigInt.
 */
export function placeByOidHalves(ring: VnodeRing, oidHi: number, oidLo: number, copies: number, out: Uint32Array | number[]): number {
  const want = effectiveCopies(ring, copies);
  if (want === 0 || ring.size === 0) return 0;
  sdHashOidHL(oidHi >>> 0, oidLo >>> 0, posScratch);
  const start = firstVnodeIndex(ring, posScratch[0]!, posScratch[1]!);
  const owner = ring.owner, zoneOf = ring.zoneOf, size = ring.size;
  out[0] = owner[start]!;
  chosenZones[0] = zoneOf[start]!;
  let n = 1;
  let i = start;
  while (n < want) {
    if (++i === size) i = 0;
    if (i === start) break; // cannot happen: want <= nrZones
    const z = zoneOf[i]!;
    let dup = false;
    for (let j = 0; j < n; j++) {
      if (chosenZones[j] === z) {
        dup = true;
        break;
      }
    }
    if (dup) continue;
    chosenZones[n] = z;
    out[n++] = owner[i]!;
  }
  return n;
}

/** placeObject without allocating a result array. */
export function placeObjectInto(ring: VnodeRing, oid: bigint, copies: number, out: Uint32Array | number[]): number {
  return placeByOidHalves(ring, Number((oid >> 32n) & 0xffffffffn), Number(oid & 0xffffffffn), copies, out);
}

/** Replica node indices for an object, primary first, zone-distinct. */
export function placeObject(ring: VnodeRing, oid: bigint, copies: number): number[] {
  const out: number[] = [];
  placeObjectInto(ring, oid, copies, out);
  return out;
}

/** Ring position of an object (sd_hash_oid). */
export function objectHash(oid: bigint): bigint {
  sdHashOidHL(Number((oid >> 32n) & 0xffffffffn), Number(oid & 0xffffffffn), hlScratch);
  return hl(hlScratch[0]!, hlScratch[1]!);
}

/** Hash of the i-th vnode in ring order. */
export function vnodeHash(ring: VnodeRing, i: number): bigint {
  return hl(ring.hashHi[i]!, ring.hashLo[i]!);
}

// ---------------------------------------------------------------------------------------------
// auto vnodes (recalculate_vnodes)
// ---------------------------------------------------------------------------------------------

const TWO53 = 2n ** 53n;

/** (float)u64 with round-to-nearest-even, as C converts uint64_t to float. */
function u64ToFloat32(v: bigint): number {
  if (v <= TWO53) return Math.fround(Number(v));
  // keep the top 30 bits plus a sticky bit so that one rounding to 24 bits is correct
  const bits = v.toString(2).length;
  const shift = BigInt(bits - 30);
  let top = v >> shift;
  if ((v & ((1n << shift) - 1n)) !== 0n) top |= 1n;
  return Math.fround(Math.fround(Number(top)) * 2 ** Number(shift));
}

/** rintf(): round half to even. */
function rintEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * nr_vnodes per node under the auto strategy, from each node's space (0 = gateway):
 *   avg = Σ space / #non-gateway  (u64 integer division)
 *   nr_vnodes = rintf(128 × ((float)space / (float)avg))   in single precision.
 * Gateways get 0. All-gateway input yields all zeros.
 */
export function autoVnodes(spaces: readonly (bigint | number)[]): number[] {
  const s = spaces.map((x) => (typeof x === 'bigint' ? x : BigInt(Math.trunc(x))));
  let sum = 0n, n = 0n;
  for (const v of s) {
    if (v !== 0n) {
      sum += v;
      n++;
    }
  }
  if (n === 0n) return s.map(() => 0);
  const avg = (sum & ((1n << 64n) - 1n)) / n;
  const favg = u64ToFloat32(avg);
  return s.map((v) => {
    const factor = Math.fround(u64ToFloat32(v) / favg);
    const r = rintEven(Math.fround(SD_DEFAULT_VNODES * factor));
    return Math.min(Math.max(r, 0), SD_MAX_VNODES);
  });
}

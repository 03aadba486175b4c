// Gateway I/O for erasure-coded objects (Sheepdog's gateway.c EC path). An object of a d:p VDI is cut into
// 512-byte stripes; each stripe into d data strips of 512/d bytes plus p parity strips. The object's
// placement is its first d+p replicas, and replica i stores strip i of every stripe (file `<oid>_<i>`,
// object size / d bytes), so byte range [a, b) of the object (stripe-aligned) is range [a/d, b/d) of
// every strip file.
//
// Writes cover whole stripes: an unaligned write reads its edge stripes back first (read-modify-write),
// encodes, and sends each holder its strip; all must succeed, as for replicas. Reads fetch d strips of the
// requested stripes (data strips first, parity only for those that fail) and decode.
import { ClusterFlag, Op, Res } from '../proto/constants.js';
import type { SdNode } from '../proto/structs.js';
import { createCodec } from '../ec/fec.js';
import { EC_INLINE_LIMIT } from '../ec/ec-pool.js';
import { ecPolicy } from '../ec/policy.js';
import { SD_EC_DATA_STRIPE_SIZE, joinStripes } from '../ec/strips.js';
import { stripKey } from '../store/strip-key.js';
import { isTransient, localRead, peerRequest, removeFromHolders, storeResult, withEpochRetry, writeHere, writeVerdict } from './gateway.js';
import { SheepError, type Sheep } from './sheep.js';

export interface EcParams {
  readonly d: number;
  readonly p: number;
}

const STRIPE = SD_EC_DATA_STRIPE_SIZE;

/** The stripe-aligned byte range [start, end) covering [offset, offset + length). */
export function stripeSpan(offset: number, length: number): { start: number; end: number } {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) throw new RangeError(`bad range ${offset}+${length}`);
  return { start: Math.floor(offset / STRIPE) * STRIPE, end: Math.ceil((offset + length) / STRIPE) * STRIPE };
}

/** The ask-again marker withEpochRetry understands. */
type Retry = { retry: number };
const isRetry = (v: unknown): v is Retry => typeof v === 'object' && v !== null && 'retry' in v;

/** Placement of an EC object: holder i stores strip i. Fewer than d storing zones cannot hold it. */
function holdersOf(sheep: Sheep, oid: bigint, ec: EcParams): SdNode[] {
  const holders = sheep.placement(oid, ec.d + ec.p);
  if (holders.length < ec.d) throw new SheepError(Res.SYSTEM_ERROR, `${ec.d}:${ec.p} object ${oid.toString(16)} needs at least ${ec.d} zones, the cluster has ${holders.length}`);
  return holders;
}

/** Reads [stripOff, stripOff + stripLen) of strip `i` from its holder: the bytes, or a result code. */
async function readStrip(sheep: Sheep, node: SdNode, oid: bigint, ec: EcParams, i: number, stripOff: number, stripLen: number): Promise<Buffer | number> {
  if (sheep.isSelf(node)) {
    try {
      return await localRead(sheep, stripKey(oid, i), stripOff, stripLen);
    } catch (err) {
      return storeResult(err);
    }
  }
  const rsp = await peerRequest(sheep, node, { opcode: Op.READ_PEER, dataLength: stripLen, obj: { oid, offset: stripOff, ecIndex: i, copyPolicy: ecPolicy(ec.d, ec.p) } });
  if (typeof rsp === 'number') return rsp;
  if (rsp.result !== Res.SUCCESS) return rsp.result;
  if (rsp.data.length >= stripLen) return rsp.data;
  const out = Buffer.alloc(stripLen);
  rsp.data.copy(out);
  return out;
}

/**
 * The bytes of the stripe-aligned range [start, end) of an EC object: d strips read (data strips first;
 * a failed one is replaced by the next parity strip), then joined or decoded.
 */
async function readStripes(sheep: Sheep, oid: bigint, ec: EcParams, start: number, end: number): Promise<Uint8Array | Retry> {
  const epoch = sheep.epoch;
  const holders = holdersOf(sheep, oid, ec);
  const stripOff = start / ec.d;
  const stripLen = (end - start) / ec.d;
  const strips: Array<Buffer | null> = new Array(ec.d + ec.p).fill(null);
  let got = 0;
  let next = 0;
  let transient = 0;
  let last: number = Res.NO_OBJ;
  while (got < ec.d && next < holders.length) {
    const batch: number[] = [];
    for (; batch.length < ec.d - got && next < holders.length; next++) batch.push(next);
    const results = await Promise.all(batch.map((i) => readStrip(sheep, holders[i]!, oid, ec, i, stripOff, stripLen)));
    results.forEach((r, k) => {
      if (typeof r !== 'number') {
        strips[batch[k]!] = r;
        got++;
      } else if (isTransient(r)) transient = r;
      else last = r;
    });
  }
  if (got < ec.d) {
    if (transient) return { retry: transient };
    if (sheep.epoch !== epoch) return { retry: Res.NEW_NODE_VER };
    throw new SheepError(last);
  }
  if (strips.slice(0, ec.d).every((s) => s !== null)) return joinStripes(strips as Buffer[], ec.d);
  if (end - start > EC_INLINE_LIMIT) return sheep.ecPool.decode(ec.d, ec.p, strips);
  return createCodec(ec.d, ec.p).decodeObject(strips);
}

export async function ecGatewayRead(sheep: Sheep, oid: bigint, ec: EcParams, offset: number, length: number): Promise<Buffer> {
  const { start, end } = stripeSpan(offset, length);
  if (end > sheep.objectSizeOf(oid)) throw new SheepError(Res.INVALID_PARMS);
  if (length === 0) return Buffer.alloc(0);
  const bytes = await withEpochRetry(sheep, `ec read ${oid.toString(16)}`, () => readStripes(sheep, oid, ec, start, end));
  return Buffer.from(bytes.buffer, bytes.byteOffset + (offset - start), length);
}

/**
 * Writes to one EC object from this gateway are serialised: a read-modify-write of an edge stripe racing
 * another write of the same stripe would put back what the other wrote.
 */
const objectLocks = new WeakMap<Sheep, Map<bigint, Promise<void>>>();

async function withObjectLock<T>(sheep: Sheep, oid: bigint, fn: () => Promise<T>): Promise<T> {
  let locks = objectLocks.get(sheep);
  if (!locks) objectLocks.set(sheep, (locks = new Map()));
  const before = locks.get(oid) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = before.then(() => mine);
  locks.set(oid, tail);
  await before;
  try {
    return await fn();
  } finally {
    release();
    if (locks.get(oid) === tail) locks.delete(oid);
  }
}

/** The aligned buffer to encode: `data` at its place, edge stripes read back (or zeros for a new object). */
async function alignedPayload(sheep: Sheep, oid: bigint, ec: EcParams, data: Uint8Array, offset: number, create: boolean): Promise<Uint8Array | Retry> {
  const { start, end } = stripeSpan(offset, data.length);
  const buf = new Uint8Array(end - start);
  const headCut = offset !== start;
  const tailCut = offset + data.length !== end;
  if (!create && (headCut || tailCut)) {
    // One read when both edges are cut and at most two stripes apart; else each cut edge stripe alone.
    const spans: Array<[number, number]> = [];
    if (headCut && tailCut && end - start <= 2 * STRIPE) spans.push([start, end]);
    else {
      if (headCut) spans.push([start, start + STRIPE]);
      if (tailCut) spans.push([end - STRIPE, end]);
    }
    const parts = await Promise.all(spans.map(([a, b]) => readStripes(sheep, oid, ec, a, b)));
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      if (isRetry(part)) return part;
      buf.set(part, spans[k]![0] - start);
    }
  }
  buf.set(data, offset - start);
  return buf;
}

async function writeStrip(sheep: Sheep, node: SdNode, oid: bigint, ec: EcParams, i: number, strip: Uint8Array, stripOff: number, create: boolean, epoch: number): Promise<{ result: number; moved: boolean }> {
  if (sheep.isSelf(node)) {
    const key = stripKey(oid, i);
    return { result: await writeHere(sheep, key, sheep.storeSizeOf(key), strip, stripOff, create, {}, epoch), moved: false };
  }
  const opcode = create ? Op.CREATE_AND_WRITE_PEER : Op.WRITE_PEER;
  const rsp = await peerRequest(sheep, node, { opcode, obj: { oid, offset: stripOff, ecIndex: i, copies: ec.d + ec.p, copyPolicy: ecPolicy(ec.d, ec.p) } }, strip);
  if (typeof rsp === 'number') return { result: rsp, moved: false };
  return { result: rsp.result, moved: rsp.epoch > epoch };
}

/** Writes (or creates) the stripes of an EC object that [offset, offset + data.length) touches. */
export async function ecGatewayWrite(sheep: Sheep, oid: bigint, ec: EcParams, data: Uint8Array, offset: number, create: boolean): Promise<void> {
  if (data.length === 0 && !create) return;
  await withObjectLock(sheep, oid, () =>
    withEpochRetry(sheep, `ec write ${oid.toString(16)}`, async () => {
      const epoch = sheep.epoch;
      const holders = holdersOf(sheep, oid, ec);
      // Strict clusters (format -t) refuse to write fewer strips than d+p; others write what the zones hold.
      if (sheep.format.flags & ClusterFlag.STRICT && holders.length < ec.d + ec.p) throw new SheepError(Res.HALT);
      const payload = await alignedPayload(sheep, oid, ec, data, offset, create);
      if (isRetry(payload)) return payload;
      const strips = payload.length > EC_INLINE_LIMIT ? await sheep.ecPool.encode(ec.d, ec.p, payload) : createCodec(ec.d, ec.p).encodeObject(payload);
      const stripOff = stripeSpan(offset, data.length).start / ec.d;
      const results = await Promise.all(holders.map((node, i) => writeStrip(sheep, node, oid, ec, i, strips[i]!, stripOff, create, epoch)));
      // The same rules as for replicas: a membership change during the write may have let a new holder
      // rebuild its strip before the write reached the old one, so it is written again.
      return writeVerdict(sheep, `ec write ${oid.toString(16)}`, epoch, holders, results.map((r) => r.result), results.some((r) => r.moved));
    }),
  );
}

/** Removes every strip of an EC object from its holders. */
export async function ecGatewayRemove(sheep: Sheep, oid: bigint, ec: EcParams): Promise<void> {
  const copyPolicy = ecPolicy(ec.d, ec.p);
  await removeFromHolders(sheep, `ec remove ${oid.toString(16)}`, () => sheep.placement(oid, ec.d + ec.p), (i) => ({ key: stripKey(oid, i), obj: { oid, ecIndex: i, copyPolicy } }));
}

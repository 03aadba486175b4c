// Sheepdog's erasure-coded object layout (sheep/gateway.c, include/fec.h):
//
//   object (size S, a multiple of 512) = stripes of SD_EC_DATA_STRIPE_SIZE = 512 bytes
//   stripe = d data strips of 512/d bytes, followed by p parity strips of the same size
//   replica i (ec_index i) stores strip i of every stripe, concatenated ⇒ a file of S/d bytes,
//   named `<oid as 16 lower-case hex digits>_<ec_index>` in the store's obj/ directory.
//
// So byte k of strip file i belongs to stripe ⌊k / (512/d)⌋; across files, equal offsets form one
// codeword, which is why whole strip files can be encoded/decoded as long vectors.

export const SD_EC_DATA_STRIPE_SIZE = 512;
/** Largest d (and the bound p < SD_EC_MAX_STRIP). */
export const SD_EC_MAX_STRIP = 16;

/** Bytes of one strip of one stripe: 512/d. */
export function stripSize(d: number): number {
  return SD_EC_DATA_STRIPE_SIZE / d;
}

/** Size of each strip file for an object of `objectSize` bytes (objectSize/d, like get_store_objsize). */
export function stripFileSize(objectSize: number, d: number): number {
  assertStripeMultiple(objectSize);
  return objectSize / d;
}

export function assertStripeMultiple(size: number, what = 'object size'): void {
  if (!Number.isInteger(size) || size < 0 || size % SD_EC_DATA_STRIPE_SIZE !== 0) {
    throw new RangeError(`${what} ${size} is not a multiple of the ${SD_EC_DATA_STRIPE_SIZE}-byte EC stripe`);
  }
}

/** `<oid as 16 hex digits>_<ec_index>`, the plain store's name for an EC strip file. */
export function ecStripFileName(oid: bigint, ecIndex: number): string {
  // sheep panics on ec_index ≥ SD_MAX_COPIES (31)
  if (!Number.isInteger(ecIndex) || ecIndex < 0 || ecIndex > 30) throw new RangeError(`ec_index must be 0..30, got ${ecIndex}`);
  return `${oid.toString(16).padStart(16, '0')}_${ecIndex}`;
}

/** `<oid>_<ec_index>.<epoch>`, the name of a stale EC strip in obj/.stale/ (md_get_stale_path). */
export function ecStaleFileName(oid: bigint, ecIndex: number, epoch: number): string {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) throw new RangeError(`epoch must be a u32, got ${epoch}`);
  return `${ecStripFileName(oid, ecIndex)}.${epoch}`;
}

const isWordAligned = (v: Uint8Array): boolean => (v.byteOffset & 3) === 0;

/**
 * Cuts `data` (a multiple of 512 bytes) into its d data strips: out[j] = strip j of every stripe.
 * Writes into `out` when given (each at least data.length/d bytes), else allocates.
 */
export function splitStripes(data: Uint8Array, d: number, out?: Uint8Array[]): Uint8Array[] {
  assertStripeMultiple(data.length, 'data length');
  const len = data.length / d;
  const strips = out ?? Array.from({ length: d }, () => new Uint8Array(len));
  if (strips.length < d) throw new RangeError(`splitStripes: need ${d} output strips, got ${strips.length}`);
  for (let j = 0; j < d; j++) if (strips[j]!.length < len) throw new RangeError(`splitStripes: output strip ${j} has ${strips[j]!.length} bytes, need ${len}`);
  const stripes = data.length / SD_EC_DATA_STRIPE_SIZE;
  const ss = SD_EC_DATA_STRIPE_SIZE / d;
  if (isWordAligned(data) && strips.slice(0, d).every(isWordAligned)) {
    const w = ss >>> 2; // words per strip per stripe (d ≤ 16 ⇒ ≥ 8)
    const src = new Uint32Array(data.buffer, data.byteOffset, data.length >>> 2);
    for (let j = 0; j < d; j++) {
      const o = new Uint32Array(strips[j]!.buffer, strips[j]!.byteOffset, len >>> 2);
      let ip = j * w;
      let op = 0;
      for (let s = 0; s < stripes; s++, ip += 128) {
        for (let k = 0; k < w; k++) o[op++] = src[ip + k]!;
      }
    }
  } else {
    for (let s = 0; s < stripes; s++) {
      for (let j = 0; j < d; j++) {
        const from = s * SD_EC_DATA_STRIPE_SIZE + j * ss;
        strips[j]!.set(data.subarray(from, from + ss), s * ss);
      }
    }
  }
  return strips;
}

/**
 * The inverse of splitStripes: interleaves d data strips (equal lengths, multiples of 512/d) back into
 * the object bytes. Writes into `out` when given (at least d·len bytes), else allocates.
 */
export function joinStripes(strips: readonly Uint8Array[], d: number, out?: Uint8Array): Uint8Array {
  if (strips.length < d) throw new RangeError(`joinStripes: need ${d} data strips, got ${strips.length}`);
  const ss = SD_EC_DATA_STRIPE_SIZE / d;
  const len = strips[0]!.length;
  if (len % ss !== 0) throw new RangeError(`joinStripes: strip length ${len} is not a multiple of the ${ss}-byte strip`);
  for (let j = 1; j < d; j++) if (strips[j]!.length !== len) throw new RangeError(`joinStripes: strip ${j} has ${strips[j]!.length} bytes, strip 0 has ${len}`);
  const total = len * d;
  const data = out ?? new Uint8Array(total);
  if (data.length < total) throw new RangeError(`joinStripes: output has ${data.length} bytes, need ${total}`);
  const stripes = len / ss;
  if (isWordAligned(data) && strips.slice(0, d).every(isWordAligned)) {
    const w = ss >>> 2;
    const dst = new Uint32Array(data.buffer, data.byteOffset, total >>> 2);
    for (let j = 0; j < d; j++) {
      const src = new Uint32Array(strips[j]!.buffer, strips[j]!.byteOffset, len >>> 2);
      let op = j * w;
      let ip = 0;
      for (let s = 0; s < stripes; s++, op += 128) {
        for (let k = 0; k < w; k++) dst[op + k] = src[ip++]!;
      }
    }
  } else {
    for (let s = 0; s < stripes; s++) {
      for (let j = 0; j < d; j++) {
        data.set(strips[j]!.subarray(s * ss, s * ss + ss), s * SD_EC_DATA_STRIPE_SIZE + j * ss);
      }
    }
  }
  return data;
}

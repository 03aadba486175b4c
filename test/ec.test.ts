// Erasure coding: byte-exact compatibility with Sheepdog 1.0's lib/fec.c, round trips, the pool.
//
// test/fixtures/ec-vectors.json was produced by compiling upstream's lib/fec.c (both its zfec path and
// a base-C model of the ISA-L path it uses on SSSE3 CPUs, which agreed byte for byte) in a scratch
// directory and encoding xorshift32 data the way sheep/gateway.c does. It holds gf_exp/gf_log, the 15
// parity rows of fec_new(d, d+15) for every d (a d:p code's parity rows are the first p of them), and
// objects with all their strip files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { assertRejects, timed } from './helpers.js';
import {
  copiesErrorMessage,
  CopiesParseError,
  createCodec,
  EC_INLINE_LIMIT,
  ecFromPolicy,
  ecPolicy,
  EcParamError,
  EcPool,
  ecStaleFileName,
  ecStripFileName,
  encodeMatrix,
  GF_EXP,
  GF_INV,
  GF_LOG,
  GF_POLY,
  ecKernel,
  gfDot,
  gfDotMany,
  gfInvertMatrix,
  gfMatMul,
  gfMul,
  joinStripes,
  parseCopies,
  redundancyString,
  setEcKernel,
  simdKernel,
  splitStripes,
  stripFileSize,
  tryParseCopies,
  type MaybeStrip,
} from '../src/ec/index.js';

interface Vectors {
  gf_exp: string;
  gf_log: string;
  enc_matrix: Record<string, string[]>;
  objects: { d: number; p: number; data: string; strips: string[] }[];
}

const V: Vectors = JSON.parse(readFileSync(new URL('../../test/fixtures/ec-vectors.json', import.meta.url), 'utf8'));
const ALL_D = [2, 4, 8, 16];
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
/** A fresh, 4-byte-aligned copy of hex bytes (Buffer.from(hex) may sit at any pool offset). */
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** Deterministic bytes (xorshift32) so a failure reproduces. */
function bytes(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x >>> 24;
  }
  return out;
}

function* combinations(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield [...acc];
    return;
  }
  for (let i = start; i < n; i++) {
    acc.push(i);
    yield* combinations(n, k, i + 1, acc);
    acc.pop();
  }
}

/** Random distinct indexes (seeded). */
function sample(n: number, k: number, seed: number): number[] {
  const r = bytes(4 * n, seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = ((r[4 * i]! << 8) | r[4 * i + 1]!) % (i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Drops `missing` from a strip set, then checks decodeObject and reconstruct against the originals. */
function checkLoss(d: number, p: number, data: Uint8Array, strips: Uint8Array[], missing: number[]): void {
  const codec = createCodec(d, p);
  const partial: MaybeStrip[] = strips.map((s, i) => (missing.includes(i) ? null : s));
  const label = `${d}:${p} missing [${missing.join(',')}]`;
  assert.ok(Buffer.from(codec.decodeObject(partial)).equals(Buffer.from(data)), `decode ${label}`);
  const rebuilt = codec.reconstruct(partial, missing);
  assert.is(rebuilt.length, missing.length);
  missing.forEach((m, t) => assert.ok(Buffer.from(rebuilt[t]!).equals(Buffer.from(strips[m]!)), `reconstruct strip ${m}, ${label}`));
}

// ---------------------------------------------------------------------------------------------
// GF(2^8) and the generator matrix
// ---------------------------------------------------------------------------------------------

test(
  'gf256: exp/log tables equal fec.c generate_gf() (polynomial 0x11d)',
  timed(() => {
    assert.is(GF_POLY, 0x11d);
    assert.is(hex(GF_EXP.subarray(0, 255)), V.gf_exp);
    assert.is(hex(GF_EXP.subarray(255, 510)), V.gf_exp, 'second half repeats the first');
    assert.is(hex(GF_LOG), V.gf_log);
    for (let a = 1; a < 256; a++) {
      assert.is(gfMul(a, GF_INV[a]!), 1, `a·a⁻¹ for ${a}`);
      assert.is(gfMul(a, 0), 0);
      assert.is(gfMul(a, 1), a);
    }
    assert.is(gfMul(0x80, 2), 0x1d, 'x^8 reduces to x^4+x^3+x^2+1');
    const m = new Uint8Array([3, 2, 7, 9]);
    const inv = gfInvertMatrix(m, 2);
    assert.is(hex(gfMatMul(m, inv, 2, 2, 2)), '01000001');
    assert.throws(() => gfInvertMatrix(new Uint8Array([1, 1, 1, 1]), 2), /singular/);
  }),
);

test(
  'matrix: every d:p generator equals fec_new(d, d+p) byte for byte',
  timed(() => {
    for (const d of ALL_D) {
      const rows = V.enc_matrix[String(d)]!;
      assert.is(rows.length, 15);
      for (let p = 1; p <= 15; p++) {
        const m = encodeMatrix(d, p);
        assert.is(m.length, (d + p) * d);
        for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) assert.is(m[r * d + c], r === c ? 1 : 0, 'systematic top');
        for (let i = 0; i < p; i++) assert.is(hex(m.subarray((d + i) * d, (d + i + 1) * d)), rows[i], `${d}:${p} parity row ${i}`);
        assert.is(hex(createCodec(d, p).matrix), hex(m));
      }
    }
    // Surprise worth pinning: 2:1's single parity is 3·d0 + 2·d1, not d0 XOR d1.
    assert.is(V.enc_matrix['2']![0], '0302');
  }),
);

// ---------------------------------------------------------------------------------------------
// Reference vectors from upstream
// ---------------------------------------------------------------------------------------------

test(
  'vectors: encodeObject reproduces upstream strip files (2:1, 4:2, 16:4, 8:3, 16:15, 4:1, 2:15), SIMD and JS kernels',
  timed(() => {
    const seen = new Set<string>();
    assert.ok(simdKernel(), 'Node 20 has WebAssembly SIMD');
    for (const kernel of ['simd', 'js'] as const) {
      assert.is(setEcKernel(kernel), kernel);
      for (const o of V.objects) {
        const codec = createCodec(o.d, o.p);
        const data = unhex(o.data);
        const strips = codec.encodeObject(data);
        assert.is(strips.length, o.d + o.p);
        strips.forEach((s, i) => {
          assert.is(s.length, stripFileSize(data.length, o.d));
          assert.is(hex(s), o.strips[i], `${kernel} ${o.d}:${o.p} strip ${i}`);
        });
        // Same through an unaligned input view (byte-wise split, and byte-wise kernels in JS mode).
        const odd = Buffer.alloc(data.length + 1);
        odd.set(data, 1);
        const strips2 = codec.encodeObject(odd.subarray(1));
        strips2.forEach((s, i) => assert.is(hex(s), o.strips[i], `${kernel} unaligned ${o.d}:${o.p} strip ${i}`));
        // The SIMD kernel on its own (small strips normally stay on the JS path).
        if (kernel === 'simd') {
          const parity = Array.from({ length: o.p }, () => new Uint8Array(data.length / o.d));
          simdKernel()!.dotMany(parity, codec.matrix.subarray(o.d * o.d), splitStripes(data, o.d), data.length / o.d);
          parity.forEach((ps, i) => assert.is(hex(ps), o.strips[o.d + i], `simd kernel ${o.d}:${o.p} parity ${i}`));
        }
        seen.add(`${o.d}:${o.p}`);
      }
    }
    setEcKernel('simd');
    for (const need of ['2:1', '4:2', '16:4']) assert.ok(seen.has(need), `vectors include ${need}`);
  }),
);

test(
  'kernels: WebAssembly SIMD and JS agree (lengths not multiple of 16, chunk boundaries, 1..16 sources)',
  timed(() => {
    const k = simdKernel()!;
    assert.ok(k);
    let seed = 300;
    for (const [n, rows, len] of [
      [1, 1, 1024],
      [3, 2, 1000],
      [4, 2, 65536 + 48],
      [16, 15, 4096],
      [16, 4, 100_003],
      [8, 3, 32768],
    ] as const) {
      const srcs = Array.from({ length: n }, () => bytes(len, seed++));
      const coefs = bytes(rows * n, seed++);
      coefs[0] = 0;
      const viaSimd = Array.from({ length: rows }, () => new Uint8Array(len));
      const viaJs = Array.from({ length: rows }, () => new Uint8Array(len));
      k.dotMany(viaSimd, coefs, srcs, len);
      for (let r = 0; r < rows; r++) gfDot(viaJs[r]!, coefs.subarray(r * n, (r + 1) * n), srcs);
      for (let r = 0; r < rows; r++) assert.is(hex(viaSimd[r]!), hex(viaJs[r]!), `n=${n} row ${r} len ${len}`);
      const viaMany = Array.from({ length: rows }, () => new Uint8Array(len));
      gfDotMany(viaMany, coefs, srcs);
      for (let r = 0; r < rows; r++) assert.is(hex(viaMany[r]!), hex(viaJs[r]!));
    }
    assert.is(ecKernel(), 'simd');
  }),
);

test(
  'vectors: encodeStripe gives upstream parity for every 512-byte stripe',
  timed(() => {
    for (const o of V.objects) {
      const codec = createCodec(o.d, o.p);
      const data = unhex(o.data);
      const ss = 512 / o.d;
      for (let s = 0; s < data.length / 512; s++) {
        const parity = codec.encodeStripe(data.subarray(s * 512, s * 512 + 512));
        assert.is(parity.length, o.p);
        parity.forEach((ps, i) => assert.is(hex(ps), o.strips[o.d + i]!.slice(2 * s * ss, 2 * (s + 1) * ss), `${o.d}:${o.p} stripe ${s} parity ${i}`));
        // the data strips of a stripe are plain slices of it
        for (let j = 0; j < o.d; j++) assert.is(hex(data.subarray(s * 512 + j * ss, s * 512 + (j + 1) * ss)), o.strips[j]!.slice(2 * s * ss, 2 * (s + 1) * ss));
      }
    }
  }),
);

test(
  'vectors: upstream strip files decode and rebuild (up to p lost)',
  timed(() => {
    let seed = 7;
    for (const o of V.objects) {
      const data = unhex(o.data);
      const strips = o.strips.map(unhex);
      const n = o.d + o.p;
      for (let k = 1; k <= o.p; k++) {
        for (let t = 0; t < 4; t++) checkLoss(o.d, o.p, data, strips, sample(n, k, seed++));
      }
      // all data strips lost (parity only, where p ≥ d)
      if (o.p >= o.d) checkLoss(o.d, o.p, data, strips, Array.from({ length: o.d }, (_, i) => i));
    }
  }),
);

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

test(
  'round trip: every allowed d:p (60 codes), random loss of 1..p strips',
  timed(() => {
    let seed = 1000;
    for (const d of ALL_D) {
      for (let p = 1; p <= 15; p++) {
        const data = bytes(512 * 6, seed++);
        const codec = createCodec(d, p);
        const strips = codec.encodeObject(data);
        assert.is(strips.length, d + p);
        for (const s of strips) assert.is(s.length, (512 * 6) / d);
        assert.ok(Buffer.from(codec.decodeObject(strips)).equals(Buffer.from(data)), `${d}:${p} nothing lost`);
        checkLoss(d, p, data, strips, sample(d + p, p, seed++));
        checkLoss(d, p, data, strips, sample(d + p, 1 + (seed % p), seed++));
        // more than p lost is refused
        const tooMany = sample(d + p, p + 1, seed++);
        assert.throws(() => codec.decodeObject(strips.map((s, i) => (tooMany.includes(i) ? null : s))), /needs at least/);
      }
    }
  }),
);

test(
  'round trip: 4:2 exhaustive (every set of ≤ 2 lost strips, 64 KiB object)',
  timed(() => {
    const data = bytes(64 * 1024, 42);
    const strips = createCodec(4, 2).encodeObject(data);
    let cases = 0;
    for (let k = 0; k <= 2; k++) for (const miss of combinations(6, k)) (checkLoss(4, 2, data, strips, miss), cases++);
    assert.is(cases, 1 + 6 + 15);
  }),
);

test(
  'round trip: 2:1 and 8:3 exhaustive',
  timed(() => {
    const d21 = bytes(8192, 5);
    const s21 = createCodec(2, 1).encodeObject(d21);
    for (let k = 0; k <= 1; k++) for (const miss of combinations(3, k)) checkLoss(2, 1, d21, s21, miss);
    const d83 = bytes(4096, 6);
    const s83 = createCodec(8, 3).encodeObject(d83);
    let cases = 0;
    for (let k = 0; k <= 3; k++) for (const miss of combinations(11, k)) (checkLoss(8, 3, d83, s83, miss), cases++);
    assert.is(cases, 1 + 11 + 55 + 165);
  }),
);

test(
  'round trip: 16:15 sampled (300 loss patterns of 1..15 strips)',
  timed(() => {
    const data = bytes(2048, 9);
    const strips = createCodec(16, 15).encodeObject(data);
    for (let t = 0; t < 300; t++) checkLoss(16, 15, data, strips, sample(31, 1 + (t % 15), 5000 + t));
    checkLoss(16, 15, data, strips, Array.from({ length: 15 }, (_, i) => i)); // 15 of the 16 data strips
    checkLoss(16, 15, data, strips, Array.from({ length: 15 }, (_, i) => 16 + i)); // every parity strip
  }),
);

test(
  'stripe-aligned ranges encode to the matching slices of the whole-object strips (gateway writes)',
  timed(() => {
    for (const [d, p] of [
      [4, 2],
      [16, 4],
    ] as const) {
      const codec = createCodec(d, p);
      const data = bytes(512 * 32, d * 100 + p);
      const whole = codec.encodeObject(data);
      const ss = 512 / d;
      const [start, end] = [5, 17]; // stripes
      const part = codec.encodeObject(data.subarray(start * 512, end * 512));
      part.forEach((s, i) => assert.is(hex(s), hex(whole[i]!.subarray(start * ss, end * ss)), `${d}:${p} strip ${i}`));
      // a read of d data strips at offset start*ss reassembles those stripes
      assert.is(hex(joinStripes(part.slice(0, d), d)), hex(data.subarray(start * 512, end * 512)));
    }
  }),
);

test(
  'strips: layout helpers, caller buffers, unaligned kernels',
  timed(() => {
    const data = bytes(512 * 3, 77);
    const strips = splitStripes(data, 4);
    assert.is(strips.length, 4);
    assert.is(hex(strips[1]!.subarray(0, 128)), hex(data.subarray(128, 256)), 'strip 1 of stripe 0');
    assert.is(hex(strips[3]!.subarray(256, 384)), hex(data.subarray(1024 + 384, 1536)), 'strip 3 of stripe 2');
    assert.is(hex(joinStripes(strips, 4)), hex(data));
    // unaligned output buffers
    const raw = new Uint8Array(4 * 384 + 3);
    const odd = [0, 1, 2, 3].map((j) => raw.subarray(3 + j * 384, 3 + (j + 1) * 384));
    splitStripes(data, 4, odd);
    assert.is(hex(joinStripes(odd, 4)), hex(data));
    assert.is(ecStripFileName(0x007c2b2500000001n, 3), '007c2b2500000001_3');
    assert.is(ecStaleFileName(0x007c2b2500000001n, 12, 7), '007c2b2500000001_12.7');
    assert.throws(() => ecStripFileName(1n, 31), /ec_index must be 0..30/);
    // gfDot: aligned and unaligned agree, zero coefficients ignored
    const a = bytes(1024, 1), b = bytes(1024, 2);
    const o1 = new Uint8Array(1024), o2 = new Uint8Array(1025).subarray(1);
    gfDot(o1, [0x53, 0], [a, b]);
    gfDot(o2, [0x53, 0], [a.slice(), b]);
    assert.is(hex(o1), hex(o2));
    for (let k = 0; k < 1024; k++) assert.is(o1[k], gfMul(0x53, a[k]!));
    gfDot(o1, [0, 0], [a, b]);
    assert.ok(o1.every((x) => x === 0));
    // encodeObject/decodeObject/reconstruct into caller buffers
    const codec = createCodec(4, 2);
    const outs = Array.from({ length: 6 }, () => new Uint8Array(384));
    assert.is(codec.encodeObject(data, outs), outs);
    const back = new Uint8Array(1536);
    assert.is(codec.decodeObject([null, outs[1]!, null, outs[3]!, outs[4]!, outs[5]!], back), back);
    assert.is(hex(back), hex(data));
    const r = [new Uint8Array(384)];
    codec.reconstruct([outs[0]!, outs[1]!, outs[2]!, null, outs[4]!, null], [5], r);
    assert.is(hex(r[0]!), hex(outs[5]!));
    // a strip array may be shorter than d+p: trailing entries count as missing (data-only writes)
    assert.is(hex(codec.decodeObject(outs.slice(0, 4))), hex(data));
    const dec = codec.decodeMatrix([0, 1, 2, 3], [4]);
    assert.is(hex(dec), hex(codec.matrix.subarray(16, 20)));
  }),
);

// ---------------------------------------------------------------------------------------------
// copy_policy and `-c` parsing
// ---------------------------------------------------------------------------------------------

test(
  'policy: (d/2)<<4 | p and back',
  timed(() => {
    assert.is(ecPolicy(2, 1), 0x11);
    assert.is(ecPolicy(4, 2), 0x22);
    assert.is(ecPolicy(8, 3), 0x43);
    assert.is(ecPolicy(16, 15), 0x8f);
    for (const d of ALL_D) {
      for (let p = 1; p <= 15; p++) {
        assert.equal(ecFromPolicy(ecPolicy(d, p)), { d, p });
        assert.is(createCodec(d, p).copyPolicy, ecPolicy(d, p));
        assert.is(redundancyString(d + p, ecPolicy(d, p)), `${d}:${p}`);
      }
    }
    assert.is(redundancyString(3, 0), '3');
    assert.throws(() => ecFromPolicy(0x20), /no parity/);
    assert.throws(() => ecFromPolicy(0x31), /d \(data strips\) must be 2, 4, 8 or 16, got 6/);
    assert.equal(ecFromPolicy(0x31, false), { d: 6, p: 1 }, 'non-strict: what ec_policy_to_dp computes');
    assert.throws(() => ecFromPolicy(256), /byte/);
    assert.throws(() => ecPolicy(3, 1), (e: Error) => e instanceof EcParamError && e.name === 'EcParamError');
  }),
);

test(
  'parseCopies: dog parse_copy() forms, quirks and message',
  timed(() => {
    assert.equal(parseCopies('3'), { copies: 3, copyPolicy: 0 });
    assert.equal(parseCopies('31'), { copies: 31, copyPolicy: 0 });
    assert.equal(parseCopies('4:2'), { copies: 6, copyPolicy: 0x22, ec: { d: 4, p: 2 } });
    assert.equal(parseCopies('2:1'), { copies: 3, copyPolicy: 0x11, ec: { d: 2, p: 1 } });
    assert.equal(parseCopies('16:15'), { copies: 31, copyPolicy: 0x8f, ec: { d: 16, p: 15 } });
    // strtok(":") quirks
    assert.equal(parseCopies(':3'), { copies: 3, copyPolicy: 0 });
    assert.equal(parseCopies('4:'), { copies: 4, copyPolicy: 0 });
    assert.equal(parseCopies('4::2').copyPolicy, 0x22);
    assert.equal(parseCopies('4:2:9').copyPolicy, 0x22);
    assert.equal(parseCopies('004:02').copies, 6);
    // uint8_t truncation
    assert.equal(parseCopies('257'), { copies: 1, copyPolicy: 0 });
    assert.equal(parseCopies('4:258').copyPolicy, 0x22);
    for (const bad of ['', '0', '32', '255', '3:2', '6:1', '32:1', '4:0', '4:16', '4:272', 'a', '4:x', '-1', '4:-1', ' 4', '4.0', ':', '1234567890', '16:15:0000']) {
      assert.is(tryParseCopies(bad), null, `"${bad}" rejected`);
      assert.throws(() => parseCopies(bad), (e: Error) => e instanceof CopiesParseError && e.message === copiesErrorMessage(bad));
    }
    assert.is(
      copiesErrorMessage('4:0'),
      'Invalid parameter 4:0\nTo create replicated vdi, set -c x\n  x(1 to 31)   - number of replicated copies\n' +
        'To create erasure coded vdi, set -c x:y\n  x(2,4,8,16)  - number of data strips\n  y(1 to 15)   - number of parity strips',
    );
  }),
);

// ---------------------------------------------------------------------------------------------
// Bad parameters
// ---------------------------------------------------------------------------------------------

test(
  'bad parameters are rejected with clear errors',
  timed(() => {
    assert.throws(() => createCodec(3, 1), /d \(data strips\) must be 2, 4, 8 or 16, got 3/);
    assert.throws(() => createCodec(32, 1), /must be 2, 4, 8 or 16/);
    assert.throws(() => createCodec(4, 0), /p \(parity strips\) must be 1 to 15, got 0/);
    assert.throws(() => createCodec(16, 16), /p \(parity strips\) must be 1 to 15, got 16/);
    assert.throws(() => createCodec(4, 1.5), /p \(parity strips\)/);
    assert.throws(() => createCodec(Number.NaN, 2), /d \(data strips\)/);
    const codec = createCodec(4, 2);
    assert.throws(() => codec.encodeObject(new Uint8Array(1000)), /1000 is not a multiple of the 512-byte EC stripe/);
    assert.throws(() => codec.encodeStripe(new Uint8Array(511)), /a stripe is 512 bytes, got 511/);
    const strips = codec.encodeObject(bytes(2048, 3));
    assert.throws(() => codec.decodeObject([strips[0]!, null, null, strips[3]!, null, strips[5]!]), /4:2 needs at least 4 strips to decode, only 3 present/);
    assert.throws(() => codec.decodeObject([strips[0]!, strips[1]!.subarray(0, 256), strips[2]!, strips[3]!]), /strip 1 has 256 bytes, the others 512/);
    assert.throws(() => codec.decodeObject([...strips, strips[0]!]), /4:2 has 6 strips, got 7 entries/);
    assert.throws(() => codec.decodeObject(strips.map((s) => s.subarray(0, 100))), /not a multiple of the 128-byte 4:2 strip/);
    assert.throws(() => codec.reconstruct(strips, [6]), /strip index 6 outside 0..5/);
    assert.throws(() => codec.reconstruct(strips, [1, 1]), /listed twice/);
    assert.throws(() => codec.reconstruct(strips, [0, 1, 2]), /needs 4 intact strips besides the 3 to rebuild, only 3 present/);
    assert.equal(codec.reconstruct(strips, []), []);
    assert.throws(() => codec.encodeObject(bytes(1024, 1), [new Uint8Array(256)]), /need 6 output strips/);
    assert.throws(() => gfDot(new Uint8Array(8), [1, 2], [new Uint8Array(8)]), /2 coefficients for 1 sources/);
  }),
);

// ---------------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------------

const pool = new EcPool({ threads: 2 });
test.after(async () => {
  await pool.close();
});

test(
  'pool: 4 MiB 4:2 and 2:1 objects encode/decode/reconstruct off-thread, equal to inline',
  timed(async () => {
    for (const [d, p] of [
      [4, 2],
      [2, 1],
    ] as const) {
      const codec = createCodec(d, p);
      const data = bytes(4 << 20, d * 31 + p);
      const inline = codec.encodeObject(data);
      const strips = await pool.encode(d, p, data);
      assert.is(strips.length, d + p);
      strips.forEach((s, i) => {
        assert.ok(s.buffer instanceof SharedArrayBuffer, 'results live in shared memory');
        assert.ok(Buffer.from(s).equals(Buffer.from(inline[i]!)), `${d}:${p} strip ${i}`);
      });
      const lost = sample(d + p, p, d + p);
      const partial = strips.map((s, i) => (lost.includes(i) ? null : s));
      const back = await pool.decode(d, p, partial);
      assert.ok(Buffer.from(back).equals(Buffer.from(data)), `${d}:${p} decode`);
      const rebuilt = await pool.reconstruct(d, p, partial, lost);
      lost.forEach((m, t) => assert.ok(Buffer.from(rebuilt[t]!).equals(Buffer.from(inline[m]!)), `${d}:${p} rebuild ${m}`));
    }
    assert.ok(pool.threads >= 1);
  }),
);

test(
  'pool: concurrent jobs, caller-provided SAB outputs, inline small jobs, errors',
  timed(async () => {
    const codec = createCodec(8, 3);
    const objs = [0, 1, 2, 3].map((i) => bytes(1 << 20, 900 + i));
    const all = await Promise.all(objs.map((o) => pool.encode(8, 3, o)));
    all.forEach((strips, i) => assert.is(hex(strips[10]!), hex(codec.encodeObject(objs[i]!)[10]!)));
    // outputs written in place into caller SAB views
    const sab = new SharedArrayBuffer(11 * (1 << 17));
    const outs = Array.from({ length: 11 }, (_, i) => new Uint8Array(sab, i << 17, 1 << 17));
    const got = await pool.encode(8, 3, objs[0]!, outs);
    assert.is(got, outs);
    assert.is(hex(outs[9]!), hex(all[0]![9]!));
    // non-shared caller output buffers get a copy
    const plainOut = new Uint8Array(1 << 20);
    await pool.decode(8, 3, [null, ...all[1]!.slice(1)], plainOut);
    assert.ok(Buffer.from(plainOut).equals(Buffer.from(objs[1]!)));
    // small jobs stay inline (plain ArrayBuffer results)
    const small = bytes(EC_INLINE_LIMIT, 5);
    const ss = await pool.encode(4, 2, small);
    assert.not.ok(ss[0]!.buffer instanceof SharedArrayBuffer);
    assert.ok(Buffer.from(await pool.decode(4, 2, [null, null, ...ss.slice(2)])).equals(Buffer.from(small)));
    // errors surface as EcParamError from the calling thread
    await assertRejects(pool.encode(5, 2, small), /d \(data strips\) must be 2, 4, 8 or 16, got 5/);
    await assertRejects(pool.encode(4, 2, new Uint8Array(700)), /700 is not a multiple/);
    await assertRejects(pool.decode(8, 3, all[2]!.map((s, i) => (i < 4 ? null : s))), /8:3 needs at least 8 strips to decode, only 7 present/);
    await assertRejects(pool.reconstruct(8, 3, all[2]!, [11]), /strip index 11 outside 0..10/);
    await assertRejects(pool.reconstruct(8, 3, all[2]!.map((s, i) => (i < 3 ? null : s)), [3]), /needs 8 intact strips besides the 1 to rebuild, only 7 present/);
  }),
);

test.run();

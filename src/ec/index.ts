// Sheepdog-compatible erasure coding: GF(2^8), the d:p codec, strip layout, copy_policy helpers, pool.
export { GF_POLY, GF_EXP, GF_LOG, GF_INV, GF_MUL, gfMul, gfInv, gfDiv, gfPow, gfMulRow, gfMatMul, gfInvertMatrix } from './gf256.js';
export { gfDot, gfDotMany, setEcKernel, ecKernel, type EcKernel } from './kernels.js';
export { simdKernel, type SimdKernel } from './simd.js';
export { createCodec, encodeMatrix, type EcCodec, type MaybeStrip } from './fec.js';
export {
  SD_EC_DATA_STRIPE_SIZE,
  SD_EC_MAX_STRIP,
  stripSize,
  stripFileSize,
  assertStripeMultiple,
  ecStripFileName,
  ecStaleFileName,
  splitStripes,
  joinStripes,
} from './strips.js';
export {
  EC_MAX_COPIES,
  EC_DATA_STRIPS,
  EC_MAX_PARITY,
  EcParamError,
  CopiesParseError,
  validateEc,
  ecPolicy,
  ecFromPolicy,
  isEcPolicy,
  redundancyString,
  copiesErrorMessage,
  tryParseCopies,
  parseCopies,
  type CopiesSpec,
} from './policy.js';
export { EcPool, EC_INLINE_LIMIT, type EcPoolOptions } from './ec-pool.js';
export type { SabRange, EcEncodeTask, EcDecodeTask, EcReconstructTask } from './ec-task.js';

// A 32-bit fingerprint of plain data (FNV-1a over a canonical walk): what replay compares after every
// input to catch a context that differs. Walking the value directly is cheaper than encoding it first.
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);

/** Mixes the 4 bytes of a 32-bit word into the hash. */
function mix(h: number, x: number): number {
  h = Math.imul(h ^ (x & 0xff), 0x01000193);
  h = Math.imul(h ^ ((x >>> 8) & 0xff), 0x01000193);
  h = Math.imul(h ^ ((x >>> 16) & 0xff), 0x01000193);
  return Math.imul(h ^ (x >>> 24), 0x01000193);
}

function str(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0xff, 0x01000193);
}

function walk(h: number, v: unknown, depth: number): number {
  if (depth > 64) throw new Error('fingerprint: value nested deeper than 64 levels');
  switch (typeof v) {
    case 'number':
      F64[0] = v;
      return mix(mix(Math.imul(h ^ 1, 0x01000193), U32[0]!), U32[1]!);
    case 'string':
      return str(Math.imul(h ^ 2, 0x01000193), v);
    case 'boolean':
      return Math.imul(h ^ (v ? 3 : 4), 0x01000193);
    case 'bigint':
      return str(Math.imul(h ^ 5, 0x01000193), v.toString(16));
    case 'undefined':
      return Math.imul(h ^ 6, 0x01000193);
    case 'object': {
      if (v === null) return Math.imul(h ^ 7, 0x01000193);
      if (Array.isArray(v)) {
        h = mix(Math.imul(h ^ 8, 0x01000193), v.length);
        for (const x of v) h = walk(h, x, depth + 1);
        return h;
      }
      if (v instanceof Uint8Array) {
        h = mix(Math.imul(h ^ 9, 0x01000193), v.length);
        for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v[i]!, 0x01000193);
        return h;
      }
      h = Math.imul(h ^ 10, 0x01000193);
      for (const k in v as Record<string, unknown>) h = walk(str(h, k), (v as Record<string, unknown>)[k], depth + 1);
      return h;
    }
    default:
      return Math.imul(h ^ 11, 0x01000193); // functions and symbols do not survive persistence anyway
  }
}

export function fingerprint(v: unknown): number {
  return walk(0x811c9dc5 | 0, v, 0) >>> 0;
}

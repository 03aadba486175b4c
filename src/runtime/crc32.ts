// CRC-32 (IEEE, the same value as zlib.crc32). Small inputs are hashed in JavaScript: crossing into
// native code costs more than the table loop for the short records the event log writes per event.
import { crc32 as nativeCrc32 } from 'node:zlib';

const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

const NATIVE_FROM = 512;

export function crc32(data: Uint8Array): number {
  if (data.length >= NATIVE_FROM) return nativeCrc32(data);
  let c = -1;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

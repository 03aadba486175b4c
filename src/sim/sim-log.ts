// The recorded simulation: its parameters, every step (virtual time and what happened), and the verdict
// with the final state digest. Layout: "SHEEPSIM" + u32 version + u32 reserved, then frames of
// [u32 length][u32 crc32][msgpack record], little-endian. Replay re-runs the parameters and compares
// step by step; a bad checksum, a short frame or a missing end record means the log is damaged.
import { readFileSync, writeFileSync } from 'node:fs';
import { Packr } from 'msgpackr';
import { crc32 } from '../runtime/crc32.js';
import { LogCorruptedError } from '../runtime/event-log.js';
import type { SimParams } from './run.js';

export const SIM_LOG_MAGIC = 'SHEEPSIM';
export const SIM_LOG_VERSION = 1;
const HEADER_BYTES = 16;
const MAX_FRAME = 16 * 1024 * 1024;

export type SimRecord =
  | { k: 'params'; params: SimParams }
  | { k: 'step'; n: number; t: number; what: string }
  | { k: 'end'; verdict: string; digest: string; line: string };

const packr = new Packr({ useRecords: false });

export function isSimLog(path: string): boolean {
  try {
    return readFileSync(path).subarray(0, 8).toString('latin1') === SIM_LOG_MAGIC;
  } catch {
    return false;
  }
}

export function writeSimLog(path: string, records: readonly SimRecord[]): void {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(SIM_LOG_MAGIC, 0, 'latin1');
  header.writeUInt32LE(SIM_LOG_VERSION, 8);
  parts.push(header);
  for (const r of records) {
    const body = packr.pack(r);
    const frame = Buffer.alloc(8);
    frame.writeUInt32LE(body.length, 0);
    frame.writeUInt32LE(crc32(body), 4);
    parts.push(frame, body);
  }
  writeFileSync(path, Buffer.concat(parts));
}

export function readSimLog(path: string): { params: SimParams; steps: Array<{ n: number; t: number; what: string }>; end: { verdict: string; digest: string; line: string } } {
  const b = readFileSync(path);
  if (b.length < HEADER_BYTES || b.subarray(0, 8).toString('latin1') !== SIM_LOG_MAGIC) throw new LogCorruptedError(path, 0, 0, 'not a simulation log');
  const version = b.readUInt32LE(8);
  if (version !== SIM_LOG_VERSION) throw new LogCorruptedError(path, 8, 0, `simulation log version ${version}, this build reads ${SIM_LOG_VERSION}`);
  const records: SimRecord[] = [];
  let at = HEADER_BYTES;
  while (at < b.length) {
    if (at + 8 > b.length) throw new LogCorruptedError(path, at, records.length, 'truncated frame header');
    const len = b.readUInt32LE(at);
    const crc = b.readUInt32LE(at + 4);
    if (len > MAX_FRAME) throw new LogCorruptedError(path, at, records.length, `frame claims ${len} bytes`);
    if (at + 8 + len > b.length) throw new LogCorruptedError(path, at, records.length, 'truncated frame');
    const body = b.subarray(at + 8, at + 8 + len);
    if (crc32(body) !== crc) throw new LogCorruptedError(path, at, records.length, 'checksum mismatch');
    records.push(packr.unpack(body) as SimRecord);
    at += 8 + len;
  }
  const first = records[0];
  const last = records[records.length - 1];
  if (!first || first.k !== 'params') throw new LogCorruptedError(path, HEADER_BYTES, 0, 'no parameters record');
  if (!last || last.k !== 'end') throw new LogCorruptedError(path, b.length, records.length, 'no end record (truncated log)');
  const steps = records.filter((r): r is Extract<SimRecord, { k: 'step' }> => r.k === 'step');
  steps.forEach((s, i) => {
    if (s.n !== i + 1) throw new LogCorruptedError(path, 0, i + 1, `step ${i + 1} is numbered ${s.n}`);
  });
  return { params: first.params, steps, end: last };
}

// The recorded event log: every input that enters an actor, with virtual timestamps, in checksummed
// frames. Layout: 16-byte file header ("SHEEPLOG", u32 version, u32 reserved), then frames of
// [u32 payload length][u32 crc32(payload)][msgpack payload], all little-endian.
// Several shards may append to one file (O_APPEND, whole frames per write); each record carries its
// shard and a per-shard sequence number, so a dropped or reordered record is detected as corruption.
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';

export const LOG_MAGIC = 'SHEEPLOG';
export const LOG_VERSION = 1;
export const LOG_HEADER_BYTES = 16;
/** No single record may exceed this; a larger length field means a corrupted log. */
export const MAX_LOG_RECORD_BYTES = 16 * 1024 * 1024;

/** One recorded input or checkpoint. `a` = actor address key, `t` = virtual time (ms), `q` = per-shard sequence. */
export type LogRecord =
  | { k: 'spawn'; s: number; q: number; t: number; a: string; input: unknown }
  | { k: 'in'; s: number; q: number; t: number; a: string; ev: unknown; st: string }
  | { k: 'timer'; s: number; q: number; t: number; a: string; id: number; st: string }
  | { k: 'stop'; s: number; q: number; t: number; a: string }
  | { k: 'crash'; s: number; q: number; t: number; a: string; err: string }
  | { k: 'digest'; s: number; q: number; t: number; d: string; n: number };

export type LogRecordBody = LogRecord extends infer R ? (R extends LogRecord ? Omit<R, 's' | 'q'> : never) : never;

const packr = new Packr({ useRecords: false, moreTypes: false });

function fileHeader(): Buffer {
  const h = Buffer.alloc(LOG_HEADER_BYTES);
  h.write(LOG_MAGIC, 0, 'latin1');
  h.writeUInt32LE(LOG_VERSION, 8);
  return h;
}

/** Creates (or truncates) a log file with just its header. Call once before shards append. */
export function createEventLog(path: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, fileHeader());
  } finally {
    closeSync(fd);
  }
}

/** Appends records from one shard. Buffers frames and writes them in batches (recording must stay cheap). */
export class EventLogWriter {
  private readonly fd: number;
  private chunks: Buffer[] = [];
  private pendingBytes = 0;
  private seq = 0;
  private closed = false;
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    readonly path: string,
    readonly shard: number,
    private readonly batchBytes = 256 * 1024,
  ) {
    this.fd = openSync(path, 'a');
    if (fstatSync(this.fd).size === 0) writeSync(this.fd, fileHeader());
    // A recording should survive an abrupt stop within a fraction of a second.
    this.flushTimer = setInterval(() => this.flush(), 100);
    this.flushTimer.unref();
  }

  append(body: LogRecordBody): void {
    if (this.closed) throw new Error(`event log ${this.path} is closed`);
    const record = { ...body, s: this.shard, q: this.seq++ };
    const payload = packr.pack(record);
    if (payload.length > MAX_LOG_RECORD_BYTES) throw new Error(`log record of ${payload.length} bytes exceeds ${MAX_LOG_RECORD_BYTES}`);
    const frame = Buffer.allocUnsafe(8 + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    frame.writeUInt32LE(crc32(payload), 4);
    payload.copy(frame, 8);
    this.chunks.push(frame);
    this.pendingBytes += frame.length;
    if (this.pendingBytes >= this.batchBytes) this.flush();
  }

  flush(): void {
    if (this.chunks.length === 0) return;
    const batch = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.pendingBytes);
    this.chunks = [];
    this.pendingBytes = 0;
    let off = 0;
    while (off < batch.length) off += writeSync(this.fd, batch, off, batch.length - off);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    clearInterval(this.flushTimer);
    closeSync(this.fd);
    this.closed = true;
  }
}

export class LogCorruptedError extends Error {
  constructor(
    readonly path: string,
    readonly byteOffset: number,
    readonly recordIndex: number,
    readonly reason: string,
  ) {
    super(`event log ${path} is corrupted at byte ${byteOffset} (record #${recordIndex}): ${reason}`);
    this.name = 'LogCorruptedError';
  }
}

/** Reads and validates a whole log. Throws LogCorruptedError on any framing, checksum or sequence fault. */
export function readEventLog(path: string): LogRecord[] {
  const data = readFileSync(path);
  if (data.length < LOG_HEADER_BYTES) throw new LogCorruptedError(path, 0, 0, 'file shorter than the log header');
  if (data.toString('latin1', 0, 8) !== LOG_MAGIC) throw new LogCorruptedError(path, 0, 0, 'not an event log (bad magic)');
  const version = data.readUInt32LE(8);
  if (version !== LOG_VERSION) throw new LogCorruptedError(path, 8, 0, `unsupported log version ${version}`);
  const records: LogRecord[] = [];
  const nextSeq = new Map<number, number>();
  let off = LOG_HEADER_BYTES;
  while (off < data.length) {
    const index = records.length;
    if (off + 8 > data.length) throw new LogCorruptedError(path, off, index, 'truncated frame header');
    const len = data.readUInt32LE(off);
    const sum = data.readUInt32LE(off + 4);
    if (len > MAX_LOG_RECORD_BYTES) throw new LogCorruptedError(path, off, index, `frame length ${len} exceeds ${MAX_LOG_RECORD_BYTES}`);
    if (off + 8 + len > data.length) throw new LogCorruptedError(path, off, index, `truncated frame (needs ${len} bytes, ${data.length - off - 8} left)`);
    const payload = data.subarray(off + 8, off + 8 + len);
    if (crc32(payload) !== sum) throw new LogCorruptedError(path, off, index, 'checksum mismatch');
    let record: LogRecord;
    try {
      record = packr.unpack(payload) as LogRecord;
    } catch (e) {
      throw new LogCorruptedError(path, off, index, `undecodable record: ${(e as Error).message}`);
    }
    if (typeof record !== 'object' || record === null || typeof record.k !== 'string' || typeof record.s !== 'number' || typeof record.q !== 'number') {
      throw new LogCorruptedError(path, off, index, 'record lacks kind, shard or sequence');
    }
    const expected = nextSeq.get(record.s) ?? 0;
    if (record.q !== expected) throw new LogCorruptedError(path, off, index, `shard ${record.s} sequence ${record.q} where ${expected} was expected (a record is missing or reordered)`);
    nextSeq.set(record.s, expected + 1);
    records.push(record);
    off += 8 + len;
  }
  return records;
}

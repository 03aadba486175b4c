// The recorded event log: every input that enters an actor, with virtual timestamps, in checksummed
// frames. Layout: 16-byte file header ("SHEEPLOG", u32 version, u32 reserved), then frames of
// [u32 payload length][u32 crc32(payload)][payload], all little-endian. A payload is a batch of records
// from one shard: [u8 shard][u32 first seq][u32 count] then per record [u8 kind][f64 time][fields].
// Actor addresses and state signatures are interned (a NAME record gives each string a number the first
// time it appears), events and inputs are msgpack, so recording one event costs about one small encode.
// Several shards may append to one file (O_APPEND, whole frames per write); each record carries its
// shard and a per-shard sequence number, so a dropped or reordered record is detected as corruption.
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { crc32 } from './crc32.js';
import { Packr } from 'msgpackr';

export const LOG_MAGIC = 'SHEEPLOG';
export const LOG_VERSION = 4;
export const LOG_HEADER_BYTES = 16;
/** No frame (a batch of records) may exceed this; a larger length field means a corrupted log. */
export const MAX_LOG_RECORD_BYTES = 64 * 1024 * 1024;

/** One recorded input or checkpoint. `a` = actor address key, `t` = virtual time (ms), `q` = per-shard sequence. */
export type LogRecord =
  | { k: 'spawn'; s: number; q: number; t: number; a: string; input: unknown }
  | { k: 'in'; s: number; q: number; t: number; a: string; ev: unknown; st: string }
  | { k: 'timer'; s: number; q: number; t: number; a: string; id: number; st: string }
  | { k: 'stop'; s: number; q: number; t: number; a: string }
  | { k: 'crash'; s: number; q: number; t: number; a: string; err: string }
  | { k: 'digest'; s: number; q: number; t: number; d: string; n: number };

export type LogRecordBody = LogRecord extends infer R ? (R extends LogRecord ? Omit<R, 's' | 'q'> : never) : never;

/** A state signature in parts: status:value (interned) and the context fingerprint. */
export interface SignatureParts {
  readonly sv: string;
  readonly fp: number;
}

export function signatureString(p: SignatureParts): string {
  return `${p.sv}:${p.fp.toString(16)}`;
}

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

const K_SPAWN = 0, K_IN = 1, K_TIMER = 2, K_STOP = 3, K_CRASH = 4, K_DIGEST = 5, K_NAME = 6;
const BATCH_HEADER = 9;

/** Appends records from one shard straight into a batch buffer; each batch is one checksummed frame. */
export class EventLogWriter {
  private readonly fd: number;
  private buf: Buffer;
  private used = BATCH_HEADER;
  private count = 0;
  private firstSeq = 0;
  private seq = 0;
  private closed = false;
  private readonly names = new Map<string, number>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    readonly path: string,
    readonly shard: number,
    private readonly batchBytes = 1 << 20,
  ) {
    this.fd = openSync(path, 'a');
    if (fstatSync(this.fd).size === 0) writeSync(this.fd, fileHeader());
    this.buf = Buffer.allocUnsafe(batchBytes + 8);
    // A recording should survive an abrupt stop within a fraction of a second.
    this.flushTimer = setInterval(() => this.flush(), 100);
    this.flushTimer.unref();
  }

  private room(n: number): void {
    if (8 + this.used + n <= this.buf.length) return;
    this.flush();
    if (8 + this.used + n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(8 + this.used + n + this.batchBytes);
      this.buf.copy(bigger, 0, 0, 8 + this.used);
      this.buf = bigger;
    }
  }

  /** Number for a string, announcing it with a NAME record the first time (NAME records take a seq too). */
  private name(str: string): number {
    let id = this.names.get(str);
    if (id !== undefined) return id;
    id = this.names.size;
    this.names.set(str, id);
    const len = Buffer.byteLength(str);
    this.room(1 + 8 + 4 + 4 + len);
    this.header(K_NAME, 0);
    const o = 8 + this.used;
    this.buf.writeUInt32LE(id, o);
    this.buf.writeUInt32LE(len, o + 4);
    this.buf.write(str, o + 8, len, 'utf8');
    this.used += 8 + len;
    return id;
  }

  private header(kind: number, t: number): void {
    if (this.count === 0) this.firstSeq = this.seq;
    const o = 8 + this.used;
    this.buf[o] = kind;
    this.buf.writeDoubleLE(t, o + 1);
    this.used += 9;
    this.count++;
    this.seq++;
  }

  private u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, 8 + this.used);
    this.used += 4;
  }

  private blob(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.buf.set(bytes, 8 + this.used);
    this.used += bytes.length;
  }

  append(b: LogRecordBody): void {
    if (this.closed) throw new Error(`event log ${this.path} is closed`);
    switch (b.k) {
      case 'in':
      case 'timer':
        throw new Error('use appendInput/appendTimer for inputs');
      case 'spawn': {
        const actor = this.name(b.a);
        const input = packr.pack(b.input ?? null);
        this.room(9 + 8 + input.length);
        this.header(K_SPAWN, b.t);
        this.u32(actor);
        this.blob(input);
        break;
      }
      case 'stop':
      case 'crash': {
        const actor = this.name(b.a);
        const err = b.k === 'crash' ? Buffer.from(b.err) : undefined;
        this.room(9 + 8 + (err?.length ?? 0));
        this.header(b.k === 'stop' ? K_STOP : K_CRASH, b.t);
        this.u32(actor);
        if (err) this.blob(err);
        break;
      }
      case 'digest': {
        const d = Buffer.from(b.d);
        this.room(9 + 8 + d.length);
        this.header(K_DIGEST, b.t);
        this.blob(d);
        this.u32(b.n);
        break;
      }
    }
    if (this.used >= this.batchBytes) this.flush();
  }

  /** An input delivered to an actor and the state it led to (the hot path: no intermediate objects). */
  appendInput(t: number, actorKey: string, ev: unknown, st: SignatureParts): void {
    if (this.closed) throw new Error(`event log ${this.path} is closed`);
    const actor = this.name(actorKey);
    const sv = this.name(st.sv);
    const bytes = packr.pack(ev);
    this.room(9 + 16 + bytes.length);
    this.header(K_IN, t);
    this.u32(actor);
    this.u32(sv);
    this.u32(st.fp);
    this.blob(bytes);
    if (this.used >= this.batchBytes) this.flush();
  }

  appendTimer(t: number, actorKey: string, id: number, st: SignatureParts): void {
    if (this.closed) throw new Error(`event log ${this.path} is closed`);
    const actor = this.name(actorKey);
    const sv = this.name(st.sv);
    this.room(9 + 16);
    this.header(K_TIMER, t);
    this.u32(actor);
    this.u32(sv);
    this.u32(st.fp);
    this.u32(id);
  }

  flush(): void {
    if (this.count === 0) return;
    const b = this.buf;
    b[8] = this.shard;
    b.writeUInt32LE(this.firstSeq, 9);
    b.writeUInt32LE(this.count, 13);
    const payload = b.subarray(8, 8 + this.used);
    b.writeUInt32LE(payload.length, 0);
    b.writeUInt32LE(crc32(payload), 4);
    const total = 8 + this.used;
    let off = 0;
    while (off < total) off += writeSync(this.fd, b, off, total - off);
    this.used = BATCH_HEADER;
    this.count = 0;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    clearInterval(this.flushTimer);
    closeSync(this.fd);
    this.closed = true;
  }
}

/** Decodes one batch frame, appending its records. Throws a message string on malformed content. */
function decodeBatch(p: Buffer, names: Map<number, Map<number, string>>, out: LogRecord[], nextSeq: Map<number, number>): void {
  if (p.length < BATCH_HEADER) throw 'batch shorter than its header';
  const s = p[0]!;
  let q = p.readUInt32LE(1);
  const count = p.readUInt32LE(5);
  const expected = nextSeq.get(s) ?? 0;
  if (q !== expected) throw `shard ${s} sequence ${q} where ${expected} was expected (a record is missing or reordered)`;
  let dict = names.get(s);
  if (!dict) names.set(s, (dict = new Map()));
  let o = BATCH_HEADER;
  const need = (n: number) => {
    if (o + n > p.length) throw 'record runs past the end of its batch';
  };
  const u32 = () => {
    need(4);
    const v = p.readUInt32LE(o);
    o += 4;
    return v;
  };
  const blob = () => {
    const len = u32();
    need(len);
    const v = p.subarray(o, o + len);
    o += len;
    return v;
  };
  const str = (id: number) => {
    const v = dict!.get(id);
    if (v === undefined) throw `unknown name #${id}`;
    return v;
  };
  for (let i = 0; i < count; i++, q++) {
    need(9);
    const kind = p[o]!;
    const t = p.readDoubleLE(o + 1);
    o += 9;
    switch (kind) {
      case K_NAME: {
        const id = u32();
        dict.set(id, blob().toString('utf8'));
        continue; // not a record of its own for replay
      }
      case K_IN: {
        const a = str(u32());
        const st = signatureString({ sv: str(u32()), fp: u32() });
        out.push({ k: 'in', s, q, t, a, st, ev: packr.unpack(blob()) });
        break;
      }
      case K_TIMER: {
        const a = str(u32());
        const st = signatureString({ sv: str(u32()), fp: u32() });
        out.push({ k: 'timer', s, q, t, a, st, id: u32() });
        break;
      }
      case K_SPAWN: {
        const a = str(u32());
        out.push({ k: 'spawn', s, q, t, a, input: packr.unpack(blob()) });
        break;
      }
      case K_STOP:
        out.push({ k: 'stop', s, q, t, a: str(u32()) });
        break;
      case K_CRASH: {
        const a = str(u32());
        out.push({ k: 'crash', s, q, t, a, err: blob().toString('utf8') });
        break;
      }
      case K_DIGEST: {
        const d = blob().toString('utf8');
        out.push({ k: 'digest', s, q, t, d, n: u32() });
        break;
      }
      default:
        throw `unknown record kind ${kind}`;
    }
  }
  if (o !== p.length) throw 'trailing bytes after the last record of a batch';
  nextSeq.set(s, q);
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
  const names = new Map<number, Map<number, string>>();
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
    try {
      decodeBatch(payload, names, records, nextSeq);
    } catch (e) {
      throw new LogCorruptedError(path, off, records.length, typeof e === 'string' ? e : `undecodable batch: ${(e as Error).message}`);
    }
    off += 8 + len;
  }
  return records;
}

// A small NBD client (fixed newstyle, NBD_OPT_GO, optional structured replies and base:allocation),
// with pipelined requests matched by cookie. Used by the tests and for poking at the server by hand.
import { ByteQueue } from '../net/byte-queue.js';
import { connect, type Socket } from 'node:net';
import {
  BASE_ALLOCATION,
  ClientFlag,
  Cmd,
  Info,
  NBD_IHAVEOPT,
  NBD_MAGIC,
  NBD_OPT_REPLY_MAGIC,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  Opt,
  Rep,
  ReplyFlag,
  ReplyType,
} from './protocol.js';

export interface NbdReply {
  error: number;
  data: Buffer;
  /** BLOCK_STATUS descriptors */
  extents: Array<{ length: number; flags: number }>;
  message: string;
}

export interface OptReply {
  type: number;
  data: Buffer;
}

export class NbdClient {
  private readonly q = new ByteQueue();
  private waiter: { n: number; resolve: () => void } | null = null;
  private closed: Error | null = null;
  private nextCookie = 1n;
  private readonly pending = new Map<bigint, { type: number; offset: number; length: number; reply: NbdReply; resolve: (r: NbdReply) => void; reject: (e: Error) => void; buf?: Buffer }>();
  private transmitting = false;
  size = 0n;
  flags = 0;
  structured = false;
  metaContextId = 0;
  handshakeFlags = 0;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('close', () => this.fail(new Error('connection closed')));
    socket.on('error', (e) => this.fail(e));
  }

  static open(host: string, port: number): Promise<NbdClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.once('connect', () => resolve(new NbdClient(s)));
      s.once('error', reject);
    });
  }

  /** Handshake up to transmission: STRUCTURED_REPLY, SET_META_CONTEXT base:allocation, GO. */
  static async connect(host: string, port: number, exportName: string, opts: { structured?: boolean; blockStatus?: boolean } = {}): Promise<NbdClient> {
    const c = await NbdClient.open(host, port);
    try {
      await c.greet();
      if (opts.structured ?? true) {
        const r = await c.option(Opt.STRUCTURED_REPLY);
        c.structured = r[r.length - 1]!.type === Rep.ACK;
        if (c.structured && (opts.blockStatus ?? true)) {
          const rs = await c.option(Opt.SET_META_CONTEXT, metaRequest(exportName, [BASE_ALLOCATION]));
          for (const x of rs) if (x.type === Rep.META_CONTEXT) c.metaContextId = x.data.readUInt32BE(0);
        }
      }
      await c.go(exportName);
      return c;
    } catch (e) {
      c.close();
      throw e;
    }
  }

  async greet(clientFlags = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES): Promise<void> {
    const g = await this.read(18);
    if (g.readBigUInt64BE(0) !== NBD_MAGIC || g.readBigUInt64BE(8) !== NBD_IHAVEOPT) throw new Error('not an NBD newstyle server');
    this.handshakeFlags = g.readUInt16BE(16);
    const f = Buffer.alloc(4);
    f.writeUInt32BE(clientFlags);
    this.socket.write(f);
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(opt: number, data: Buffer = Buffer.alloc(0)): Promise<OptReply[]> {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(NBD_IHAVEOPT, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([h, data]));
    const out: OptReply[] = [];
    for (;;) {
      const r = await this.read(20);
      if (r.readBigUInt64BE(0) !== NBD_OPT_REPLY_MAGIC) throw new Error('bad option reply magic');
      const type = r.readUInt32BE(12);
      const len = r.readUInt32BE(16);
      const d = await this.read(len);
      out.push({ type, data: d });
      if (type === Rep.ACK || type >= 0x80000000) return out;
    }
  }

  async go(exportName: string): Promise<void> {
    const r = await this.option(Opt.GO, infoRequest(exportName, [Info.BLOCK_SIZE]));
    const last = r[r.length - 1]!;
    if (last.type !== Rep.ACK) throw new Error(`NBD_OPT_GO failed: reply 0x${last.type.toString(16)} ${last.data.toString()}`);
    for (const x of r) {
      if (x.type === Rep.INFO && x.data.readUInt16BE(0) === Info.EXPORT) {
        this.size = x.data.readBigUInt64BE(2);
        this.flags = x.data.readUInt16BE(10);
      }
    }
    this.transmitting = true;
    if (this.q.length > 0) this.parseReplies();
  }

  request(type: number, offset: number, length: number, flags = 0, data?: Buffer): Promise<NbdReply> {
    if (this.closed) return Promise.reject(this.closed);
    const cookie = this.nextCookie++;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(cookie, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      if (type !== Cmd.DISC) this.pending.set(cookie, { type, offset, length, reply: { error: 0, data: Buffer.alloc(0), extents: [], message: '' }, resolve, reject });
      this.socket.cork();
      this.socket.write(h);
      if (data) this.socket.write(data);
      this.socket.uncork();
      if (type === Cmd.DISC) resolve({ error: 0, data: Buffer.alloc(0), extents: [], message: '' });
    });
  }

  read_(offset: number, length: number, flags = 0) {
    return this.request(Cmd.READ, offset, length, flags);
  }
  write(offset: number, data: Buffer, flags = 0) {
    return this.request(Cmd.WRITE, offset, data.length, flags, data);
  }
  flush() {
    return this.request(Cmd.FLUSH, 0, 0);
  }
  trim(offset: number, length: number) {
    return this.request(Cmd.TRIM, offset, length);
  }
  zero(offset: number, length: number, flags = 0) {
    return this.request(Cmd.WRITE_ZEROES, offset, length, flags);
  }
  blockStatus(offset: number, length: number, flags = 0) {
    return this.request(Cmd.BLOCK_STATUS, offset, length, flags);
  }

  async disconnect(): Promise<void> {
    if (this.closed) return;
    const closed = new Promise<void>((r) => this.socket.once('close', () => r()));
    await this.request(Cmd.DISC, 0, 0);
    this.socket.end();
    await closed;
  }

  close(): void {
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.closed !== null;
  }

  /** Resolves when the server closes the connection. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.socket.once('close', () => r()));
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    if (this.waiter) this.waiter.resolve();
  }

  private onData(c: Buffer): void {
    this.q.push(c);
    if (this.transmitting) this.parseReplies();
    else if (this.waiter && this.q.length >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
  }

  private async read(n: number): Promise<Buffer> {
    while (this.q.length < n) {
      if (this.closed) throw this.closed;
      await new Promise<void>((resolve) => (this.waiter = { n, resolve }));
    }
    return this.q.take(n);
  }

  private parseReplies(): void {
    for (;;) {
      if (this.q.length < 4) return;
      const head = this.q.peek(Math.min(this.q.length, 20));
      const magic = head.readUInt32BE(0);
      if (magic === NBD_SIMPLE_REPLY_MAGIC) {
        if (this.q.length < 16) return;
        const cookie = head.readBigUInt64BE(8);
        const p = this.pending.get(cookie);
        if (!p) return this.fail(new Error(`reply for unknown cookie ${cookie}`));
        const error = head.readUInt32BE(4);
        const dataLen = p.type === Cmd.READ && error === 0 ? p.length : 0;
        if (this.q.length < 16 + dataLen) return;
        this.q.take(16);
        p.reply.error = error;
        if (dataLen) p.reply.data = Buffer.from(this.q.take(dataLen));
        this.pending.delete(cookie);
        p.resolve(p.reply);
      } else if (magic === NBD_STRUCTURED_REPLY_MAGIC) {
        if (this.q.length < 20) return;
        const flags = head.readUInt16BE(4);
        const type = head.readUInt16BE(6);
        const cookie = head.readBigUInt64BE(8);
        const len = head.readUInt32BE(16);
        if (this.q.length < 20 + len) return;
        this.q.take(20);
        const payload = Buffer.from(this.q.take(len));
        const p = this.pending.get(cookie);
        if (!p) return this.fail(new Error(`chunk for unknown cookie ${cookie}`));
        if (type === ReplyType.OFFSET_DATA) {
          const off = Number(payload.readBigUInt64BE(0));
          if (!p.buf) p.buf = Buffer.alloc(p.length);
          payload.copy(p.buf, off - p.offset, 8);
        } else if (type === ReplyType.OFFSET_HOLE) {
          if (!p.buf) p.buf = Buffer.alloc(p.length);
        } else if (type === ReplyType.BLOCK_STATUS) {
          for (let i = 4; i + 8 <= payload.length; i += 8) p.reply.extents.push({ length: payload.readUInt32BE(i), flags: payload.readUInt32BE(i + 4) });
        } else if (type & 0x8000) {
          p.reply.error = payload.readUInt32BE(0);
          const ml = payload.readUInt16BE(4);
          p.reply.message = payload.toString('utf8', 6, 6 + ml);
        }
        if (flags & ReplyFlag.DONE) {
          if (p.buf) p.reply.data = p.buf;
          this.pending.delete(cookie);
          p.resolve(p.reply);
        }
      } else {
        return this.fail(new Error(`bad reply magic 0x${magic.toString(16)}`));
      }
    }
  }
}

export function infoRequest(name: string, infos: number[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((x, i) => b.writeUInt16BE(x, 6 + n.length + 2 * i));
  return b;
}

export function metaRequest(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.from(name, 'utf8');
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n.length);
  parts.push(h, n);
  const c = Buffer.alloc(4);
  c.writeUInt32BE(queries.length);
  parts.push(c);
  for (const q of queries) {
    const qb = Buffer.from(q, 'utf8');
    const l = Buffer.alloc(4);
    l.writeUInt32BE(qb.length);
    parts.push(l, qb);
  }
  return Buffer.concat(parts);
}

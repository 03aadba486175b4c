// NBD front end: exports every VDI of the cluster by name over the NBD protocol (fixed newstyle
// handshake, structured replies, base:allocation block status, multi-conn). Each export is a
// VdiDevice (QEMU sheepdog driver semantics) shared by all connections to it. Protocol:
// NetworkBlockDevice doc/proto.md; what real clients send: /work/shared/notes/nbd-clients.md.
import { Incoming, readFramed } from '../net/socket-reader.js';
import { tickCorkedWriter, type CorkedWriter } from '../net/tick-cork.js';
import { ByteQueue } from '../net/byte-queue.js';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { SheepTransport } from '../client/transport.js';
import { localTransport } from '../client/transport.js';
import { sharedPayloads } from '../net/payload-pool.js';
import { Res } from '../proto/constants.js';
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  ClientFlag,
  Cmd,
  CmdFlag,
  Errno,
  HandshakeFlag,
  Info,
  NBD_IHAVEOPT,
  NBD_MAX_PAYLOAD,
  NBD_MIN_BLOCK,
  NBD_PREF_BLOCK,
  Opt,
  OptionParseError,
  REQUEST_HEADER_SIZE,
  Rep,
  ReplyFlag,
  ReplyType,
  TxFlag,
  cmdName,
  decodeRequestHeader,
  encodeBlockStatusChunk,
  encodeChunkHeader,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContext,
  encodeOffsetDataHeader,
  encodeOptReply,
  encodeRepServer,
  encodeSimpleReply,
  optName,
  parseInfoRequest,
  parseMetaRequest,
  type NbdRequest,
} from './protocol.js';
import { DEFAULT_WRITE_BACK_BYTES, VdiDevice, VdiDeviceError, listExports, probeExport } from './vdi-device.js';

export type NbdLog = (level: 'info' | 'warn' | 'error' | 'debug', msg: string) => void;

export interface NbdServerOptions {
  readonly transport: SheepTransport;
  readonly port: number;
  readonly host?: string;
  readonly log?: NbdLog;
  /** list snapshots (NAME:SNAPID) in NBD_OPT_LIST too (default true) */
  readonly listSnapshots?: boolean;
  /** a connection that has not finished its handshake by then is dropped (default 60 s) */
  readonly handshakeTimeoutMs?: number;
  /**
   * Per open VDI: bytes of writes acknowledged before every replica has them (a volatile write cache
   * that FLUSH empties; default DEFAULT_WRITE_BACK_BYTES). 0: acknowledge each write once complete.
   */
  readonly writeBackBytes?: number;
}

/** Longest option payload we read (export names are at most 4096 bytes). */
const MAX_OPTION_LENGTH = 64 * 1024;
/** Beyond this an option is treated as an attack and the connection closed. */
const MAX_SKIPPABLE_OPTION = 16 * 1024 * 1024;
/** Stop reading from a connection while this many requests / bytes are in flight. */
const MAX_INFLIGHT_REQUESTS = 128;
const MAX_INFLIGHT_BYTES = 256 * 1024 * 1024;

const BASE_TX_FLAGS = TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN;
const KNOWN_CMD_FLAGS = CmdFlag.FUA | CmdFlag.NO_HOLE | CmdFlag.DF | CmdFlag.REQ_ONE;

class ConnectionClosed extends Error {}
class ProtocolError extends Error {}

interface ExportSlot {
  device: Promise<VdiDevice>;
  refs: number;
}

export class NbdServer {
  private readonly server: Server;
  private readonly connections = new Set<NbdConnection>();
  private readonly devices = new Map<string, ExportSlot>();
  private readonly closing = new Map<string, Promise<void>>();
  private stopped = false;
  readonly log: NbdLog;
  readonly stats = { connections: 0, protocolErrors: 0 };

  private constructor(readonly opts: NbdServerOptions) {
    this.log = opts.log ?? (() => undefined);
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  static async start(opts: NbdServerOptions): Promise<NbdServer> {
    const s = new NbdServer(opts);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    s.server.on('error', (err) => s.log('error', `nbd: listener error: ${err.message}`));
    s.log('info', `nbd: serving VDIs on ${opts.host ?? '127.0.0.1'}:${s.port}`);
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get transport(): SheepTransport {
    return this.opts.transport;
  }

  /** Stops listening, drops every connection and releases every open VDI. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const listening = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of [...this.connections]) c.destroy('server shutting down');
    await Promise.allSettled([...this.connections].map((c) => c.finished));
    await Promise.allSettled([...this.closing.values()]);
    await listening;
  }

  private accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.stats.connections++;
    const c = new NbdConnection(this, socket);
    this.connections.add(c);
    void c.finished.then(() => this.connections.delete(c));
  }

  /** Opens (or shares) the device of an export; pair with release(). */
  async acquire(exportName: string): Promise<VdiDevice> {
    if (this.stopped) throw new VdiDeviceError(Errno.ESHUTDOWN, 'server shutting down');
    const pending = this.closing.get(exportName);
    if (pending) await pending;
    let slot = this.devices.get(exportName);
    if (!slot) {
      const device = VdiDevice.open(this.opts.transport, exportName, this.log, this.opts.writeBackBytes ?? DEFAULT_WRITE_BACK_BYTES);
      slot = { device, refs: 0 };
      this.devices.set(exportName, slot);
      device.catch(() => {
        if (this.devices.get(exportName) === slot) this.devices.delete(exportName);
      });
    }
    slot.refs++;
    try {
      return await slot.device;
    } catch (e) {
      slot.refs--;
      throw e;
    }
  }

  release(exportName: string): void {
    const slot = this.devices.get(exportName);
    if (!slot) return;
    if (--slot.refs > 0) return;
    this.devices.delete(exportName);
    const done = slot.device
      .then((d) => d.close())
      .catch((e) => this.log('warn', `nbd: closing ${exportName}: ${(e as Error).message}`))
      .finally(() => {
        if (this.closing.get(exportName) === done) this.closing.delete(exportName);
      });
    this.closing.set(exportName, done);
  }

  /** Size and read-only state of an export: from the open device if any, else a lookup without locking. */
  async describe(exportName: string): Promise<{ size: bigint; readOnly: boolean; vid: number }> {
    const slot = this.devices.get(exportName);
    if (slot) {
      const d = await slot.device.catch(() => null);
      if (d) return { size: BigInt(d.size), readOnly: d.readOnly, vid: d.vid };
    }
    const p = await probeExport(this.opts.transport, exportName);
    return { size: p.size, readOnly: p.readOnly, vid: p.vid };
  }

  listExports() {
    return listExports(this.opts.transport, this.opts.listSnapshots ?? true);
  }
}

/** Maps a lookup failure to an option error reply. */
function lookupRep(e: unknown): number {
  if (e instanceof VdiDeviceError) {
    if (e.result === Res.NO_VDI || e.result === Res.NO_TAG) return Rep.ERR_UNKNOWN;
    if (e.result === Res.VDI_LOCKED) return Rep.ERR_POLICY;
    if (e.errno === Errno.ENOTSUP) return Rep.ERR_UNSUP;
    if (e.errno === Errno.EINVAL) return Rep.ERR_UNKNOWN;
  }
  return Rep.ERR_PLATFORM;
}

class NbdConnection {
  private readonly inbox = new ByteQueue();
  private waiter: { n: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  private closedErr: Error | null = null;
  private phase: 'handshake' | 'transmission' | 'closed' = 'handshake';
  private fixed = false;
  private noZeroes = false;
  private structured = false;
  private metaExport: string | null = null;
  private metaAllocation = false;
  private exportName = '';
  private device: VdiDevice | null = null;
  private txFlags = 0;
  // transmission state
  private current: NbdRequest | null = null;
  private discardLeft = 0;
  /** the current WRITE's payload when it lands in a pooled buffer, filled as bytes arrive */
  private payload: Incoming | null = null;
  private inflight = 0;
  private inflightBytes = 0;
  private paused = false;
  private disconnecting = false;
  /** after DISC: waiting for the writes pending then to complete before ending the connection */
  private discSettling = false;
  private readonly handshakeTimer: NodeJS.Timeout;
  private resolveFinished!: () => void;
  readonly finished = new Promise<void>((r) => (this.resolveFinished = r));
  private readonly peer: string;
  /** Replies completed in one event-loop turn leave in one writev. */
  private readonly write: CorkedWriter;

  constructor(
    private readonly server: NbdServer,
    private readonly socket: Socket,
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.write = tickCorkedWriter(socket);
    // Nothing more is kept from a client that said goodbye.
    readFramed(socket, this.inbox, () => this.consume(), () => this.payload, () => this.phase !== 'closed' && !this.disconnecting);
    socket.on('error', (err) => this.onClose(err.message));
    socket.on('close', () => this.onClose('connection closed'));
    this.handshakeTimer = setTimeout(() => this.destroy('handshake timed out'), server.opts.handshakeTimeoutMs ?? 60_000);
    this.handshakeTimer.unref();
    void this.handshake().catch((e) => {
      if (e instanceof ConnectionClosed) return;
      this.protocolError(e instanceof ProtocolError ? e.message : `handshake failed: ${(e as Error)?.stack ?? e}`);
    });
  }

  private get log(): NbdLog {
    return this.server.log;
  }

  destroy(reason: string): void {
    if (this.phase === 'closed') return;
    this.log('debug', `nbd: ${this.peer}: closing: ${reason}`);
    this.socket.destroy();
    this.onClose(reason);
  }

  private protocolError(reason: string): void {
    this.server.stats.protocolErrors++;
    this.log('warn', `nbd: ${this.peer}: ${reason}; closing this connection`);
    this.destroy(reason);
  }

  private onClose(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.handshakeTimer);
    if (this.payload) {
      sharedPayloads.release(this.payload.buf); // a WRITE cut short: the socket reads no more into it
      this.payload = null;
    }
    this.closedErr = new ConnectionClosed(reason);
    if (this.waiter) {
      this.waiter.reject(this.closedErr);
      this.waiter = null;
    }
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.phase !== 'closed' || this.inflight > 0) return;
    if (this.device) {
      this.device = null;
      this.server.release(this.exportName);
    }
    this.resolveFinished();
  }

  private consume(): void {
    if (this.phase === 'handshake') {
      if (this.waiter && this.inbox.length >= this.waiter.n) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve();
      }
    } else {
      this.pump();
    }
  }

  private async read(n: number): Promise<Buffer> {
    if (this.inbox.length < n) {
      if (this.closedErr) throw this.closedErr;
      await new Promise<void>((resolve, reject) => (this.waiter = { n, resolve, reject }));
    }
    return this.inbox.take(n);
  }

  private send(...bufs: Buffer[]): void {
    if (this.phase === 'closed' || this.socket.destroyed) return;
    this.write(bufs);
  }

  /** Sends a read's reply; its data may be a pooled buffer (an O_DIRECT read), reused once sent. */
  private sendRead(header: Buffer, data: Buffer): void {
    if (this.phase === 'closed' || this.socket.destroyed) return sharedPayloads.release(data);
    this.write([header, data], data.length >= sharedPayloads.minBytes ? () => sharedPayloads.release(data) : undefined);
  }

  // ---- handshake --------------------------------------------------------------------------------

  private async handshake(): Promise<void> {
    this.send(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
    const cflags = (await this.read(4)).readUInt32BE(0);
    if (cflags & ~(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)) throw new ProtocolError(`unknown client flags 0x${cflags.toString(16)}`);
    this.fixed = (cflags & ClientFlag.FIXED_NEWSTYLE) !== 0;
    this.noZeroes = (cflags & ClientFlag.NO_ZEROES) !== 0;
    for (;;) {
      const h = await this.read(16);
      if (h.readBigUInt64BE(0) !== NBD_IHAVEOPT) throw new ProtocolError(`bad option magic 0x${h.readBigUInt64BE(0).toString(16)}`);
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (!this.fixed && opt !== Opt.EXPORT_NAME) throw new ProtocolError(`option ${optName(opt)} from a client without fixed newstyle`);
      if (len > MAX_OPTION_LENGTH) {
        if (len > MAX_SKIPPABLE_OPTION) throw new ProtocolError(`option ${optName(opt)} of ${len} bytes`);
        let left = len;
        while (left > 0) {
          if (this.inbox.length === 0) await this.waitMore();
          left -= this.inbox.skip(left);
        }
        if (opt === Opt.EXPORT_NAME) throw new ProtocolError(`export name of ${len} bytes`);
        this.send(encodeOptReply(opt, Rep.ERR_TOO_BIG, Buffer.from('option too large')));
        continue;
      }
      const data = await this.read(len);
      const done = await this.option(opt, data);
      if (done) return;
    }
  }

  private async waitMore(): Promise<void> {
    if (this.closedErr) throw this.closedErr;
    await new Promise<void>((resolve, reject) => (this.waiter = { n: 1, resolve, reject }));
  }

  private reply(opt: number, type: number, data?: Buffer | string): void {
    this.send(encodeOptReply(opt, type, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
  }

  /** Handles one option; true when transmission begins (or the connection ends). */
  private async option(opt: number, data: Buffer): Promise<boolean> {
    switch (opt) {
      case Opt.EXPORT_NAME: {
        const name = data.toString('utf8');
        let device: VdiDevice;
        try {
          device = await this.server.acquire(name);
        } catch (e) {
          // NBD_OPT_EXPORT_NAME cannot return an error: the spec says to drop the connection.
          this.log('info', `nbd: ${this.peer}: export '${name}' not available: ${(e as Error).message}`);
          this.destroy(`export '${name}' not available`);
          return true;
        }
        if (this.phase === 'closed') {
          this.server.release(name);
          return true;
        }
        this.bind(name, device);
        this.send(encodeExportNameReply(BigInt(device.size), this.txFlags, this.noZeroes));
        this.startTransmission();
        return true;
      }
      case Opt.GO:
      case Opt.INFO: {
        let req: { name: string; infos: number[] };
        try {
          req = parseInfoRequest(data);
        } catch (e) {
          this.reply(opt, Rep.ERR_INVALID, (e as Error).message);
          return false;
        }
        let size: bigint;
        let readOnly: boolean;
        let device: VdiDevice | null = null;
        try {
          if (opt === Opt.GO) {
            device = await this.server.acquire(req.name);
            size = BigInt(device.size);
            readOnly = device.readOnly;
          } else {
            ({ size, readOnly } = await this.server.describe(req.name));
          }
        } catch (e) {
          this.reply(opt, lookupRep(e), `export '${req.name}': ${(e as Error).message}`);
          return false;
        }
        if (this.phase === 'closed') {
          if (device) this.server.release(req.name);
          return true;
        }
        const flags = this.flagsFor(readOnly);
        this.reply(opt, Rep.INFO, encodeInfoExport(size, flags));
        for (const info of new Set(req.infos)) {
          if (info === Info.BLOCK_SIZE) this.reply(opt, Rep.INFO, encodeInfoBlockSize(NBD_MIN_BLOCK, NBD_PREF_BLOCK, NBD_MAX_PAYLOAD));
          else if (info === Info.NAME) this.reply(opt, Rep.INFO, encodeInfoString(Info.NAME, req.name));
          else if (info === Info.DESCRIPTION) this.reply(opt, Rep.INFO, encodeInfoString(Info.DESCRIPTION, `sheepdog VDI ${req.name}${readOnly ? ' (snapshot, read-only)' : ''}`));
        }
        this.reply(opt, Rep.ACK);
        if (opt === Opt.INFO) return false;
        this.bind(req.name, device!);
        if (this.metaExport !== req.name) this.metaAllocation = false;
        this.startTransmission();
        return true;
      }
      case Opt.LIST: {
        if (data.length !== 0) {
          this.reply(opt, Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
          return false;
        }
        let exports;
        try {
          exports = await this.server.listExports();
        } catch (e) {
          this.reply(opt, Rep.ERR_PLATFORM, `listing VDIs: ${(e as Error).message}`);
          return false;
        }
        const bufs = exports.map((e) => encodeOptReply(opt, Rep.SERVER, encodeRepServer(e.name, e.snapshot ? 'snapshot (read-only)' : '')));
        bufs.push(encodeOptReply(opt, Rep.ACK));
        this.send(...bufs);
        return false;
      }
      case Opt.ABORT:
        this.reply(opt, Rep.ACK);
        this.socket.end();
        this.onClose('client aborted the handshake');
        return true;
      case Opt.STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.reply(opt, Rep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          return false;
        }
        this.structured = true;
        this.reply(opt, Rep.ACK);
        return false;
      case Opt.LIST_META_CONTEXT:
      case Opt.SET_META_CONTEXT: {
        if (!this.structured) {
          this.reply(opt, Rep.ERR_INVALID, 'structured replies must be negotiated first');
          return false;
        }
        let req: { name: string; queries: string[] };
        try {
          req = parseMetaRequest(data);
        } catch (e) {
          this.reply(opt, Rep.ERR_INVALID, e instanceof OptionParseError ? e.message : String(e));
          return false;
        }
        try {
          await this.server.describe(req.name);
        } catch (e) {
          this.reply(opt, lookupRep(e), `export '${req.name}': ${(e as Error).message}`);
          return false;
        }
        const list = opt === Opt.LIST_META_CONTEXT;
        const match = list
          ? req.queries.length === 0 || req.queries.some((q) => q === 'base:' || q === BASE_ALLOCATION)
          : req.queries.some((q) => q === BASE_ALLOCATION);
        if (!list) {
          this.metaExport = req.name;
          this.metaAllocation = match;
        }
        const bufs: Buffer[] = [];
        if (match) bufs.push(encodeOptReply(opt, Rep.META_CONTEXT, encodeMetaContext(list ? 0 : BASE_ALLOCATION_ID, BASE_ALLOCATION)));
        bufs.push(encodeOptReply(opt, Rep.ACK));
        this.send(...bufs);
        return false;
      }
      default:
        this.reply(opt, Rep.ERR_UNSUP, `option ${optName(opt)} is not supported`);
        return false;
    }
  }

  private flagsFor(readOnly: boolean): number {
    let f = BASE_TX_FLAGS;
    if (this.structured) f |= TxFlag.SEND_DF;
    if (readOnly) f |= TxFlag.READ_ONLY;
    return f;
  }

  private bind(name: string, device: VdiDevice): void {
    this.exportName = name;
    this.device = device;
    this.txFlags = this.flagsFor(device.readOnly);
  }

  private startTransmission(): void {
    clearTimeout(this.handshakeTimer);
    this.phase = 'transmission';
    this.log('debug', `nbd: ${this.peer}: transmission on '${this.exportName}' (structured=${this.structured}, base:allocation=${this.metaAllocation})`);
    if (this.inbox.length > 0) this.pump();
  }

  // ---- transmission -----------------------------------------------------------------------------

  private pump(): void {
    while (this.phase === 'transmission' && !this.disconnecting) {
      if (this.discardLeft > 0) {
        this.discardLeft -= this.inbox.skip(this.discardLeft);
        if (this.discardLeft > 0) return;
        const req = this.current!;
        this.current = null;
        this.replyError(req, Errno.EINVAL, `request of ${req.length} bytes exceeds the ${NBD_MAX_PAYLOAD}-byte maximum`);
        continue;
      }
      if (!this.current) {
        if (this.inflight >= MAX_INFLIGHT_REQUESTS || this.inflightBytes >= MAX_INFLIGHT_BYTES) {
          if (!this.paused) {
            this.paused = true;
            this.socket.pause();
          }
          return;
        }
        if (this.inbox.length < REQUEST_HEADER_SIZE) return;
        const req = decodeRequestHeader(this.inbox.take(REQUEST_HEADER_SIZE));
        if (!req) {
          this.protocolError('bad request magic');
          return;
        }
        if (req.type === Cmd.WRITE && req.length > NBD_MAX_PAYLOAD) {
          this.current = req;
          this.discardLeft = req.length;
          continue;
        }
        this.current = req;
      }
      const req = this.current;
      let payload: Buffer | null = null;
      if (req.type === Cmd.WRITE) {
        if (!this.payload) {
          // only a pooled block before the bytes arrive (a stalled client pins one, never its declared size)
          const pooled = sharedPayloads.tryGet(req.length);
          if (pooled) this.payload = new Incoming(pooled);
        }
        if (this.payload) {
          if (!this.payload.fillFrom(this.inbox)) return;
          payload = this.payload.buf;
          this.payload = null;
        } else {
          // not pooled (small, or the pool is spent): collected as it arrives, never allocated up front
          if (this.inbox.length < req.length) return;
          payload = this.inbox.take(req.length);
        }
      }
      this.current = null;
      if (req.type === Cmd.DISC) {
        this.disconnecting = true;
        this.log('debug', `nbd: ${this.peer}: client disconnected`);
        this.maybeEndAfterDisc();
        return;
      }
      this.dispatch(req, payload);
    }
  }

  private maybeEndAfterDisc(): void {
    if (!this.disconnecting || this.inflight > 0 || this.phase !== 'transmission' || this.discSettling) return;
    // Writes acknowledged early are completed before the connection ends, so a client that waits for
    // the close (libnbd) finds its data readable by every other client, without a FLUSH. Only those
    // pending now: other connections' later writes do not hold this one open.
    if (this.device?.busy) {
      this.discSettling = true;
      void this.device.settle().then(() => {
        this.discSettling = false;
        if (this.phase !== 'transmission') return;
        this.socket.end();
        this.onClose('client sent NBD_CMD_DISC');
      });
      return;
    }
    this.socket.end();
    this.onClose('client sent NBD_CMD_DISC');
  }

  private dispatch(req: NbdRequest, payload: Buffer | null): void {
    const bytes = req.type === Cmd.READ || req.type === Cmd.WRITE ? req.length : 0;
    this.inflight++;
    this.inflightBytes += bytes;
    const owned = { payload };
    void this.execute(req, owned)
      .catch((e) => {
        const errno = e instanceof VdiDeviceError ? e.errno : Errno.EIO;
        if (!(e instanceof VdiDeviceError) || errno === Errno.EIO) this.log('warn', `nbd: ${this.peer}: ${cmdName(req.type)} ${req.offset}+${req.length} on '${this.exportName}' failed: ${(e as Error)?.message ?? e}`);
        this.replyError(req, errno, (e as Error)?.message ?? String(e));
      })
      .finally(() => {
        // A payload not handed to the device is referenced by nothing any more.
        if (owned.payload) sharedPayloads.release(owned.payload);
        this.inflight--;
        this.inflightBytes -= bytes;
        if (this.phase === 'closed') return this.maybeFinish();
        if (this.disconnecting) return this.maybeEndAfterDisc();
        if (this.paused && this.inflight < MAX_INFLIGHT_REQUESTS / 2 && this.inflightBytes < MAX_INFLIGHT_BYTES / 2) {
          this.paused = false;
          this.socket.resume();
          this.pump();
        }
      });
  }

  private replyOk(req: NbdRequest): void {
    this.send(encodeSimpleReply(req.cookie, 0));
  }

  private replyError(req: NbdRequest, errno: number, message: string): void {
    if (this.structured) this.send(encodeErrorChunk(req.cookie, errno, message));
    else this.send(encodeSimpleReply(req.cookie, errno));
  }

  /** `owned.payload`: the WRITE payload; set to null once handed to the device, which releases it. */
  private async execute(req: NbdRequest, owned: { payload: Buffer | null }): Promise<void> {
    const dev = this.device!;
    if (req.flags & ~KNOWN_CMD_FLAGS) throw new VdiDeviceError(Errno.EINVAL, `unknown command flags 0x${req.flags.toString(16)}`);
    const writing = req.type === Cmd.WRITE || req.type === Cmd.TRIM || req.type === Cmd.WRITE_ZEROES;
    if (writing && dev.readOnly) throw new VdiDeviceError(Errno.EPERM, `'${this.exportName}' is read-only`);
    if (req.type !== Cmd.FLUSH && (req.offset > dev.size || req.length > dev.size - req.offset)) {
      throw new VdiDeviceError(req.type === Cmd.WRITE || req.type === Cmd.WRITE_ZEROES ? Errno.ENOSPC : Errno.EINVAL, `${cmdName(req.type)} ${req.offset}+${req.length} is beyond the end of the export (${dev.size} bytes)`);
    }
    switch (req.type) {
      case Cmd.READ: {
        if (req.length > NBD_MAX_PAYLOAD) throw new VdiDeviceError(Errno.EINVAL, `read of ${req.length} bytes exceeds the ${NBD_MAX_PAYLOAD}-byte maximum`);
        if (req.length === 0) {
          if (this.structured) this.send(encodeChunkHeader(req.cookie, ReplyFlag.DONE, ReplyType.NONE, 0));
          else this.replyOk(req);
          return;
        }
        const data = await dev.read(req.offset, req.length);
        if (this.structured) this.sendRead(encodeOffsetDataHeader(req.cookie, ReplyFlag.DONE, req.offset, data.length), data);
        else this.sendRead(encodeSimpleReply(req.cookie, 0), data);
        return;
      }
      case Cmd.WRITE: {
        const fua = (req.flags & CmdFlag.FUA) !== 0;
        const data = owned.payload!;
        owned.payload = null;
        // Every request the write makes is answered before onSettled, so the payload can go back then.
        if (req.length > 0) await dev.write(req.offset, data, { writeBack: !fua, onSettled: () => sharedPayloads.release(data) });
        else sharedPayloads.release(data);
        // FUA: durable on every replica before the reply (a cluster flush after the write, as nbdkit's file
        // plugin fdatasyncs after a FUA write).
        if (fua) await dev.commit();
        this.replyOk(req);
        return;
      }
      case Cmd.FLUSH:
        await dev.flush();
        this.replyOk(req);
        return;
      case Cmd.TRIM:
        if (req.length > 0) await dev.zero(req.offset, req.length, true);
        if (req.flags & CmdFlag.FUA) await dev.commit();
        this.replyOk(req);
        return;
      case Cmd.WRITE_ZEROES:
        if (req.length > 0) await dev.zero(req.offset, req.length, (req.flags & CmdFlag.NO_HOLE) === 0);
        if (req.flags & CmdFlag.FUA) await dev.commit();
        this.replyOk(req);
        return;
      case Cmd.BLOCK_STATUS: {
        if (!this.structured || !this.metaAllocation) throw new VdiDeviceError(Errno.EINVAL, 'no metadata context was negotiated');
        if (req.length === 0) throw new VdiDeviceError(Errno.EINVAL, 'block status of 0 bytes');
        const extents = await dev.extents(req.offset, req.length, (req.flags & CmdFlag.REQ_ONE) !== 0);
        this.send(encodeBlockStatusChunk(req.cookie, ReplyFlag.DONE, BASE_ALLOCATION_ID, extents));
        return;
      }
      default:
        throw new VdiDeviceError(Errno.EINVAL, `unsupported command ${cmdName(req.type)}`);
    }
  }
}

export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServer> {
  return NbdServer.start(opts);
}

/**
 * Starts an NBD server in front of an in-process sheep (CLI `--nbd [HOST:]PORT` / `--nbd-port`).
 * `spec` is "PORT" or "HOST:PORT"; requests go through the sheep's own request path.
 */
export async function startNbdForSheep(
  sheep: { localRequest: Parameters<typeof localTransport>[0]['localRequest']; log(level: 'info' | 'warn' | 'error' | 'debug', msg: string): void },
  spec: { host: string; port: number },
  writeBackBytes?: number,
): Promise<NbdServer> {
  return NbdServer.start({ transport: localTransport(sheep), host: spec.host, port: spec.port, writeBackBytes, log: (level, msg) => sheep.log(level, msg) });
}

/** Parses `[HOST:]PORT` (HOST may be a bracketed IPv6 address). */
export function parseNbdAddress(v: string, defaultHost: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d+)$/.exec(v);
  if (!m) return null;
  const port = Number(m[3]);
  if (!(port >= 0 && port <= 65535)) return null;
  return { host: m[1] ?? m[2] ?? defaultHost, port };
}

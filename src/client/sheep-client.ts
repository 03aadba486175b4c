// A Sheepdog wire-protocol client: one TCP connection, many requests in flight, answers matched by id.
// Used by dog, the peer connections between sheep, the tests and the benchmarks.
import { Incoming, readFramed } from '../net/socket-reader.js';
import { tickCorkedWriter, type CorkedWriter } from '../net/tick-cork.js';
import { connect, type Socket } from 'node:net';
import { SD_HEADER_SIZE } from '../proto/constants.js';
import { decodeResponse, encodeRequest, type ReqInit, type RspHeader } from '../proto/header.js';
import { ByteQueue } from '../net/byte-queue.js';

export interface SheepResponse extends RspHeader {
  readonly raw: Buffer;
  readonly data: Buffer;
}

export class ConnectionError extends Error {
  constructor(
    readonly address: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectionError';
  }
}

/** Largest response body this client accepts (the inode is the largest object in practice). */
const MAX_RESPONSE_BYTES = 2 ** 31;
/** Replies with at least this much data are received straight into their own buffer. */
const DIRECT_BODY_BYTES = 256 * 1024;

export class SheepClient {
  private readonly pending = new Map<number, { resolve: (r: SheepResponse) => void; reject: (e: Error) => void; want: number }>();
  private nextId = 1;
  private readonly inbox = new ByteQueue();
  private header: (RspHeader & { raw: Buffer }) | null = null;
  /** the current reply's data when it is large, filled as it arrives */
  private body: Incoming | null = null;
  private closedError: Error | null = null;
  private readonly send: CorkedWriter;

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
  ) {
    socket.setNoDelay(true);
    this.send = tickCorkedWriter(socket);
    readFramed(socket, this.inbox, () => this.parse(), () => this.body);
    socket.on('error', (err) => this.fail(new ConnectionError(address, `connection to ${address} failed: ${err.message}`)));
    socket.on('close', () => this.fail(new ConnectionError(address, `connection to ${address} closed`)));
  }

  static connect(host: string, port: number, timeoutMs = 5000): Promise<SheepClient> {
    const address = `${host}:${port}`;
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionError(address, `cannot connect to ${address}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new SheepClient(socket, address));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ConnectionError(address, `cannot connect to ${address}: ${err.message}`));
      });
    });
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one request. `data` is the payload (sets CMD_WRITE and data_length); for reads pass
   * `dataLength` = the buffer size wanted back.
   */
  request(h: ReqInit, data?: Uint8Array): Promise<SheepResponse> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = h.id ?? this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    const dataLength = data ? data.length : (h.dataLength ?? 0);
    const flags = (h.flags ?? 0) | (data ? 0x01 : 0);
    const hdr = encodeRequest({ ...h, id, dataLength, flags });
    return new Promise<SheepResponse>((resolve, reject) => {
      if (this.pending.has(id)) return reject(new Error(`request id ${id} already in flight`));
      this.pending.set(id, { resolve, reject, want: dataLength });
      this.send(data && data.length > 0 ? [hdr, data] : [hdr]);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.fail(new ConnectionError(this.address, `connection to ${this.address} closed by client`));
  }

  private parse(): void {
    for (;;) {
      if (!this.header) {
        if (this.inbox.length < SD_HEADER_SIZE) return;
        this.header = decodeResponse(this.inbox.take(SD_HEADER_SIZE));
        if (this.header.dataLength > MAX_RESPONSE_BYTES) {
          this.fail(new ConnectionError(this.address, `response data_length ${this.header.dataLength} is too large`));
          this.socket.destroy();
          return;
        }
      }
      const len = this.header.dataLength;
      let data: Buffer;
      if (this.body || (len >= DIRECT_BODY_BYTES && len <= (this.pending.get(this.header.id)?.want ?? 0))) {
        // A large reply is received into its own buffer as it arrives (by the kernel, when nothing else
        // is queued): one allocation, no 64 KiB pieces to collect and copy.
        this.body ??= new Incoming(Buffer.allocUnsafe(len));
        if (!this.body.fillFrom(this.inbox)) return;
        data = this.body.buf;
        this.body = null;
      } else {
        if (this.inbox.length < len) return;
        data = this.inbox.take(len);
      }
      const rsp = { ...this.header, data } as SheepResponse;
      this.header = null;
      const p = this.pending.get(rsp.id);
      if (p) {
        this.pending.delete(rsp.id);
        p.resolve(rsp);
      }
    }
  }

  private fail(err: Error): void {
    if (!this.closedError) this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

// The TCP front door: Sheepdog framing (48-byte header, then data_length bytes only when CMD_WRITE),
// many requests in flight per connection, answers in any order. Untrusted lengths never allocate:
// payloads fill a bounded pool's buffers (or are collected as they arrive), and a declared length above
// the limit closes that connection (only that one) with a logged reason.
import { createServer, type Server, type Socket } from 'node:net';
import { Flag, SD_HEADER_SIZE } from '../proto/constants.js';
import { decodeReqHeader, type ReqHeader } from '../proto/header.js';
import { ByteQueue } from '../net/byte-queue.js';
import { sharedPayloads as payloads } from '../net/payload-pool.js';
import { tickCorkedWriter } from '../net/tick-cork.js';
import { Incoming, readFramed } from '../net/socket-reader.js';

export interface IncomingRequest extends ReqHeader {
  readonly raw: Buffer;
  /** The payload (CMD_WRITE), or an empty buffer. */
  readonly data: Buffer;
}

export interface Reply {
  readonly header: Buffer;
  readonly data?: Uint8Array;
}

export interface ServerHooks {
  /** Largest data_length accepted for a request carrying a payload. */
  maxDataLength(): number;
  handle(req: IncomingRequest, peer: string): Promise<Reply>;
  log(level: 'info' | 'warn' | 'error', msg: string): void;
}

/** Most requests one connection may have in flight before the server stops reading from it. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 256;

function serveConnection(socket: Socket, hooks: ServerHooks): void {
  socket.setNoDelay(true);
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const inbox = new ByteQueue();
  const send = tickCorkedWriter(socket);
  let header: (ReqHeader & { raw: Buffer }) | null = null;
  let inFlight = 0;
  let paused = false;

  const dispatch = (req: IncomingRequest, pooled: Buffer | null) => {
    inFlight++;
    if (inFlight >= MAX_IN_FLIGHT_PER_CONNECTION && !paused) {
      paused = true;
      socket.pause();
    }
    hooks
      .handle(req, peer)
      .then(
        (reply) => {
          // The request's pooled payload goes back now, unless the reply carries it (then once sent, below).
          if (pooled && (reply.data?.buffer !== pooled.buffer || reply.data.byteOffset !== pooled.byteOffset)) payloads.release(pooled);
          // A read's pooled buffer (an O_DIRECT read) is reused once the kernel has taken it (at once when
          // the connection is gone: the writer then calls back straight away).
          const data = reply.data;
          if (data && data.length >= payloads.minBytes) send([reply.header, data], () => payloads.release(data as Buffer));
          else if (data && data.length > 0) send([reply.header, data]);
          else send([reply.header]);
        },
        (err) => {
          hooks.log('error', `request ${req.opcode.toString(16)} from ${peer} failed unexpectedly: ${(err as Error)?.stack ?? err}`);
          socket.destroy();
        },
      )
      .finally(() => {
        inFlight--;
        if (paused && inFlight < MAX_IN_FLIGHT_PER_CONNECTION / 2) {
          paused = false;
          socket.resume();
        }
      });
  };

  // A large payload is received into its pooled buffer as it arrives (directly by the kernel when
  // nothing else is queued), returned once the request is answered: by then every peer the gateway
  // forwarded it to has replied, so it has been sent in full (peer connections have no request
  // timeout; a failed one is destroyed, which ends its writes).
  let payload: Incoming | null = null;
  const parse = () => {
    for (;;) {
      if (!header) {
        if (inbox.length < SD_HEADER_SIZE) return;
        header = decodeReqHeader(Buffer.from(inbox.take(SD_HEADER_SIZE)));
        if (header.flags & Flag.CMD_WRITE) {
          const limit = hooks.maxDataLength();
          if (header.dataLength > limit) {
            hooks.log('warn', `closing connection from ${peer}: request 0x${header.opcode.toString(16)} declares ${header.dataLength} bytes of data, above the ${limit}-byte limit`);
            inbox.clear();
            socket.destroy();
            return;
          }
          // Only a pooled block is taken before the bytes arrive: a client that declares a payload and
          // stalls pins at most one block, never an allocation of its declared size.
          const pooled = payloads.tryGet(header.dataLength);
          if (pooled) payload = new Incoming(pooled);
        }
      }
      let data: Buffer;
      if (payload) {
        if (!payload.fillFrom(inbox)) return;
        data = payload.buf;
      } else {
        const len = header.flags & Flag.CMD_WRITE ? header.dataLength : 0;
        if (inbox.length < len) return;
        data = inbox.take(len);
      }
      const req: IncomingRequest = { ...header, data };
      const pooled = payload ? payload.buf : null;
      header = null;
      payload = null;
      dispatch(req, pooled);
    }
  };
  readFramed(socket, inbox, parse, () => payload, () => !socket.destroyed);
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    if (payload) payloads.release(payload.buf); // a payload cut short: the socket reads no more into it
    payload = null;
  });
}

const connections = new WeakMap<Server, Set<Socket>>();

/** Stops listening and drops every open connection (peers keep theirs open forever otherwise). */
export function stopServer(server: Server): Promise<void> {
  const done = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of connections.get(server) ?? []) s.destroy();
  return done;
}

export function startServer(port: number, host: string, hooks: ServerHooks): Promise<Server> {
  return new Promise((resolve, reject) => {
    const open = new Set<Socket>();
    const server = createServer((s) => {
      open.add(s);
      s.once('close', () => open.delete(s));
      serveConnection(s, hooks);
    });
    connections.set(server, open);
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

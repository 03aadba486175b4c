// Length-prefixed msgpack frames over a stream socket (the local driver's hub protocol).
import type { Socket } from 'node:net';
import { Packr } from 'msgpackr';
import { ByteQueue } from '../net/byte-queue.js';

const packr = new Packr({ useRecords: false });
export const MAX_HUB_FRAME = 4 * 1024 * 1024;

export function writeFrame(socket: Socket, msg: unknown): void {
  const body = packr.pack(msg);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length, 0);
  socket.write(Buffer.concat([head, body]));
}

/** Calls `onMessage` for each complete frame; a frame over the limit closes the socket. */
export function readFrames(socket: Socket, onMessage: (msg: unknown) => void): void {
  const inbox = new ByteQueue();
  socket.on('data', (chunk: Buffer) => {
    inbox.push(chunk);
    while (inbox.length >= 4) {
      const len = inbox.peek(4).readUInt32LE(0);
      if (len > MAX_HUB_FRAME) {
        socket.destroy(new Error(`hub frame of ${len} bytes exceeds ${MAX_HUB_FRAME}`));
        return;
      }
      if (inbox.length < 4 + len) break;
      inbox.take(4);
      onMessage(packr.unpack(inbox.take(len)));
    }
  });
}

// Length-prefixed msgpack frames over a stream socket (the local driver's hub protocol).
import type { Socket } from 'node:net';
import { Packr } from 'msgpackr';

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
  let buf: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readUInt32LE(0);
      if (len > MAX_HUB_FRAME) {
        socket.destroy(new Error(`hub frame of ${len} bytes exceeds ${MAX_HUB_FRAME}`));
        return;
      }
      if (buf.length < 4 + len) break;
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      onMessage(packr.unpack(body));
    }
  });
}

// The shared receive path: ByteQueue with transient chunks, and readSocket (reused receive buffers,
// payloads read straight into place) on accepted and connecting sockets, against Node's own fallback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { ByteQueue } from '../src/net/byte-queue.js';
import { Incoming, readFramed, socketReaderStats } from '../src/net/socket-reader.js';

test('ByteQueue: transient chunks are copied when taken or kept, never referenced', () => {
  const q = new ByteQueue();
  const staging = Buffer.from('abcdefgh');
  q.pushTransient(staging.subarray(0, 6));
  const head = q.take(2);
  staging.fill(0x7a); // the receive buffer is reused
  assert.is(head.toString(), 'ab', 'take() copied');
  staging.write('abcdefgh');
  q.keep();
  staging.fill(0x7a);
  assert.is(q.peek(4).toString(), 'cdef', 'keep() copied what was left');
  const into = Buffer.alloc(6, 0x2e);
  assert.is(q.fill(into, 1), 4);
  assert.is(into.toString(), '.cdef.');
  assert.is(q.length, 0);
  // owned chunks stay zero-copy views
  const owned = Buffer.from('xyz');
  q.push(owned);
  assert.is(q.take(3).buffer, owned.buffer);
});

/** A framed sink: 4-byte big-endian length, then that many bytes, landed directly when possible. */
function frameSink(socket: Socket, onFrame: (b: Buffer) => void): boolean {
  const q = new ByteQueue();
  let body: Incoming | null = null;
  const parse = () => {
    for (;;) {
      if (!body) {
        if (q.length < 4) return;
        body = new Incoming(Buffer.alloc(q.take(4).readUInt32BE(0)));
      }
      if (!body.fillFrom(q)) return;
      onFrame(body.buf);
      body = null;
    }
  };
  return readFramed(socket, q, parse, () => body);
}

async function roundTrip(mode: 'reuse' | 'node'): Promise<{ serverReused: boolean; clientReused: boolean }> {
  if (mode === 'node') process.env.SHEEP_SOCKET_READS = 'node';
  else delete process.env.SHEEP_SOCKET_READS;
  const frames = [randomBytes(3 << 20), randomBytes(10), randomBytes(70_000), Buffer.alloc(0), randomBytes(1 << 20)];
  const wire = Buffer.concat(frames.flatMap((f) => [Buffer.from([f.length >>> 24, (f.length >>> 16) & 255, (f.length >>> 8) & 255, f.length & 255]), f]));
  let serverReused = false;
  const gotByServer: Buffer[] = [];
  const server = createServer((s) => {
    serverReused = frameSink(s, (f) => {
      gotByServer.push(f);
      if (gotByServer.length === frames.length) s.end(wire); // send everything back, framed the same
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const gotByClient: Buffer[] = [];
  const clientReused = frameSink(socket, (f) => gotByClient.push(f));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  // dribble the first part in small writes, so frames straddle reads
  for (let i = 0; i < 64; i++) socket.write(wire.subarray(i * 7, i * 7 + 7));
  socket.write(wire.subarray(64 * 7));
  await closed;
  server.close();
  delete process.env.SHEEP_SOCKET_READS;
  assert.is(gotByServer.length, frames.length);
  assert.is(gotByClient.length, frames.length);
  for (let i = 0; i < frames.length; i++) {
    assert.ok(gotByServer[i]!.equals(frames[i]!), `${mode}: frame ${i} reached the server intact`);
    assert.ok(gotByClient[i]!.equals(frames[i]!), `${mode}: frame ${i} came back intact`);
  }
  return { serverReused, clientReused };
}

test('readSocket: reused buffers on accepted and connecting sockets; large payloads land in place', async () => {
  const direct0 = socketReaderStats.directBytes;
  const r = await roundTrip('reuse');
  // Node 20 and 22 keep the slots readSocket uses; if a Node upgrade drops them, this fails loudly
  // instead of every socket silently going back to a fresh 64 KiB buffer per read.
  assert.ok(r.serverReused && r.clientReused, `reused buffers in use (node ${process.version})`);
  assert.ok(socketReaderStats.directBytes - direct0 > 4 << 20, 'most of the large frames were read straight into place');
});

test("readSocket: Node's own buffers (SHEEP_SOCKET_READS=node) give the same bytes", async () => {
  const r = await roundTrip('node');
  assert.is(r.serverReused, false);
  assert.is(r.clientReused, false);
});

test.run();

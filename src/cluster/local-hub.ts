#!/usr/bin/env node
// The local driver's hub: one small process per box that sequences membership events for the sheep
// started with `-c local`. A sheep's death closes its socket, so it is noticed at once. Started on demand
// by the first sheep; exits when it has had no members for a while.
import { createServer, type Socket } from 'node:net';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { ClusterEvent, Member } from './driver.js';
import { Hub } from './hub.js';
import { readFrames, writeFrame } from './framing.js';

const IDLE_EXIT_MS = 10_000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie still answers kill(0): treat state Z as dead.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Exclusive ownership of the socket path through a pid lock file. */
function acquireLock(lockPath: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      let owner = NaN;
      try {
        owner = Number(readFileSync(lockPath, 'utf8'));
      } catch {
        /* vanished */
      }
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) return false;
      rmSync(lockPath, { force: true });
    }
  }
  return false;
}

export function runHub(socketPath: string): void {
  const lockPath = `${socketPath}.lock`;
  if (!acquireLock(lockPath)) process.exit(0); // another hub serves this path
  rmSync(socketPath, { force: true });
  const hub = new Hub();
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idleTimer);
    if (hub.size === 0) idleTimer = setTimeout(shutdown, IDLE_EXIT_MS);
  };
  const server = createServer((socket: Socket) => {
    let memberId: string | null = null;
    socket.setNoDelay(true);
    const sink = { deliver: (ev: ClusterEvent) => writeFrame(socket, ev) };
    readFrames(socket, (raw) => {
      const msg = raw as { t: string; member?: Member; msg?: Uint8Array; ticket?: number };
      try {
        switch (msg.t) {
          case 'join':
            memberId = msg.member!.id;
            hub.join({ id: msg.member!.id, node: new Uint8Array(msg.member!.node) }, sink);
            clearTimeout(idleTimer);
            break;
          case 'notify':
            if (memberId) hub.notify(memberId, msg.msg!);
            break;
          case 'block':
            if (memberId) hub.block(memberId, msg.ticket!);
            break;
          case 'unblock':
            if (memberId) hub.unblock(memberId, msg.msg!);
            break;
        }
      } catch (err) {
        writeFrame(socket, { type: 'error', error: String((err as Error).message) });
        socket.end();
      }
    });
    const gone = () => {
      if (memberId) hub.leave(memberId);
      memberId = null;
      armIdle();
    };
    socket.on('close', gone);
    socket.on('error', () => socket.destroy());
  });
  const shutdown = () => {
    server.close();
    rmSync(socketPath, { force: true });
    rmSync(lockPath, { force: true });
    process.exit(0);
  };
  server.listen(socketPath, armIdle);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: local-hub SOCKET_PATH\n');
    process.exit(64);
  }
  runHub(path);
}

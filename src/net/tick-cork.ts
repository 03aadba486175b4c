// Writes issued in one turn of the event loop leave in one writev: under load, many replies (or peer
// requests) complete together, and one syscall per message was a large share of the gateway's time.
import type { Socket } from 'node:net';

/** Returns a writer that corks `socket` at its first write in a tick and uncorks it on the next tick. */
export function tickCorkedWriter(socket: Socket): (...chunks: Uint8Array[]) => void {
  let corked = false;
  const uncork = () => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  return (...chunks) => {
    if (socket.destroyed) return;
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    for (const c of chunks) if (c.length > 0) socket.write(c);
  };
}

// Writes issued in one turn of the event loop leave in one writev: under load, many replies (or peer
// requests) complete together, and one syscall per message was a large share of the gateway's time.
import type { Socket } from 'node:net';

/**
 * Sends `chunks` in order. `onSent` runs once the kernel has taken the last of them (or at once when the
 * socket is gone), so a pooled buffer among them can be reused.
 */
export type CorkedWriter = (chunks: readonly Uint8Array[], onSent?: () => void) => void;

/** Returns a writer that corks `socket` at its first write in a tick and uncorks it on the next tick. */
export function tickCorkedWriter(socket: Socket): CorkedWriter {
  let corked = false;
  const uncork = () => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  return (chunks, onSent) => {
    if (socket.destroyed) return onSent?.();
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    const last = chunks.findLastIndex((c) => c.length > 0);
    chunks.forEach((c, i) => {
      if (c.length > 0) socket.write(c, i === last && onSent ? () => onSent() : undefined);
    });
    if (last < 0) onSent?.();
  };
}

// Connections from this sheep to its peers: one pipelined connection per peer, reopened on failure.
import { SheepClient } from '../client/sheep-client.js';

export class PeerPool {
  private readonly conns = new Map<string, Promise<SheepClient>>();

  async get(addr: string, port: number): Promise<SheepClient> {
    const key = `${addr}:${port}`;
    const existing = this.conns.get(key);
    if (existing) {
      const c = await existing.catch(() => null);
      if (c && !c.closed) return c;
      this.conns.delete(key);
    }
    const p = SheepClient.connect(addr, port, 3000);
    this.conns.set(key, p);
    p.catch(() => this.conns.delete(key));
    return p;
  }

  /** Closes the connection to a node that left: its in-flight requests fail at once (and are retried). */
  drop(key: string): void {
    const p = this.conns.get(key);
    this.conns.delete(key);
    p?.then((c) => c.close()).catch(() => undefined);
  }

  closeAll(): void {
    for (const p of this.conns.values()) p.then((c) => c.close()).catch(() => undefined);
    this.conns.clear();
  }
}

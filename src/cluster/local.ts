// `local` driver: several sheep processes on one box, sequenced by a hub process on a unix socket
// (started on demand). Node death is a closed socket, noticed immediately.
import { connect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClusterDriver, ClusterEvent, Member } from './driver.js';
import { readFrames, writeFrame } from './framing.js';

export const DEFAULT_LOCAL_HUB = '/tmp/sheep-actors-local.sock';

function tryConnect(path: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
}

export class LocalDriver implements ClusterDriver {
  readonly name = 'local';
  private socket: Socket | null = null;
  private nextTicket = 1;

  constructor(
    readonly hubPath: string = DEFAULT_LOCAL_HUB,
    private readonly onHubLost?: (err: Error) => void,
  ) {}

  private async connectHub(): Promise<Socket> {
    let s = await tryConnect(this.hubPath);
    if (s) return s;
    const hubScript = fileURLToPath(new URL('./local-hub.js', import.meta.url));
    const child = spawn(process.execPath, [hubScript, this.hubPath], { detached: true, stdio: 'ignore' });
    child.unref();
    for (let i = 0; i < 100 && !s; i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await tryConnect(this.hubPath);
    }
    if (!s) throw new Error(`local driver: cannot reach or start the hub at ${this.hubPath}`);
    return s;
  }

  async join(self: Member, onEvent: (ev: ClusterEvent) => void): Promise<void> {
    const socket = await this.connectHub();
    socket.setNoDelay(true);
    this.socket = socket;
    readFrames(socket, (raw) => {
      const ev = raw as ClusterEvent | { type: 'error'; error: string };
      if (ev.type === 'error') {
        this.onHubLost?.(new Error(`local driver: hub refused: ${ev.error}`));
        return;
      }
      if (ev.type === 'notify') onEvent({ ...ev, msg: new Uint8Array(ev.msg) });
      else if (ev.type === 'join' || ev.type === 'leave') {
        const fix = (m: Member) => ({ id: m.id, node: new Uint8Array(m.node) });
        onEvent({ ...ev, member: fix(ev.member), members: ev.members.map(fix) });
      } else onEvent(ev);
    });
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = null;
        this.onHubLost?.(new Error(`local driver: lost the hub at ${this.hubPath}`));
      }
    });
    socket.on('error', () => undefined);
    writeFrame(socket, { t: 'join', member: { id: self.id, node: self.node } });
  }

  async leave(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    s?.end();
    s?.destroy();
  }

  notify(msg: Uint8Array): void {
    this.send({ t: 'notify', msg });
  }

  block(): number {
    const ticket = this.nextTicket++;
    this.send({ t: 'block', ticket });
    return ticket;
  }

  unblock(msg: Uint8Array): void {
    this.send({ t: 'unblock', msg });
  }

  private send(m: unknown): void {
    if (!this.socket) throw new Error('local driver: not connected to the hub');
    writeFrame(this.socket, m);
  }
}
